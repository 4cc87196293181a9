// Per-deployment health: EWMA latency, time to first token and throughput, the error streak and
// a circuit breaker. The book is shared and thread-safe; the router reads an immutable snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace meridian::policies {

using health_clock = std::chrono::steady_clock;

struct health_options {
  unsigned failure_threshold = 3;  // consecutive failures that open the circuit
  health_clock::duration cooldown = std::chrono::seconds(30);        // open -> half-open
  health_clock::duration recent_failure = std::chrono::seconds(30);  // the default policy skips
  double alpha = 0.2;  // EWMA weight of the newest sample
};

// The options the YAML `health` section asks for (already validated by the config parser).
health_options health_options_from(const config::health_config& cfg);

// closed: traffic flows. open: nothing is sent until the cooldown ends. half_open: one probe is
// in flight; its outcome closes or reopens the circuit.
enum class circuit_state { closed, open, half_open };

struct deployment_health {
  std::optional<double> latency_ms, ttft_ms, tokens_per_s;  // EWMAs; unset until observed
  unsigned error_streak = 0;
  std::optional<health_clock::time_point> last_failure;
  circuit_state circuit = circuit_state::closed;
  health_clock::time_point opened_at{};      // when the circuit last opened
  health_clock::time_point probe_started{};  // when the half-open probe was let through
  // The share of prompt tokens served from the provider's cache, an EWMA per route (the route's
  // match; "" for a model addressed directly): what its effective price is computed from.
  std::map<std::string, double, std::less<>> cache_share;
  std::optional<double> cache_share_for(std::string_view route) const {
    auto it = cache_share.find(route);
    return it == cache_share.end() ? std::nullopt : std::optional<double>(it->second);
  }
};

// One finished request, as the gateway measured it.
struct observation {
  std::optional<double> latency_ms, ttft_ms, tokens_per_s;
  std::optional<double> cache_share;  // cache_read / prompt tokens, when the prompt had tokens
  std::string_view route;             // the route it was served under ("" for none)
};

// An immutable view of the book at `now`. Cheap to copy (one shared pointer).
class health_snapshot {
 public:
  health_snapshot() = default;  // nothing observed: every deployment is healthy and unknown

  // nullptr when the deployment was never observed.
  const deployment_health* find(std::string_view provider, std::string_view model) const;
  health_clock::time_point now() const { return now_; }
  const health_options& options() const { return options_; }
  // Whether a request may be sent now: closed, or open past its cooldown (the probe is free),
  // or half-open with a probe that has been outstanding longer than the cooldown (lost).
  bool admits(const deployment_health& h) const;
  bool failed_recently(const deployment_health& h) const;

 private:
  friend class health_book;
  struct entry {
    std::string key;  // "provider/model"
    deployment_health health;
  };
  std::shared_ptr<const std::vector<entry>> entries_;  // sorted by key
  health_clock::time_point now_{};
  health_options options_;
};

class health_book {
 public:
  explicit health_book(health_options options = {});

  health_snapshot snapshot(health_clock::time_point now) const;
  // A reload's new thresholds and averages; what the book has observed stays.
  void set_options(health_options options);

  // Call right before sending. False when the circuit refuses; true claims the half-open probe.
  bool try_acquire(std::string_view provider, std::string_view model, health_clock::time_point now);
  void record_success(std::string_view provider, std::string_view model,
                      health_clock::time_point now, const observation& seen = {});
  void record_failure(std::string_view provider, std::string_view model,
                      health_clock::time_point now);
  // The circuit as seen at `now` (open past its cooldown reads as half_open).
  circuit_state state(std::string_view provider, std::string_view model,
                      health_clock::time_point now) const;

 private:
  deployment_health& slot(std::string_view provider, std::string_view model);

  health_options options_;
  mutable std::mutex mutex_;
  std::map<std::string, deployment_health, std::less<>> book_;
  mutable std::shared_ptr<const std::vector<health_snapshot::entry>> cached_;  // null = stale
};

}  // namespace meridian::policies
