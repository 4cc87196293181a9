// The attempt loop's decisions, tested without sockets.
#include <doctest/doctest.h>

#include "policies/fallback.hpp"

using namespace meridian::policies;
using std::chrono::milliseconds;

TEST_CASE("fallback: at most six attempts, whatever was planned") {
  CHECK(fallback_plan(3).attempts() == 3);
  CHECK(fallback_plan(40).attempts() == k_max_attempts);
  CHECK(fallback_plan(0).attempts() == 0);
  fallback_plan p(3);
  CHECK_FALSE(p.is_last(0));
  CHECK(p.is_last(2));
}

TEST_CASE("fallback: which failures move on to the next candidate") {
  fallback_plan p(3);
  for (auto f : {failure::not_sent, failure::transport, failure::retryable_status})
    CHECK(p.moves_on(0, f));
  CHECK_FALSE(p.moves_on(0, failure::final_status));        // the client's own answer
  CHECK_FALSE(p.moves_on(0, failure::gateway_overloaded));  // no candidate would fare better
  CHECK_FALSE(p.moves_on(2, failure::transport));           // the last one's failure is final
}

TEST_CASE("fallback: backoff grows, is jittered, and honours Retry-After only on the same provider") {
  CHECK(fallback_plan::backoff(1, false, milliseconds(0), 0.0) == milliseconds(10));
  CHECK(fallback_plan::backoff(1, false, milliseconds(0), 1.0) == milliseconds(20));
  CHECK(fallback_plan::backoff(2, false, milliseconds(0), 0.0) == milliseconds(20));
  CHECK(fallback_plan::backoff(5, false, milliseconds(0), 1.0) == milliseconds(200));  // capped
  CHECK(fallback_plan::backoff(60, false, milliseconds(0), 1.0) == milliseconds(200));
  // Retry-After: 7 s from the same provider waits, capped at 2 s; another provider does not.
  CHECK(fallback_plan::backoff(1, true, milliseconds(7000), 0.5) == milliseconds(2000));
  CHECK(fallback_plan::backoff(1, true, milliseconds(500), 0.5) == milliseconds(500));
  CHECK(fallback_plan::backoff(1, false, milliseconds(7000), 0.5) == milliseconds(15));
}
