// Small pieces shared by the gateway's endpoints that need no socket: query strings,
// request ids, Retry-After, the access-log line, and the process logger.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace meridian::gateway {

// The query string of a request target as name -> value, percent-decoded ('+' is a space).
std::map<std::string, std::string> parse_query(std::string_view target);

// A fresh request id ("req_" + 24 hex digits: 12 of Unix milliseconds, so ids sort by time, and
// 12 random), or the client's own if it is sane.
std::string request_id_for(std::string_view inbound);
// The client's x-request-id when it is sane (1..128 of [A-Za-z0-9-_.:]), else empty.
std::string sane_request_id(std::string_view inbound);

// The Retry-After a client may be shown for an upstream's: delta-seconds (capped at a day) or
// an HTTP-date (IMF-fixdate, RFC 850 or asctime), as the seconds left until it; nullopt when the
// upstream sent none. Anything else is not forwarded (an upstream can echo anything there, its
// key included): it becomes 1 second.
std::optional<std::uint64_t> retry_after_seconds(std::string_view upstream,
                                                 std::chrono::system_clock::time_point now);

// Whether a request's framing headers could be read two ways (request smuggling): more than one
// Content-Length (or one listing several values), more than one Transfer-Encoding, both at
// once, or a coding other than exactly "chunked". `Fields` iterates header fields with
// name_string() and value() (Beast's do; the function itself needs no Beast).
template <class Fields>
bool ambiguous_framing(const Fields& fields) {
  auto iequals = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const char c = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
      if (c != b[i]) return false;  // b is lower-case
    }
    return true;
  };
  std::size_t lengths = 0, codings = 0;
  bool plain = true;
  for (const auto& f : fields) {
    const std::string_view name(f.name_string().data(), f.name_string().size());
    const std::string_view value(f.value().data(), f.value().size());
    if (iequals(name, "content-length")) {
      ++lengths;
      plain = plain && value.find(',') == std::string_view::npos;
    } else if (iequals(name, "transfer-encoding")) {
      ++codings;
      plain = plain && iequals(value, "chunked");
    }
  }
  return lengths > 1 || codings > 1 || (lengths && codings) || !plain;
}

// The head of an HTTP/1.x message as it goes on the wire: the start line, every field as
// "Name: value" in order, the blank line. Written into one string so that head and body leave in
// one gather write; Beast's serializer writes the same bytes (test_http_util holds them equal)
// through a dozen nested buffer views per message, about a tenth of a proxied request's
// instructions (docs/performance.md). `Message` is a Beast request or response header.
template <class Fields>
void append_head_fields(std::string& out, const Fields& fields) {
  for (const auto& f : fields) {
    out.append(f.name_string().data(), f.name_string().size());
    out.append(": ");
    out.append(f.value().data(), f.value().size());
    out.append("\r\n");
  }
  out.append("\r\n");
}
inline void append_http_version(std::string& out, unsigned version) {
  out.append("HTTP/");
  out.push_back(static_cast<char>('0' + version / 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
}
template <class Response>
std::string response_head(const Response& res) {
  std::string out;
  out.reserve(256);
  append_http_version(out, res.version());
  out.push_back(' ');
  out.append(std::to_string(res.result_int()));
  out.push_back(' ');
  out.append(res.reason().data(), res.reason().size());
  out.append("\r\n");
  append_head_fields(out, res);
  return out;
}
template <class Request>
std::string request_head(const Request& req) {
  std::string out;
  out.reserve(256);
  out.append(req.method_string().data(), req.method_string().size());
  out.push_back(' ');
  out.append(req.target().data(), req.target().size());
  out.push_back(' ');
  append_http_version(out, req.version());
  out.append("\r\n");
  append_head_fields(out, req);
  return out;
}

// Removes `secret` from `text` wherever it occurs (upstream messages can quote keys), and a tail
// of `text` that is the secret's beginning (a quote cut short by a length limit).
std::string redact(std::string text, std::string_view secret);

enum class log_level { debug, info, warn, error };
std::optional<log_level> parse_log_level(std::string_view s);
void set_log_level(log_level l);
bool log_enabled(log_level l);
// One JSON line on stderr: {"ts":..,"level":..,"msg":..} plus `extra_json` members if given.
void log(log_level l, std::string_view msg, std::string_view extra_json = {});

// The app a request comes from, as OpenRouter attributes traffic: its X-Title, else the host
// of its HTTP-Referer (or Referer; lowercase, without "www." and port). Control characters make it
// unnamed; at most 64 bytes, cut on a character boundary. "" when neither is given.
std::string app_name(std::string_view title, std::string_view referer);

// What one request did, written as one JSON line on stdout.
struct access_record {
  std::string request_id;         // Meridian's own, unique per request
  std::string client_request_id;  // the client's x-request-id, if it sent a sane one
  std::string session;            // the client's x-claude-code-session-id, if sane
  std::string app;                // app_name() of the client's X-Title / HTTP-Referer
  std::string task, language;     // the classifier's reading of the prompt (policies/task.hpp)
  // What x-request-id answers with: the client's own id when it sent one (tracing), else ours.
  const std::string& echoed_id() const {
    return client_request_id.empty() ? request_id : client_request_id;
  }
  std::string method;
  std::string path;
  std::string model;     // as asked
  std::string key;       // the virtual key's name (never its secret), if one was presented
  std::string route;     // the route that matched, if any
  std::string provider;  // empty when not routed
  std::string upstream_model;
  unsigned status = 0;
  bool stream = false;
  std::size_t fallback_index = 0;  // 0: the first candidate served it
  std::uint64_t input_tokens = 0, output_tokens = 0;
  bool estimated = false;          // the tokens are Meridian's estimate, as the ledger records them
  std::optional<double> cost_usd;  // of those tokens at the serving model's prices
  double latency_ms = 0;
  std::optional<double> ttft_ms;
  std::string error;  // short reason for a failure, never a secret
};
void write_access_log(const access_record& r);

}  // namespace meridian::gateway
