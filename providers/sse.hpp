// Sans-I/O parser for Server-Sent Events (the WHATWG framing): bytes in, whole events out.
// Fed in arbitrary splits; bounded, so a hostile upstream cannot grow it without limit.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

namespace meridian::providers {

struct sse_event {
  std::string event;  // the "event:" field; empty means "message"
  std::string data;   // "data:" lines joined with '\n'
  std::string id;
};

class sse_parser {
 public:
  explicit sse_parser(std::size_t max_event_bytes = 4u << 20) : max_event_bytes_(max_event_bytes) {}

  // Consumes bytes. Returns false, and stays failed, when one event exceeds the bound.
  bool feed(std::string_view bytes);
  // Pops the next complete event, if any.
  bool next(sse_event& out);
  bool failed() const { return failed_; }
  // True when bytes of an unfinished event are buffered (a stream cut mid-event).
  bool partial() const { return !line_.empty() || has_fields_; }

 private:
  void on_line(std::string_view line);

  std::size_t max_event_bytes_;
  std::string line_;
  sse_event current_;
  bool has_fields_ = false;
  bool data_seen_ = false;
  bool after_cr_ = false;  // a '\r' ended the last line; a following '\n' belongs to it
  bool failed_ = false;
  std::deque<sse_event> ready_;
};

// Serialises an event in the canonical framing ("event:" then one "data:" per line, blank line).
std::string to_wire(const sse_event& ev);

}  // namespace meridian::providers
