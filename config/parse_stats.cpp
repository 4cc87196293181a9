// The stats section (the ledger, its flushing and retention, the savings baseline) and the health
// section (the circuit breaker and its averages).
#include "config/detail.hpp"

#include <limits>
#include <string>
#include <string_view>

namespace meridian::config::detail {

stats_config parser::stats(const located& at, std::optional<located>& baseline_at) const {
  stats_config out;
  for (const auto& [key, value] : entries(
           at, {"ledger", "flush_interval", "retention", "baseline", "max_queue", "responses"})) {
    if (key == "ledger") {
      out.ledger = non_empty(value);
      out.ledger_path = ledger_path(value, out.ledger);
      if (out.ledger.rfind("postgres", 0) == 0) out.ledger_postgres = out.ledger;
    } else if (key == "flush_interval" || key == "retention") {
      duration d = convert(value, parse_duration);
      if (d.count() == 0) fail(value, "must be greater than zero");
      (key == "flush_interval" ? out.flush_interval : out.retention) = d;
    } else if (key == "baseline") {
      out.baseline = non_empty(value);
      auto slash = out.baseline.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == out.baseline.size())
        fail(value, "expected provider/model, got '" + out.baseline + "'");
      baseline_at = value;
    } else if (key == "responses") {
      out.responses = responses_store(value);
    } else {
      out.max_queue = unsigned_int(value, std::numeric_limits<std::uint32_t>::max());
      if (out.max_queue == 0) fail(value, "must be greater than zero");
    }
  }
  return out;
}

responses_store_config parser::responses_store(const located& at) const {
  responses_store_config out;
  for (const auto& [key, value] : entries(at, {"store", "retention", "max_bytes"})) {
    if (key == "store") {
      out.enabled = boolean(value);
    } else if (key == "retention") {
      out.retention = convert(value, parse_duration);
      if (out.retention.count() == 0) fail(value, "must be greater than zero");
    } else {
      out.max_bytes = convert(value, parse_size);
      if (out.max_bytes == 0)
        fail(value, "must be greater than zero (set store: false to keep none)");
    }
  }
  return out;
}

std::string parser::ledger_path(const located& at, const std::string& text) const {
  if (text == "none") return {};
  constexpr std::string_view sqlite = "sqlite:";
  if (text.rfind(sqlite, 0) == 0 && text.size() > sqlite.size()) return text.substr(sqlite.size());
  if (text.rfind("postgres://", 0) == 0 || text.rfind("postgresql://", 0) == 0) {
    // A password in the URL would put a secret in the YAML; libpq reads PGPASSWORD.
    auto at_sign = text.find('@');
    auto colon = text.find(':', text.find("//") + 2);
    if (at_sign != std::string::npos && colon < at_sign)
      fail(at, "the ledger URL must not carry a password; set PGPASSWORD (or ~/.pgpass)");
    return {};
  }
  fail(at, "expected sqlite:PATH, postgres://… or none, got '" + text + "'");
}

tracing_config parser::tracing(const located& at) const {
  tracing_config out;
  for (const auto& [key, value] :
       entries(at, {"endpoint", "service_name", "max_queue", "flush_interval"})) {
    if (key == "endpoint") {
      out.endpoint = non_empty(value);
      // OTLP/HTTP to a collector beside the gateway (a sidecar, the node's agent); TLS and
      // credentials belong to that collector's own export.
      if (out.endpoint.rfind("http://", 0) != 0 || out.endpoint.size() <= 7)
        fail(value, "expected the collector's http:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)");
    } else if (key == "service_name") {
      out.service_name = non_empty(value);
    } else if (key == "max_queue") {
      out.max_queue = unsigned_int(value, std::numeric_limits<std::uint32_t>::max());
      if (out.max_queue == 0) fail(value, "must be greater than zero");
    } else {
      out.flush_interval = convert(value, parse_duration);
      if (out.flush_interval.count() == 0) fail(value, "must be greater than zero");
    }
  }
  return out;
}

health_config parser::health(const located& at) const {
  health_config out;
  for (const auto& [key, value] :
       entries(at, {"failure_threshold", "cooldown", "recent_failure", "alpha"})) {
    if (key == "failure_threshold") {
      out.failure_threshold = static_cast<unsigned>(positive(value));
    } else if (key == "alpha") {
      double a = non_negative(value, "the weight of the newest sample");
      if (a <= 0 || a > 1)
        fail(value, "must be greater than 0 and at most 1, got '" + scalar(value) + "'");
      out.alpha = a;
    } else {
      duration d = convert(value, parse_duration);
      // A zero cooldown would let a probe through on every request to a failing provider.
      if (key == "cooldown" && d.count() == 0) fail(value, "must be greater than zero");
      (key == "cooldown" ? out.cooldown : out.recent_failure) = d;
    }
  }
  return out;
}

}  // namespace meridian::config::detail
