// OpenTelemetry tracing: the spans the gateway makes (one per request, one per upstream attempt,
// with the GenAI semantic conventions' attributes), W3C trace context (`traceparent`), the
// OTLP/HTTP JSON encoding, and the exporter: a bounded queue that a background thread posts to
// the collector, dropping and counting spans rather than ever blocking a request.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace meridian::stats {

// W3C trace context: a 32-hex-digit trace id and the 16-hex-digit id of the parent span.
struct trace_context {
  std::string trace_id;
  std::string span_id;
  bool sampled = true;
};

// `traceparent: 00-<trace id>-<span id>-<flags>`; nullopt for anything malformed (all-zero ids,
// other versions' extra fields are accepted as the spec asks, uppercase is not).
std::optional<trace_context> parse_traceparent(std::string_view header);
std::string format_traceparent(const trace_context& c);
// Fresh random ids.
std::string new_trace_id();
std::string new_span_id();

enum class span_kind { server = 2, client = 3 };

struct span {
  std::string trace_id, span_id, parent_span_id;
  std::string name;
  span_kind kind = span_kind::server;
  std::int64_t start_unix_ns = 0, end_unix_ns = 0;
  std::vector<std::pair<std::string, std::variant<std::string, std::int64_t, double, bool>>>
      attributes;
  bool error = false;  // status ERROR (else UNSET)
  std::string status_message;
};

std::int64_t unix_ns(std::chrono::system_clock::time_point t);

// An ExportTraceServiceRequest in OTLP's JSON encoding: one resource (service.name), one scope.
std::string otlp_json(const std::vector<span>& spans, std::string_view service_name);

struct exporter_options {
  std::string endpoint;  // http://host:port[/path]; spans go to <endpoint>/v1/traces
  std::string service_name = "meridian";
  std::size_t max_queue = 4096;
  std::chrono::milliseconds flush_interval{1000};
  std::chrono::milliseconds timeout{2000};  // per export request
};

// Thread-safe. record() never blocks: past max_queue the span is dropped and counted. The
// thread posts what is queued every flush_interval (at most 512 spans per request); a failed
// post drops that batch and counts it (a collector that is down must not grow the gateway).
class span_exporter {
 public:
  explicit span_exporter(exporter_options o);
  ~span_exporter();  // posts what is left, then stops
  span_exporter(const span_exporter&) = delete;
  span_exporter& operator=(const span_exporter&) = delete;

  void record(span s);
  std::uint64_t exported() const { return exported_; }
  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t failed_exports() const { return failed_; }

 private:
  void run();
  bool post(const std::string& body);

  exporter_options o_;
  std::string host_, path_;
  std::uint16_t port_ = 80;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<span> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> exported_{0}, dropped_{0}, failed_{0};
  std::thread thread_;
};

}  // namespace meridian::stats
