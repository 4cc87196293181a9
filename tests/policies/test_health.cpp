// The health book: EWMAs, error streaks and the circuit breaker's transitions under injected
// time, and snapshots that do not change when the book does.
#include <doctest/doctest.h>

#include "policies/health.hpp"

using namespace meridian::policies;
using namespace std::chrono_literals;

namespace {
const health_clock::time_point t0 = health_clock::time_point{} + 1h;
}

TEST_CASE("an unknown deployment is closed and admitted") {
  health_book book;
  CHECK(book.state("p", "m", t0) == circuit_state::closed);
  CHECK(book.try_acquire("p", "m", t0));
  CHECK(book.snapshot(t0).find("p", "m") == nullptr);
}

TEST_CASE("EWMAs start at the first sample and then blend by alpha") {
  health_book book(health_options{.alpha = 0.5});
  book.record_success("p", "m", t0, {.latency_ms = 100, .ttft_ms = 40, .tokens_per_s = 10});
  book.record_success("p", "m", t0,
                      {.latency_ms = 300, .ttft_ms = std::nullopt, .tokens_per_s = 30});
  auto snap = book.snapshot(t0);
  const auto* h = snap.find("p", "m");
  REQUIRE(h);
  CHECK(*h->latency_ms == doctest::Approx(200));
  CHECK(*h->ttft_ms == doctest::Approx(40));  // a missing sample leaves the average alone
  CHECK(*h->tokens_per_s == doctest::Approx(20));
}

TEST_CASE("three consecutive failures open the circuit and a success in between resets") {
  health_book book;
  book.record_failure("p", "m", t0);
  book.record_failure("p", "m", t0);
  book.record_success("p", "m", t0);
  book.record_failure("p", "m", t0);
  book.record_failure("p", "m", t0);
  CHECK(book.state("p", "m", t0) == circuit_state::closed);
  book.record_failure("p", "m", t0 + 1s);
  CHECK(book.state("p", "m", t0 + 1s) == circuit_state::open);
  CHECK_FALSE(book.try_acquire("p", "m", t0 + 2s));
  auto snap = book.snapshot(t0 + 2s);
  REQUIRE(snap.find("p", "m"));
  CHECK(snap.find("p", "m")->error_streak == 3);
  CHECK_FALSE(snap.admits(*snap.find("p", "m")));
}

TEST_CASE("after the cooldown exactly one probe goes through and its success closes") {
  health_book book;
  for (int i = 0; i < 3; ++i) book.record_failure("p", "m", t0);
  CHECK_FALSE(book.try_acquire("p", "m", t0 + 29s));
  CHECK(book.state("p", "m", t0 + 30s) == circuit_state::half_open);
  CHECK(book.try_acquire("p", "m", t0 + 30s));        // the probe
  CHECK_FALSE(book.try_acquire("p", "m", t0 + 31s));  // everyone else waits for it
  book.record_success("p", "m", t0 + 32s, {.latency_ms = 50});
  CHECK(book.state("p", "m", t0 + 32s) == circuit_state::closed);
  CHECK(book.try_acquire("p", "m", t0 + 32s));
  CHECK(book.try_acquire("p", "m", t0 + 32s));
}

TEST_CASE("a failed probe reopens the circuit for a fresh cooldown") {
  health_book book;
  for (int i = 0; i < 3; ++i) book.record_failure("p", "m", t0);
  REQUIRE(book.try_acquire("p", "m", t0 + 30s));
  book.record_failure("p", "m", t0 + 31s);
  CHECK(book.state("p", "m", t0 + 31s) == circuit_state::open);
  CHECK_FALSE(book.try_acquire("p", "m", t0 + 60s));
  CHECK(book.try_acquire("p", "m", t0 + 61s));
}

TEST_CASE("a probe that never reports back is replaced after another cooldown") {
  health_book book;
  for (int i = 0; i < 3; ++i) book.record_failure("p", "m", t0);
  REQUIRE(book.try_acquire("p", "m", t0 + 30s));
  CHECK_FALSE(book.try_acquire("p", "m", t0 + 59s));
  CHECK(book.try_acquire("p", "m", t0 + 60s));
}

TEST_CASE("the threshold and cooldown are configurable") {
  health_book book(health_options{.failure_threshold = 1, .cooldown = 5s});
  book.record_failure("p", "m", t0);
  CHECK(book.state("p", "m", t0) == circuit_state::open);
  CHECK(book.state("p", "m", t0 + 5s) == circuit_state::half_open);
}

TEST_CASE("snapshots are immutable and see the time they were taken for") {
  health_book book;
  book.record_failure("p", "m", t0);
  auto before = book.snapshot(t0 + 1s);
  book.record_success("p", "m", t0 + 2s);
  auto after = book.snapshot(t0 + 40s);
  REQUIRE(before.find("p", "m"));
  CHECK(before.find("p", "m")->error_streak == 1);
  CHECK(after.find("p", "m")->error_streak == 0);
  CHECK(before.failed_recently(*before.find("p", "m")));
  CHECK_FALSE(after.failed_recently(*after.find("p", "m")));
  CHECK(before.now() == t0 + 1s);
}

TEST_CASE("snapshot lookups match provider and model exactly, slashes in ids included") {
  health_book book;
  book.record_failure("a", "b/c", t0);
  book.record_failure("a", "b", t0);
  book.record_failure("a", "b", t0);
  auto snap = book.snapshot(t0);
  REQUIRE(snap.find("a", "b"));
  CHECK(snap.find("a", "b")->error_streak == 2);
  REQUIRE(snap.find("a", "b/c"));
  CHECK(snap.find("a", "b/c")->error_streak == 1);
  CHECK(snap.find("a", "bc") == nullptr);
  CHECK(snap.find("", "a") == nullptr);
}

TEST_CASE("health options from the YAML health section drive the circuit breaker") {
  auto cfg = meridian::config::parse_config(
      "health: { failure_threshold: 1, cooldown: 5s, alpha: 0.5 }\n");
  auto options = health_options_from(cfg.health);
  CHECK(options.cooldown == std::chrono::seconds(5));
  CHECK(options.alpha == doctest::Approx(0.5));
  health_book book(options);
  auto t = health_clock::time_point{} + std::chrono::hours(1);
  book.record_failure("p", "m", t);
  CHECK(book.state("p", "m", t) == circuit_state::open);
  CHECK(book.state("p", "m", t + std::chrono::seconds(5)) == circuit_state::half_open);
}
