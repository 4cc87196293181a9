// The health book and its snapshots; see health.hpp for the circuit breaker's states.
#include "policies/health.hpp"

#include <algorithm>

namespace meridian::policies {

namespace {

// Compares `key` with the concatenation provider + '/' + model without building it, so a
// lookup on the routing path allocates nothing.
int compare_key(std::string_view key, std::string_view provider, std::string_view model) {
  std::size_t total = provider.size() + 1 + model.size();
  std::size_t n = std::min(key.size(), total);
  for (std::size_t i = 0; i < n; ++i) {
    char c = i < provider.size()    ? provider[i]
             : i == provider.size() ? '/'
                                    : model[i - provider.size() - 1];
    if (key[i] != c)
      return static_cast<unsigned char>(key[i]) < static_cast<unsigned char>(c) ? -1 : 1;
  }
  return key.size() < total ? -1 : key.size() > total ? 1 : 0;
}

std::string make_key(std::string_view provider, std::string_view model) {
  std::string key;
  key.reserve(provider.size() + 1 + model.size());
  key.append(provider).append(1, '/').append(model);
  return key;
}

void blend(std::optional<double>& ewma, std::optional<double> sample, double alpha) {
  if (!sample) return;
  ewma = ewma ? alpha * *sample + (1 - alpha) * *ewma : *sample;
}

// The circuit at `now`: an open circuit past its cooldown is ready for a probe.
circuit_state effective(const deployment_health& h, health_clock::time_point now,
                        const health_options& o) {
  if (h.circuit == circuit_state::open && now - h.opened_at >= o.cooldown)
    return circuit_state::half_open;
  return h.circuit;
}

}  // namespace

health_options health_options_from(const config::health_config& cfg) {
  health_options out;
  out.failure_threshold = cfg.failure_threshold;
  out.cooldown = std::chrono::duration_cast<health_clock::duration>(cfg.cooldown);
  out.recent_failure = std::chrono::duration_cast<health_clock::duration>(cfg.recent_failure);
  out.alpha = cfg.alpha;
  return out;
}

const deployment_health* health_snapshot::find(std::string_view provider,
                                               std::string_view model) const {
  if (!entries_) return nullptr;
  auto it = std::lower_bound(entries_->begin(), entries_->end(), 0, [&](const entry& e, int) {
    return compare_key(e.key, provider, model) < 0;
  });
  if (it == entries_->end() || compare_key(it->key, provider, model) != 0) return nullptr;
  return &it->health;
}

bool health_snapshot::admits(const deployment_health& h) const {
  switch (h.circuit) {
    case circuit_state::closed:
      return true;
    case circuit_state::open:
      return now_ - h.opened_at >= options_.cooldown;
    case circuit_state::half_open:
      // A probe whose outcome never came back must not hold the circuit shut forever.
      return now_ - h.probe_started >= options_.cooldown;
  }
  return true;
}

bool health_snapshot::failed_recently(const deployment_health& h) const {
  return h.last_failure && now_ - *h.last_failure < options_.recent_failure;
}

health_book::health_book(health_options options) : options_(options) {}

void health_book::set_options(health_options options) {
  std::lock_guard lock(mutex_);
  options_ = options;
}

deployment_health& health_book::slot(std::string_view provider, std::string_view model) {
  cached_.reset();
  std::string key = make_key(provider, model);
  auto it = book_.find(key);
  if (it == book_.end()) it = book_.emplace(std::move(key), deployment_health{}).first;
  return it->second;
}

health_snapshot health_book::snapshot(health_clock::time_point now) const {
  health_snapshot out;
  out.now_ = now;
  std::lock_guard lock(mutex_);
  out.options_ = options_;
  if (!cached_) {
    // std::map iterates in key order, which is the order find() searches.
    auto entries = std::make_shared<std::vector<health_snapshot::entry>>();
    entries->reserve(book_.size());
    for (const auto& [key, health] : book_) entries->push_back({key, health});
    cached_ = std::move(entries);
  }
  out.entries_ = cached_;
  return out;
}

bool health_book::try_acquire(std::string_view provider, std::string_view model,
                              health_clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = book_.find(make_key(provider, model));
  if (it == book_.end()) return true;
  deployment_health& h = it->second;
  switch (h.circuit) {
    case circuit_state::closed:
      return true;
    case circuit_state::open:
      if (now - h.opened_at < options_.cooldown) return false;
      break;
    case circuit_state::half_open:
      if (now - h.probe_started < options_.cooldown) return false;
      break;
  }
  cached_.reset();
  h.circuit = circuit_state::half_open;
  h.probe_started = now;
  return true;
}

void health_book::record_success(std::string_view provider, std::string_view model,
                                 health_clock::time_point /*now*/, const observation& seen) {
  std::lock_guard lock(mutex_);
  deployment_health& h = slot(provider, model);
  blend(h.latency_ms, seen.latency_ms, options_.alpha);
  blend(h.ttft_ms, seen.ttft_ms, options_.alpha);
  blend(h.tokens_per_s, seen.tokens_per_s, options_.alpha);
  if (seen.cache_share) {
    auto it = h.cache_share.find(seen.route);
    if (it == h.cache_share.end())
      h.cache_share.emplace(std::string(seen.route), *seen.cache_share);
    else
      it->second += options_.alpha * (*seen.cache_share - it->second);
  }
  h.error_streak = 0;
  // Any success, even a late one from before the circuit opened, shows the deployment answers.
  h.circuit = circuit_state::closed;
}

void health_book::record_failure(std::string_view provider, std::string_view model,
                                 health_clock::time_point now) {
  std::lock_guard lock(mutex_);
  deployment_health& h = slot(provider, model);
  ++h.error_streak;
  h.last_failure = now;
  if (h.circuit == circuit_state::half_open ||
      (h.circuit == circuit_state::closed && h.error_streak >= options_.failure_threshold)) {
    h.circuit = circuit_state::open;
    h.opened_at = now;
  }
  // Failures reported while already open (requests sent before it opened) keep the cooldown.
}

circuit_state health_book::state(std::string_view provider, std::string_view model,
                                 health_clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = book_.find(make_key(provider, model));
  return it == book_.end() ? circuit_state::closed : effective(it->second, now, options_);
}

}  // namespace meridian::policies
