// Rate limits and budgets of virtual keys: the arithmetic (sliding windows, reservations) and
// where the counters live — in this process, or in Redis shared by a fleet of gateways.
// No Beast/Asio here; the Redis client is hiredis, blocking with a short timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "providers/catalog.hpp"

namespace meridian::access {

using wall_clock = std::chrono::system_clock;

// ---- rate limits: a sliding window over one minute ----
//
// Two fixed one-minute windows (aligned to the Unix epoch); the previous one counts in
// proportion to how much of it the sliding minute still covers:
//   count = previous × (1 − elapsed/60 s) + current
// The same rule runs locally and in Redis, so a fleet admits what one process would. Decisions
// compare count × 60 000 in exact integers (unit·milliseconds), never a rounded double; limits
// above k_max_rate are treated as k_max_rate (so Redis's Lua doubles stay exact).
constexpr std::chrono::milliseconds k_rate_window{60'000};
constexpr std::uint64_t k_max_rate = 100'000'000'000;

double sliding_count(std::uint64_t previous, std::uint64_t current, double elapsed_fraction);

// The fixed window `now` falls in (windows since the epoch) and how far into it.
struct rate_window {
  std::int64_t id = 0;
  std::chrono::milliseconds elapsed{0};
};
rate_window rate_window_of(wall_clock::time_point now);

struct key_limits {
  std::uint64_t rpm = 0;  // requests per sliding minute; 0 = no limit
  std::uint64_t tpm = 0;  // tokens per sliding minute; 0 = no limit
};

// The answer to one admission, with what OpenAI's x-ratelimit-* headers report. For each limit
// that is set (the fields stay 0 for an unset one):
//   remaining = floor(limit − sliding count), at least 0, after this request was counted;
//   reset     = time until `remaining` rises by one (0 when it already equals the limit);
// a limit refuses when its remaining is 0 before the request (so the request cannot fit).
// retry_after (refused only) is the longest reset among the refusing limits, rounded up to
// whole seconds, at least 1 s: the earliest time the same request could be admitted, unless
// others take the freed unit first.
struct admission {
  bool allowed = true;
  std::string_view refused_by;  // "requests" or "tokens" when refused ("requests" when both)
  std::uint64_t limit_requests = 0, remaining_requests = 0;
  std::uint64_t limit_tokens = 0, remaining_tokens = 0;
  std::chrono::milliseconds reset_requests{0}, reset_tokens{0};  // until a unit is free again
  std::chrono::milliseconds retry_after{0};                      // when refused
};

// The four counters an admission reads: both limits' previous and current fixed windows.
struct rate_counts {
  std::uint64_t previous_requests = 0, current_requests = 0;
  std::uint64_t previous_tokens = 0, current_tokens = 0;
};
// The decision and header figures for counters read `elapsed` into the current window (before
// this request). Pure; both stores use it, so they answer alike.
admission assess(const key_limits& limits, const rate_counts& before,
                 std::chrono::milliseconds elapsed);

// ---- budgets: reserve the most a request can cost, settle to what it cost ----

using micro_usd = std::int64_t;      // budgets count in millionths of a dollar: exact integer sums
micro_usd to_micro_usd(double usd);  // rounded up, so a reservation never undercounts

// A budget's UTC calendar period: "2026-11" or "2026-11-30", its start and its end.
struct budget_window {
  std::string id;
  wall_clock::time_point start, end;
};
budget_window budget_window_for(config::budget_period period, wall_clock::time_point now);

struct budget_state {
  micro_usd spent = 0;     // settled costs in the period
  micro_usd reserved = 0;  // reservations of requests still in flight
};

// Whether `amount` may be reserved: spent + reserved + amount ≤ limit. So concurrent requests
// never overspend by more than what settles above its reservation.
bool budget_fits(const budget_state& state, micro_usd limit, micro_usd amount);

// The output tokens a request may produce: what it asked for (max_tokens, else the
// state.reserve_tokens a budget reservation assumed) times its choices; nullopt when it asked
// for no limit and nothing was reserved.
std::optional<std::uint64_t> output_allowance(std::optional<std::uint64_t> max_tokens,
                                              bool reserved, std::uint64_t reserve_tokens,
                                              std::uint64_t choices);
// Where a relayed answer is cut: the allowance doubled plus 256 tokens. The margin covers the
// estimator's overcount (it counts one token per CJK character, about 1.7x what DeepSeek's and
// Qwen's tokenizers make of Chinese) so an upstream that honours max_tokens is never cut; one
// that ignores it is stopped and billed for at most about twice what was reserved.
std::uint64_t output_ceiling(std::uint64_t allowance);

// What a request reserves against its key's budget before anything goes upstream: the most it
// can cost. Every prompt byte taken as a token (a tokenizer never makes more tokens than bytes)
// at the dearer of the input and cache-write prices, plus `output_tokens` (an output_allowance)
// at the output price, at the dearest of the `models` it may be sent to. Concurrent requests
// then cannot overspend the budget together.
micro_usd reservation_amount(std::size_t prompt_bytes, std::uint64_t output_tokens,
                             const std::vector<const providers::model_info*>& models);

// How long a budget period's counters are kept after its end (late settles still land).
constexpr std::chrono::hours k_budget_grace{1};

struct reservation {
  bool granted = false;
  std::string id;  // names the reservation to settle; empty when not granted
  micro_usd amount = 0;
  budget_state after;  // the budget right after this reservation (or refusal)
  micro_usd limit = 0;
};

// ---- where the counters live ----

// The shared store did not answer within its timeout, or refused the command. The gateway then
// admits or refuses as `state.on_error` says, logs it and counts it.
struct state_unavailable {
  std::string message;
};
template <class T>
using state_result = std::variant<T, state_unavailable>;
struct done {};

// Thread-safe. Keys are virtual-key names.
class limit_state {
 public:
  virtual ~limit_state() = default;
  virtual std::string_view kind() const = 0;  // "local" or "redis"

  // Atomically: refuses when the sliding request count has reached rpm or the sliding token
  // count has reached tpm; otherwise counts one request. A refused request is not counted.
  // Precisely: refuses when floor(limit − count) = 0 for a set limit; see `admission`.
  virtual state_result<admission> admit(std::string_view key, const key_limits& limits,
                                        wall_clock::time_point now) = 0;
  // Adds a finished request's tokens to the key's token window.
  virtual state_result<done> add_tokens(std::string_view key, std::uint64_t tokens,
                                        wall_clock::time_point now) = 0;

  // Atomically reserves `amount` when budget_fits; a reservation lapses by itself after `ttl`
  // (a gateway that died mid-request frees its reservations). Lapse is judged by the callers'
  // clocks: a reservation made at `now` counts until now + ttl (exclusive).
  virtual state_result<reservation> reserve(std::string_view key, const budget_window& window,
                                            micro_usd limit, micro_usd amount,
                                            std::chrono::milliseconds ttl,
                                            wall_clock::time_point now) = 0;
  // Ends a reservation and adds the real cost to the period's spend. A reservation that already
  // lapsed, or one not granted, only adds the cost. Settling twice adds the cost twice.
  virtual state_result<done> settle(std::string_view key, const budget_window& window,
                                    const reservation& r, micro_usd actual) = 0;
  // Sets the period's spend when the store holds none for it yet (after a restart: from the
  // ledger). Never lowers a spend the store already has: the spend becomes max(held, spent).
  virtual state_result<done> seed_spent(std::string_view key, const budget_window& window,
                                        micro_usd spent) = 0;
  virtual state_result<budget_state> budget(std::string_view key, const budget_window& window,
                                            wall_clock::time_point now) = 0;
};

std::unique_ptr<limit_state> make_local_state();
// `options.url` is redis://host:port[/db]; connects lazily, one connection per calling thread,
// every command bounded by options.timeout. Throws std::invalid_argument on a malformed URL.
// Every check-and-update is one Lua script, so gateways sharing the Redis see one counter. Keys
// are `meridian:{<key>}:rpm|tpm:<minute>` (expire after two windows) and
// `meridian:{<key>}:spent|held:<period id>` (expire k_budget_grace after the period's end).
std::unique_ptr<limit_state> make_redis_state(const config::state_config& options);

}  // namespace meridian::access
