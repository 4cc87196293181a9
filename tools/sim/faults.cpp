// Scripted faults: parse_fault reads the `;`-separated fault strings of SIM.yaml, the
// x-sim-fault header and the sim_fault body field; trim is shared with the SIM.yaml reader.
#include "tools/sim/detail.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string>
#include <string_view>

namespace meridian::sim {

namespace {

constexpr int k_default_fault_events = 2;  // content events before a bare sse_error/truncate_sse

int parse_int(std::string_view key, std::string_view value) {
  int out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc{} || ptr != value.data() + value.size() || out < 0) {
    throw std::invalid_argument("fault key '" + std::string(key) +
                                "' needs a non-negative integer");
  }
  return out;
}

}  // namespace

namespace detail {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace detail

fault parse_fault(std::string_view text) {
  fault f;
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view item = detail::trim(text.substr(0, semi));
    text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view key = detail::trim(item.substr(0, eq));
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : detail::trim(item.substr(eq + 1));
    const bool flag = eq == std::string_view::npos;
    if (key == "reset" && flag) {
      f.reset = true;
    } else if (key == "malformed" && flag) {
      f.malformed = true;
    } else if (key == "sse_error" && flag) {
      f.sse_error = k_default_fault_events;
    } else if (key == "truncate_sse" && flag) {
      f.truncate_sse = k_default_fault_events;
    } else if (key == "no_usage" && flag) {
      f.no_usage = true;
    } else if (flag) {
      throw std::invalid_argument("unknown fault flag '" + std::string(key) + "'");
    } else if (key == "status") {
      int s = parse_int(key, value);
      if (s < 100 || s > 599) throw std::invalid_argument("fault status must be 100..599");
      f.status = s;
    } else if (key == "retry_after") {
      f.retry_after = parse_int(key, value);
    } else if (key == "delay") {
      f.delay = std::chrono::milliseconds(parse_int(key, value));
    } else if (key == "cut_after") {
      f.cut_after = parse_int(key, value);
    } else if (key == "stall_after") {
      f.stall_after = parse_int(key, value);
    } else if (key == "stall") {
      f.stall = std::chrono::milliseconds(parse_int(key, value));
    } else if (key == "cut_body") {
      f.cut_body = static_cast<std::size_t>(parse_int(key, value));
    } else if (key == "oversize") {
      f.oversize = static_cast<std::size_t>(parse_int(key, value));
    } else if (key == "sse_error") {
      f.sse_error = parse_int(key, value);
    } else if (key == "truncate_sse") {
      f.truncate_sse = parse_int(key, value);
    } else if (key == "fails") {
      const auto slash = value.find('/');
      if (slash == std::string_view::npos)
        throw std::invalid_argument("fault key 'fails' needs K/N, e.g. fails=3/10");
      const int k = parse_int(key, value.substr(0, slash)), n = parse_int(key, value.substr(slash + 1));
      if (n < 1 || k > n) throw std::invalid_argument("fault key 'fails' needs 0 <= K <= N and N >= 1");
      f.fails = std::pair{k, n};
    } else if (key == "error") {
      if (value != "context_length" && value != "content_policy" && value != "quota")
        throw std::invalid_argument(
            "fault key 'error' needs context_length, content_policy or quota");
      f.error = std::string(value);
    } else if (key == "content_type") {
      // The value becomes a header: refuse what could split it.
      if (value.empty() || std::any_of(value.begin(), value.end(),
                                       [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        throw std::invalid_argument("fault key 'content_type' needs a printable media type");
      }
      f.content_type = std::string(value);
    } else {
      throw std::invalid_argument("unknown fault key '" + std::string(key) + "'");
    }
  }
  return f;
}

}  // namespace meridian::sim
