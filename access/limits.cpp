// Limit arithmetic shared by both stores (sliding windows, admission figures, budget periods)
// and the in-process store.
#include "access/limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

namespace meridian::access {

using std::chrono::milliseconds;

double sliding_count(std::uint64_t previous, std::uint64_t current, double elapsed_fraction) {
  const double f = std::clamp(elapsed_fraction, 0.0, 1.0);
  return static_cast<double>(previous) * (1.0 - f) + static_cast<double>(current);
}

namespace {

constexpr std::uint64_t k_window_ms = k_rate_window.count();

// One limit's figures. Counts are scaled by the window: c = previous × (W − elapsed) + current × W.
struct limit_figures {
  bool fits = true;
  std::uint64_t remaining = 0;
  milliseconds reset{0};
};

// How long until the scaled count drops by `drop`: until the roll it falls by `previous` per ms,
// after it by `current` per ms (the current window is then the previous one).
milliseconds time_to_drop(std::uint64_t previous, std::uint64_t current, std::uint64_t elapsed,
                          std::uint64_t drop) {
  const std::uint64_t left = k_window_ms - elapsed;
  if (previous * left >= drop) return milliseconds((drop + previous - 1) / previous);
  drop -= previous * left;
  if (current * k_window_ms >= drop) return milliseconds(left + (drop + current - 1) / current);
  return milliseconds(left + k_window_ms);
}

// `take` is what this request adds to the current window when admitted (1 request, 0 tokens).
limit_figures figures(std::uint64_t limit, std::uint64_t previous, std::uint64_t current,
                      std::uint64_t elapsed, std::uint64_t take) {
  if (limit == 0) return {};
  limit = std::min(limit, k_max_rate);
  previous = std::min(previous, k_max_rate);
  current = std::min(current, k_max_rate);
  const auto scaled = [&](std::uint64_t cur) {
    return previous * (k_window_ms - elapsed) + cur * k_window_ms;
  };
  const std::uint64_t full = limit * k_window_ms;
  limit_figures f;
  f.fits = scaled(current) + k_window_ms <= full;
  if (f.fits) current += take;
  const std::uint64_t c = scaled(current);
  f.remaining = c < full ? (full - c) / k_window_ms : 0;
  if (f.remaining < limit)
    f.reset = time_to_drop(previous, current, elapsed, c - (limit - f.remaining - 1) * k_window_ms);
  return f;
}

}  // namespace

admission assess(const key_limits& limits, const rate_counts& before, milliseconds elapsed) {
  const auto e = static_cast<std::uint64_t>(
      std::clamp<std::int64_t>(elapsed.count(), 0, static_cast<std::int64_t>(k_window_ms) - 1));
  auto requests = figures(limits.rpm, before.previous_requests, before.current_requests, e, 1);
  const auto tokens = figures(limits.tpm, before.previous_tokens, before.current_tokens, e, 0);
  admission a;
  a.allowed = requests.fits && tokens.fits;
  // A request refused by tokens alone is not counted either.
  if (requests.fits && !tokens.fits)
    requests = figures(limits.rpm, before.previous_requests, before.current_requests, e, 0);
  a.limit_requests = std::min(limits.rpm, k_max_rate);
  a.remaining_requests = requests.remaining;
  a.reset_requests = requests.reset;
  a.limit_tokens = std::min(limits.tpm, k_max_rate);
  a.remaining_tokens = tokens.remaining;
  a.reset_tokens = tokens.reset;
  if (!a.allowed) {
    a.refused_by = requests.fits ? "tokens" : "requests";
    milliseconds wait{0};
    if (!requests.fits) wait = std::max(wait, requests.reset);
    if (!tokens.fits) wait = std::max(wait, tokens.reset);
    a.retry_after = std::max<milliseconds>(std::chrono::ceil<std::chrono::seconds>(wait),
                                           std::chrono::seconds(1));
  }
  return a;
}

micro_usd to_micro_usd(double usd) {
  if (!(usd > 0)) return 0;  // also NaN
  const double m = usd * 1e6;
  if (m >= 9e18) return std::numeric_limits<micro_usd>::max();
  // Up, but not for the binary noise of a decimal price: 0.000001 USD is 1, not 2.
  const double nearest = std::nearbyint(m);
  if (std::abs(m - nearest) <= 1e-9 * std::max(1.0, m)) return static_cast<micro_usd>(nearest);
  return static_cast<micro_usd>(std::ceil(m));
}

budget_window budget_window_for(config::budget_period period, wall_clock::time_point now) {
  using namespace std::chrono;
  const sys_days today = floor<days>(now);
  const year_month_day ymd{today};
  const int y = static_cast<int>(ymd.year());
  const unsigned m = static_cast<unsigned>(ymd.month());
  char id[32];
  if (period == config::budget_period::day) {
    std::snprintf(id, sizeof id, "%04d-%02u-%02u", y, m, static_cast<unsigned>(ymd.day()));
    return {id, today, today + days{1}};
  }
  const year_month month = ymd.year() / ymd.month();
  std::snprintf(id, sizeof id, "%04d-%02u", y, m);
  return {id, sys_days{month / 1}, sys_days{(month + months{1}) / 1}};
}

bool budget_fits(const budget_state& state, micro_usd limit, micro_usd amount) {
  return amount <= limit - state.spent - state.reserved;
}

rate_window rate_window_of(wall_clock::time_point now) {
  const auto ms = std::chrono::floor<milliseconds>(now.time_since_epoch()).count();
  const auto w = static_cast<std::int64_t>(k_window_ms);
  const std::int64_t id = ms >= 0 ? ms / w : -((-ms + w - 1) / w);
  return {id, milliseconds(ms - id * w)};
}

namespace {

// One mutex for the whole store: every operation is a few map look-ups.
class local_state final : public limit_state {
 public:
  std::string_view kind() const override { return "local"; }

  state_result<admission> admit(std::string_view key, const key_limits& limits,
                                wall_clock::time_point now) override {
    const auto window = rate_window_of(now);
    std::lock_guard lock(mutex_);
    sweep(now);
    auto& r = roll(key, window.id);
    auto a = assess(limits, r.counts, window.elapsed);
    if (a.allowed) ++r.counts.current_requests;
    return a;
  }

  state_result<done> add_tokens(std::string_view key, std::uint64_t tokens,
                                wall_clock::time_point now) override {
    if (tokens == 0) return done{};
    std::lock_guard lock(mutex_);
    sweep(now);
    roll(key, rate_window_of(now).id).counts.current_tokens += tokens;
    return done{};
  }

  state_result<reservation> reserve(std::string_view key, const budget_window& window,
                                    micro_usd limit, micro_usd amount, milliseconds ttl,
                                    wall_clock::time_point now) override {
    amount = std::max<micro_usd>(amount, 0);
    std::lock_guard lock(mutex_);
    sweep(now);
    auto& p = period_of(key, window);
    lapse(p, now);
    reservation r{.amount = amount, .limit = limit};
    r.granted = budget_fits(p.state, limit, amount);
    if (r.granted) {
      r.id = std::to_string(++next_id_);
      p.held.emplace(r.id, held_amount{amount, now + ttl});
      p.state.reserved += amount;
    }
    r.after = p.state;
    return r;
  }

  state_result<done> settle(std::string_view key, const budget_window& window, const reservation& r,
                            micro_usd actual) override {
    std::lock_guard lock(mutex_);
    auto& p = period_of(key, window);
    if (auto it = p.held.find(r.id); it != p.held.end()) {
      p.state.reserved -= it->second.amount;
      p.held.erase(it);
    }
    p.state.spent += std::max<micro_usd>(actual, 0);
    return done{};
  }

  state_result<done> seed_spent(std::string_view key, const budget_window& window,
                                micro_usd spent) override {
    std::lock_guard lock(mutex_);
    auto& p = period_of(key, window);
    p.state.spent = std::max(p.state.spent, spent);
    return done{};
  }

  state_result<budget_state> budget(std::string_view key, const budget_window& window,
                                    wall_clock::time_point now) override {
    std::lock_guard lock(mutex_);
    sweep(now);
    auto it = periods_.find({std::string(key), window.id});
    if (it == periods_.end()) return budget_state{};
    lapse(it->second, now);
    return it->second.state;
  }

 private:
  struct rate {
    std::int64_t window = std::numeric_limits<std::int64_t>::min();
    rate_counts counts;
  };
  struct held_amount {
    micro_usd amount;
    wall_clock::time_point expires;
  };
  struct period {
    budget_state state;
    std::map<std::string, held_amount> held;  // by reservation id
    wall_clock::time_point end;
  };

  // The key's counters with `id` as the current window (a `now` older than the newest seen
  // counts in the newest window).
  rate& roll(std::string_view key, std::int64_t id) {
    auto& r = rates_[std::string(key)];
    if (id > r.window) {
      const bool next = r.window != std::numeric_limits<std::int64_t>::min() && id == r.window + 1;
      r.counts.previous_requests = next ? r.counts.current_requests : 0;
      r.counts.previous_tokens = next ? r.counts.current_tokens : 0;
      r.counts.current_requests = r.counts.current_tokens = 0;
      r.window = id;
    }
    return r;
  }

  period& period_of(std::string_view key, const budget_window& window) {
    auto [it, added] = periods_.try_emplace({std::string(key), window.id});
    if (added) it->second.end = window.end;
    return it->second;
  }

  static void lapse(period& p, wall_clock::time_point now) {
    std::erase_if(p.held, [&](const auto& h) {
      if (h.second.expires > now) return false;
      p.state.reserved -= h.second.amount;
      return true;
    });
  }

  // Once a window: drops rate counters two windows old, lapsed reservations and periods that
  // ended more than k_budget_grace ago. Nothing accumulates beyond what is still current.
  void sweep(wall_clock::time_point now) {
    if (now < next_sweep_) return;
    next_sweep_ = now + k_rate_window;
    const auto current = rate_window_of(now).id;
    std::erase_if(rates_, [&](const auto& r) { return r.second.window < current - 1; });
    for (auto it = periods_.begin(); it != periods_.end();) {
      lapse(it->second, now);
      it = it->second.end + k_budget_grace < now ? periods_.erase(it) : std::next(it);
    }
  }

  std::mutex mutex_;
  std::unordered_map<std::string, rate> rates_;
  std::map<std::pair<std::string, std::string>, period> periods_;  // by (key, period id)
  std::uint64_t next_id_ = 0;
  wall_clock::time_point next_sweep_{};
};

}  // namespace

std::unique_ptr<limit_state> make_local_state() {
  return std::make_unique<local_state>();
}

std::optional<std::uint64_t> output_allowance(std::optional<std::uint64_t> max_tokens,
                                              bool reserved, std::uint64_t reserve_tokens,
                                              std::uint64_t choices) {
  if (!max_tokens && !reserved) return std::nullopt;
  return max_tokens.value_or(reserve_tokens) * std::max<std::uint64_t>(choices, 1);
}

std::uint64_t output_ceiling(std::uint64_t allowance) {
  return allowance * 2 + 256;
}

micro_usd reservation_amount(std::size_t prompt_bytes, std::uint64_t output_tokens,
                             const std::vector<const providers::model_info*>& models) {
  micro_usd amount = 0;
  for (const auto* m : models) {
    const double usd = (static_cast<double>(prompt_bytes) * std::max(m->input, m->cache_write) +
                        static_cast<double>(output_tokens) * m->output) /
                       1e6;
    amount = std::max(amount, to_micro_usd(usd));
  }
  return amount;
}

}  // namespace meridian::access
