// SSE framing per the WHATWG HTML standard, section "Parsing an event stream".
#include "providers/sse.hpp"

namespace meridian::providers {

bool sse_parser::feed(std::string_view bytes) {
  if (failed_) return false;
  std::size_t i = 0;
  if (after_cr_ && !bytes.empty()) {
    if (bytes[0] == '\n') ++i;
    after_cr_ = false;
  }
  while (i < bytes.size()) {
    std::size_t eol = bytes.find_first_of("\r\n", i);
    if (eol == std::string_view::npos) {
      line_.append(bytes.substr(i));
      break;
    }
    std::string_view line = bytes.substr(i, eol - i);
    if (!line_.empty()) {
      line_.append(line);
      on_line(line_);
      line_.clear();
    } else {
      on_line(line);
    }
    if (bytes[eol] == '\r') {
      if (eol + 1 < bytes.size()) {
        i = bytes[eol + 1] == '\n' ? eol + 2 : eol + 1;
      } else {
        after_cr_ = true;
        i = eol + 1;
      }
    } else {
      i = eol + 1;
    }
    if (failed_) return false;
  }
  if (line_.size() + current_.data.size() > max_event_bytes_) failed_ = true;
  return !failed_;
}

void sse_parser::on_line(std::string_view line) {
  if (line.empty()) {  // dispatch
    if (data_seen_) ready_.push_back(std::move(current_));
    current_ = {};
    has_fields_ = data_seen_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment, e.g. ": keep-alive"
  std::string_view field = line, value;
  if (auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  has_fields_ = true;
  if (field == "data") {
    if (data_seen_) current_.data.push_back('\n');
    current_.data.append(value);
    data_seen_ = true;
  } else if (field == "event") {
    current_.event.assign(value);
  } else if (field == "id") {
    current_.id.assign(value);
  }  // "retry" and unknown fields are ignored, as the standard says
  if (current_.data.size() + current_.event.size() > max_event_bytes_) failed_ = true;
}

bool sse_parser::next(sse_event& out) {
  if (ready_.empty()) return false;
  out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

std::string to_wire(const sse_event& ev) {
  std::string out;
  out.reserve(ev.data.size() + ev.event.size() + 16);
  if (!ev.event.empty()) out.append("event: ").append(ev.event).append("\n");
  std::size_t start = 0;
  while (true) {
    std::size_t nl = ev.data.find('\n', start);
    out.append("data: ").append(ev.data, start,
                                nl == std::string::npos ? std::string::npos : nl - start);
    out.push_back('\n');
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  out.push_back('\n');
  return out;
}

}  // namespace meridian::providers
