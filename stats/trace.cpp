// Tracing: see trace.hpp. The export is plain HTTP/1.1 on a blocking socket with deadlines, on
// the exporter's own thread; nothing here runs on an event loop.
#include "stats/trace.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <random>

#include <nlohmann/json.hpp>

namespace meridian::stats {

namespace {

bool lower_hex(std::string_view s, std::size_t n) {
  if (s.size() != n) return false;
  bool nonzero = false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

std::string random_hex(std::size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string s;
  while (s.size() < n) {
    std::uint64_t bits = rng();
    for (int i = 0; i < 16 && s.size() < n; ++i, bits >>= 4) s.push_back(k_digits[bits & 15]);
  }
  return s;
}

}  // namespace

std::optional<trace_context> parse_traceparent(std::string_view h) {
  // version "-" trace-id "-" parent-id "-" flags; a later version may append "-" fields.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  const std::string_view version = h.substr(0, 2), flags = h.substr(53, 2);
  auto hex = [](std::string_view s) {
    for (char c : s)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
  };
  if (!hex(version) || version == "ff" || !hex(flags)) return std::nullopt;
  if (version == "00" && h.size() != 55) return std::nullopt;
  if (version != "00" && h.size() > 55 && h[55] != '-') return std::nullopt;
  trace_context c{std::string(h.substr(3, 32)), std::string(h.substr(36, 16)), true};
  if (!lower_hex(c.trace_id, 32) || !lower_hex(c.span_id, 16)) return std::nullopt;
  c.sampled = (std::stoi(std::string(flags), nullptr, 16) & 1) != 0;
  return c;
}

std::string format_traceparent(const trace_context& c) {
  return "00-" + c.trace_id + "-" + c.span_id + (c.sampled ? "-01" : "-00");
}

std::string new_trace_id() {
  return random_hex(32);
}
std::string new_span_id() {
  return random_hex(16);
}

std::int64_t unix_ns(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string otlp_json(const std::vector<span>& spans, std::string_view service_name) {
  using nlohmann::json;
  auto attribute = [](const std::string& key, const auto& value) {
    json v;
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) v = {{"stringValue", x}};
          // OTLP's JSON carries 64-bit integers as strings.
          if constexpr (std::is_same_v<T, std::int64_t>) v = {{"intValue", std::to_string(x)}};
          if constexpr (std::is_same_v<T, double>) v = {{"doubleValue", x}};
          if constexpr (std::is_same_v<T, bool>) v = {{"boolValue", x}};
        },
        value);
    return json{{"key", key}, {"value", v}};
  };
  json list = json::array();
  for (const auto& s : spans) {
    json attrs = json::array();
    for (const auto& [k, v] : s.attributes) attrs.push_back(attribute(k, v));
    json j = {{"traceId", s.trace_id},
              {"spanId", s.span_id},
              {"name", s.name},
              {"kind", static_cast<int>(s.kind)},
              {"startTimeUnixNano", std::to_string(s.start_unix_ns)},
              {"endTimeUnixNano", std::to_string(s.end_unix_ns)},
              {"attributes", attrs},
              {"status", s.error ? json{{"code", 2}, {"message", s.status_message}}
                                 : json::object()}};
    if (!s.parent_span_id.empty()) j["parentSpanId"] = s.parent_span_id;
    list.push_back(std::move(j));
  }
  json resource = {{"attributes",
                    json::array({attribute("service.name", std::variant<std::string, std::int64_t,
                                                                        double, bool>(
                                                               std::string(service_name)))})}};
  json out = {{"resourceSpans",
               json::array({{{"resource", resource},
                             {"scopeSpans",
                              json::array({{{"scope", {{"name", "meridian"}}},
                                            {"spans", list}}})}}})}};
  return out.dump();
}

span_exporter::span_exporter(exporter_options o) : o_(std::move(o)) {
  std::string rest = o_.endpoint.substr(o_.endpoint.find("//") + 2);
  const auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  path_ = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path_.empty() && path_.back() == '/') path_.pop_back();
  path_ += "/v1/traces";
  const auto colon = authority.rfind(':');
  host_ = authority.substr(0, colon);
  if (colon != std::string::npos) port_ = static_cast<std::uint16_t>(std::stoul(authority.substr(colon + 1)));
  if (host_.size() > 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
  thread_ = std::thread([this] { run(); });
}

span_exporter::~span_exporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void span_exporter::record(span s) {
  std::lock_guard lock(mu_);
  if (stopping_ || queue_.size() >= o_.max_queue) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_.push_back(std::move(s));
}

void span_exporter::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait_for(lock, o_.flush_interval, [&] { return stopping_; });
    while (!queue_.empty()) {
      std::vector<span> batch;
      while (!queue_.empty() && batch.size() < 512) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      lock.unlock();
      const bool ok = post(otlp_json(batch, o_.service_name));
      (ok ? exported_ : failed_).fetch_add(ok ? batch.size() : 1, std::memory_order_relaxed);
      if (!ok) dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
      lock.lock();
    }
    if (stopping_) return;
  }
}

bool span_exporter::post(const std::string& body) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found) != 0) return false;
  int fd = -1;
  timeval tv{static_cast<time_t>(o_.timeout.count() / 1000),
             static_cast<suseconds_t>((o_.timeout.count() % 1000) * 1000)};
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    // On Linux the send timeout bounds connect() too.
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return false;
  std::string request = "POST " + path_ + " HTTP/1.1\r\nHost: " + host_ + ":" +
                        std::to_string(port_) +
                        "\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  char head[64] = {};
  std::size_t got = 0;
  while (sent == request.size() && got < 12) {
    ssize_t n = ::recv(fd, head + got, sizeof head - 1 - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  // "HTTP/1.1 200": any 2xx is accepted.
  return got >= 12 && std::string_view(head, 9).starts_with("HTTP/1.") && head[9] == '2';
}

}  // namespace meridian::stats
