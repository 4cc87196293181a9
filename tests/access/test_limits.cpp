// Rate limits and budgets: sliding-window arithmetic, admission figures, budget periods and the
// in-process store. The store scenarios here also run against Redis (test_redis_state.cpp).
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "access/limits.hpp"

using namespace meridian;
using namespace std::chrono_literals;
using access::admission;
using access::budget_state;
using access::key_limits;
using access::limit_state;
using access::rate_counts;
using access::wall_clock;
using std::chrono::milliseconds;

namespace meridian::access::testing {

// 2026-11-30 10:00:00 UTC, the start of a one-minute window.
wall_clock::time_point window_start() {
  return std::chrono::sys_days{std::chrono::November / 30 / 2026} + 10h;
}

template <class T>
T value(state_result<T> r) {
  if (auto* failed = std::get_if<state_unavailable>(&r))
    FAIL("state unavailable: " << failed->message);
  return std::get<T>(std::move(r));
}

// rpm = 3 from a window's start: the figures at each step, refusals not counted, the rollover.
void check_rpm_sequence(limit_state& s, const std::string& key) {
  const auto t0 = window_start();
  const key_limits rpm3{.rpm = 3};
  const milliseconds resets[] = {120'000ms, 90'000ms, 80'000ms};
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto a = value(s.admit(key, rpm3, t0));
    CHECK(a.allowed);
    CHECK(a.limit_requests == 3);
    CHECK(a.remaining_requests == 2 - i);
    CHECK(a.reset_requests == resets[i]);
    CHECK(a.limit_tokens == 0);
    CHECK(a.retry_after == 0ms);
  }
  for (int i = 0; i < 3; ++i) {  // refused, and so not counted: the same answer each time
    auto a = value(s.admit(key, rpm3, t0 + 1ms));
    CHECK_FALSE(a.allowed);
    CHECK(a.refused_by == "requests");
    CHECK(a.remaining_requests == 0);
    CHECK(a.reset_requests == 79'999ms);
    CHECK(a.retry_after == 80s);
  }
  auto half = value(s.admit(key, rpm3, t0 + 30s));  // the previous window is empty: still 3
  CHECK_FALSE(half.allowed);
  CHECK(half.reset_requests == 50'000ms);
  CHECK(half.retry_after == 50s);
  // Next window, 20 s in: 3 × (1 − 1/3) = 2 exactly, so one more fits.
  auto next = value(s.admit(key, rpm3, t0 + 80s));
  CHECK(next.allowed);
  CHECK(next.remaining_requests == 0);
  CHECK(next.reset_requests == 20'000ms);  // at 40 s: 3 × 1/3 + 1 = 2
  auto again = value(s.admit(key, rpm3, t0 + 80s));
  CHECK_FALSE(again.allowed);
  CHECK(again.retry_after == 20s);
  // Two windows after that one, everything has gone.
  auto later = value(s.admit(key, rpm3, t0 + 180s));
  CHECK(later.allowed);
  CHECK(later.remaining_requests == 2);
  CHECK(later.reset_requests == 120'000ms);
}

// tpm = 1000 with rpm = 5: token figures, a refusal by tokens that does not count the request.
void check_tpm_sequence(limit_state& s, const std::string& key) {
  const auto t0 = window_start() + 60s;
  const key_limits limits{.rpm = 5, .tpm = 1000};
  auto first = value(s.admit(key, limits, t0));
  CHECK(first.allowed);
  CHECK(first.limit_tokens == 1000);
  CHECK(first.remaining_tokens == 1000);
  CHECK(first.reset_tokens == 0ms);
  CHECK(first.remaining_requests == 4);
  value(s.add_tokens(key, 600, t0));
  auto second = value(s.admit(key, limits, t0 + 1s));
  CHECK(second.allowed);
  CHECK(second.remaining_tokens == 400);
  CHECK(second.reset_tokens == 59'100ms);  // 600 tokens decay 1 per 100 ms in the next window
  CHECK(second.remaining_requests == 3);
  value(s.add_tokens(key, 400, t0 + 1s));
  for (int i = 0; i < 2; ++i) {
    auto refused = value(s.admit(key, limits, t0 + 2s));
    CHECK_FALSE(refused.allowed);
    CHECK(refused.refused_by == "tokens");
    CHECK(refused.remaining_tokens == 0);
    CHECK(refused.reset_tokens == 58'060ms);
    CHECK(refused.retry_after == 59s);
    CHECK(refused.remaining_requests == 3);  // not counted
  }
  auto next = value(s.admit(key, limits, t0 + 90s));  // 1000 × 1/2 left
  CHECK(next.allowed);
  CHECK(next.remaining_tokens == 500);
  CHECK(next.remaining_requests == 3);  // 2 × 1/2 + 1 counted now
}

// Reserve, refuse, settle, seed: the budget's arithmetic in micro-dollars.
void check_budget_arithmetic(limit_state& s, const std::string& key, wall_clock::time_point now) {
  const auto w = budget_window_for(config::budget_period::month, now);
  auto a = value(s.reserve(key, w, 1000, 600, 60s, now));
  CHECK(a.granted);
  CHECK_FALSE(a.id.empty());
  CHECK(a.after.reserved == 600);
  CHECK(a.limit == 1000);
  auto b = value(s.reserve(key, w, 1000, 400, 60s, now));  // exactly at the limit
  CHECK(b.granted);
  CHECK(b.id != a.id);
  CHECK(b.after.spent == 0);
  CHECK(b.after.reserved == 1000);
  auto over = value(s.reserve(key, w, 1000, 1, 60s, now));  // one micro-dollar over
  CHECK_FALSE(over.granted);
  CHECK(over.id.empty());
  CHECK(over.after.reserved == 1000);
  value(s.settle(key, w, a, 250));  // lowers reserved by 600, raises spent by 250
  auto st = value(s.budget(key, w, now));
  CHECK(st.spent == 250);
  CHECK(st.reserved == 400);
  CHECK_FALSE(value(s.reserve(key, w, 1000, 351, 60s, now)).granted);
  auto c = value(s.reserve(key, w, 1000, 350, 60s, now));
  CHECK(c.granted);
  CHECK(c.after.spent + c.after.reserved == 1000);
  value(s.settle(key, w, b, 400));
  value(s.settle(key, w, c, 0));
  st = value(s.budget(key, w, now));
  CHECK(st.spent == 650);
  CHECK(st.reserved == 0);
  value(s.seed_spent(key, w, 100));  // never lowers
  CHECK(value(s.budget(key, w, now)).spent == 650);
  value(s.seed_spent(key, w, 700));
  CHECK(value(s.budget(key, w, now)).spent == 700);
  value(s.settle(key, w, over, 5));  // not granted: only the cost counts
  st = value(s.budget(key, w, now));
  CHECK(st.spent == 705);
  CHECK(st.reserved == 0);
  // Another period of the same key is separate; a fresh period takes a seed.
  const auto day = budget_window_for(config::budget_period::day, now);
  CHECK(value(s.budget(key, day, now)).spent == 0);
  value(s.seed_spent(key, day, 42));
  CHECK(value(s.budget(key, day, now)).spent == 42);
}

// A reservation holds until now + ttl, then frees itself; settling it afterwards adds the cost.
void check_reservation_lapse(limit_state& s, const std::string& key, wall_clock::time_point now) {
  const auto w = budget_window_for(config::budget_period::day, now);
  auto r = value(s.reserve(key, w, 100, 100, 1s, now));
  CHECK(r.granted);
  CHECK_FALSE(value(s.reserve(key, w, 100, 1, 1s, now + 999ms)).granted);
  CHECK(value(s.budget(key, w, now + 999ms)).reserved == 100);
  CHECK(value(s.budget(key, w, now + 1s)).reserved == 0);
  auto again = value(s.reserve(key, w, 100, 70, 10s, now + 1s));
  CHECK(again.granted);
  value(s.settle(key, w, r, 30));
  auto st = value(s.budget(key, w, now + 1s));
  CHECK(st.spent == 30);
  CHECK(st.reserved == 70);  // the live reservation is untouched
}

}  // namespace meridian::access::testing

using namespace meridian::access::testing;

TEST_CASE("limits: sliding count at the window's start, half way, rollover and two later") {
  CHECK(access::sliding_count(10, 4, 0.0) == 14.0);
  CHECK(access::sliding_count(10, 4, 0.25) == 11.5);
  CHECK(access::sliding_count(10, 4, 0.5) == 9.0);
  CHECK(access::sliding_count(10, 4, 1.0) == 4.0);
  CHECK(access::sliding_count(4, 0, 0.0) == 4.0);  // rolled over: current became previous
  CHECK(access::sliding_count(0, 0, 0.0) == 0.0);  // two windows later
  CHECK(access::sliding_count(10, 4, -1.0) == 14.0);
  CHECK(access::sliding_count(10, 4, 2.0) == 4.0);
}

TEST_CASE("limits: fixed windows are epoch-aligned minutes") {
  const auto start = access::rate_window_of(window_start());
  CHECK(start.elapsed == 0ms);
  CHECK(start.id * 60'000 ==
        std::chrono::duration_cast<milliseconds>(window_start().time_since_epoch()).count());
  const auto end = access::rate_window_of(window_start() + 59'999ms);
  CHECK(end.id == start.id);
  CHECK(end.elapsed == 59'999ms);
  CHECK(access::rate_window_of(window_start() + 60s).id == start.id + 1);
  const auto before_epoch = access::rate_window_of(wall_clock::time_point(-1ms));
  CHECK(before_epoch.id == -1);
  CHECK(before_epoch.elapsed == 59'999ms);
}

TEST_CASE("limits: assess decides in exact integers and reports the headers' figures") {
  // 60 requests of the previous window, 20 s into this one: 60 × 2/3 = 40, exactly.
  auto a = access::assess({.rpm = 41}, {.previous_requests = 60}, 20s);
  CHECK(a.allowed);
  CHECK(a.remaining_requests == 0);
  CHECK(a.reset_requests == 1'000ms);  // 60 per minute decay: one per second
  auto b = access::assess({.rpm = 40}, {.previous_requests = 60}, 20s);
  CHECK_FALSE(b.allowed);
  CHECK(b.reset_requests == 1'000ms);
  CHECK(b.retry_after == 1s);
  // No limits: always allowed, no figures.
  auto c = access::assess({}, {.previous_requests = 9, .current_tokens = 9}, 0ms);
  CHECK(c.allowed);
  CHECK(c.limit_requests == 0);
  CHECK(c.remaining_tokens == 0);
  // Both refuse: "requests" is named, retry_after waits for both.
  auto d =
      access::assess({.rpm = 1, .tpm = 10}, {.current_requests = 1, .current_tokens = 20}, 0ms);
  CHECK_FALSE(d.allowed);
  CHECK(d.refused_by == "requests");
  CHECK(d.reset_requests == 120'000ms);          // the request decays over the next window
  CHECK(d.reset_tokens == 60'000ms + 33'000ms);  // 20 × (1 − t/60) ≤ 9 at t = 33 s
  CHECK(d.retry_after == 120s);
  // Sub-second waits still ask for one second.
  auto e = access::assess({.rpm = 30'000}, {.previous_requests = 60'000}, 30s);
  CHECK_FALSE(e.allowed);
  CHECK(e.reset_requests == 1ms);
  CHECK(e.retry_after == 1s);
}

TEST_CASE("limits: micro-dollars round up but not for decimal noise") {
  CHECK(access::to_micro_usd(0) == 0);
  CHECK(access::to_micro_usd(-1) == 0);
  CHECK(access::to_micro_usd(0.000001) == 1);
  CHECK(access::to_micro_usd(0.0000011) == 2);
  CHECK(access::to_micro_usd(1.5) == 1'500'000);
  CHECK(access::to_micro_usd(0.1 + 0.2) == 300'000);
  CHECK(access::to_micro_usd(0.00000001) == 1);
  CHECK(access::to_micro_usd(12.3456789) == 12'345'679);
}

TEST_CASE("limits: budget_fits is spent plus reserved plus amount within the limit") {
  CHECK(access::budget_fits({.spent = 400, .reserved = 500}, 1000, 100));
  CHECK_FALSE(access::budget_fits({.spent = 400, .reserved = 500}, 1000, 101));
  CHECK(access::budget_fits({}, 0, 0));
  CHECK_FALSE(access::budget_fits({}, 0, 1));
}

TEST_CASE("limits: a reservation is every prompt byte as a token plus the output, dearest model") {
  meridian::providers::model_info cheap, dear, cache_heavy;
  cheap.input = 1.0;  // USD per million tokens
  cheap.output = 2.0;
  dear.input = 3.0;
  dear.output = 15.0;
  cache_heavy.input = 1.0;
  cache_heavy.cache_write = 10.0;  // the dearer of input and cache-write prices is taken
  cache_heavy.output = 1.0;
  using access::reservation_amount;
  // 1000 bytes and 100 output tokens: cheap 1000*1 + 100*2 = 1200 micro-dollars.
  CHECK(reservation_amount(1000, 100, {&cheap}) == 1200);
  CHECK(reservation_amount(1000, 100, {&cheap, &dear}) == 1000 * 3 + 100 * 15);
  CHECK(reservation_amount(1000, 100, {&cache_heavy, &cheap}) == 1000 * 10 + 100 * 1);
  CHECK(reservation_amount(0, 0, {&dear}) == 0);
  CHECK(reservation_amount(1000, 100, {}) == 0);
  // With a budget and no max_tokens, state.reserve_tokens per choice is what is reserved.
  CHECK(access::output_allowance(std::nullopt, true, 4096, 3) == 3 * 4096);
  CHECK(access::output_allowance(std::nullopt, false, 4096, 1) == std::nullopt);
}

TEST_CASE("limits: budget windows are UTC calendar days and months") {
  using namespace std::chrono;
  using config::budget_period;
  const auto at = [](year_month_day d, hours h = 0h) {
    return wall_clock::time_point(sys_days{d} + h);
  };
  auto d = access::budget_window_for(budget_period::day, at(2026y / November / 30, 13h) + 45min);
  CHECK(d.id == "2026-11-30");
  CHECK(d.start == at(2026y / November / 30));
  CHECK(d.end == at(2026y / December / 1));
  CHECK(access::budget_window_for(budget_period::day, at(2026y / December / 1)).id == "2026-12-01");
  CHECK(access::budget_window_for(budget_period::day, at(2026y / December / 1) - 1ns).id ==
        "2026-11-30");
  auto eve = access::budget_window_for(budget_period::day, at(2026y / December / 31, 23h));
  CHECK(eve.id == "2026-12-31");
  CHECK(eve.end == at(2027y / January / 1));
  auto dec = access::budget_window_for(budget_period::month, at(2026y / December / 15));
  CHECK(dec.id == "2026-12");
  CHECK(dec.start == at(2026y / December / 1));
  CHECK(dec.end == at(2027y / January / 1));
  auto jan = access::budget_window_for(budget_period::month, at(2027y / January / 1));
  CHECK(jan.id == "2027-01");
  auto leap = access::budget_window_for(budget_period::month, at(2028y / February / 29, 12h));
  CHECK(leap.id == "2028-02");
  CHECK(leap.end - leap.start == days{29});
  CHECK(access::budget_window_for(budget_period::day, at(2028y / February / 29)).end ==
        at(2028y / March / 1));
  auto plain = access::budget_window_for(budget_period::month, at(2027y / February / 3));
  CHECK(plain.end - plain.start == days{28});
}

TEST_CASE("local state: rpm admission sequence") {
  auto s = access::make_local_state();
  CHECK(s->kind() == "local");
  check_rpm_sequence(*s, "k");
}

TEST_CASE("local state: tpm admission sequence") {
  auto s = access::make_local_state();
  check_tpm_sequence(*s, "k");
}

TEST_CASE("local state: keys count separately") {
  auto s = access::make_local_state();
  const auto t = window_start();
  CHECK(value(s->admit("a", {.rpm = 1}, t)).allowed);
  CHECK_FALSE(value(s->admit("a", {.rpm = 1}, t)).allowed);
  CHECK(value(s->admit("b", {.rpm = 1}, t)).allowed);
}

TEST_CASE("local state: reservation arithmetic") {
  auto s = access::make_local_state();
  check_budget_arithmetic(*s, "k", window_start());
}

TEST_CASE("local state: a reservation lapses after its ttl") {
  auto s = access::make_local_state();
  check_reservation_lapse(*s, "k", window_start());
}

TEST_CASE("local state: old windows and ended periods are swept") {
  auto s = access::make_local_state();
  const auto t = window_start();
  const auto w = access::budget_window_for(config::budget_period::day, t);
  value(s->seed_spent("k", w, 10));
  CHECK(value(s->budget("k", w, w.end + access::k_budget_grace - 1s)).spent == 10);
  // The next sweep (a window later) drops the period.
  CHECK(value(s->budget("k", w, w.end + access::k_budget_grace + 61s)).spent == 0);
}

TEST_CASE("local state: 16 threads reserving and settling never exceed the budget") {
  auto s = access::make_local_state();
  const auto now = window_start();
  const auto w = access::budget_window_for(config::budget_period::month, now);
  constexpr access::micro_usd limit = 50'000;
  std::atomic<int> granted{0}, refused{0}, breaches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 2000; ++i) {
        const access::micro_usd amount = 1 + rng() % 100;
        auto r = std::get<access::reservation>(s->reserve("k", w, limit, amount, 60s, now));
        if (r.after.spent + r.after.reserved > limit) ++breaches;
        if (!r.granted) {
          ++refused;
          continue;
        }
        ++granted;
        s->settle("k", w, r, static_cast<access::micro_usd>(rng() % (amount + 1)));
      }
    });
  for (auto& t : threads) t.join();
  const auto st = value(s->budget("k", w, now));
  MESSAGE("granted " << granted.load() << ", refused " << refused.load() << ", spent " << st.spent);
  CHECK(breaches == 0);
  CHECK(st.reserved == 0);
  CHECK(st.spent <= limit);
  CHECK(granted + refused == 32'000);
  CHECK(refused > 0);  // the budget did run out
}

TEST_CASE("local state: 16 threads admitting against rpm 1000 admit exactly 1000") {
  auto s = access::make_local_state();
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        if (value(s->admit("k", {.rpm = 1000}, window_start())).allowed) ++admitted;
    });
  for (auto& t : threads) t.join();
  CHECK(admitted == 1000);
}
