// The dialect registry and the shared retry classification.
#include <doctest/doctest.h>

#include "providers/dialect.hpp"

using namespace meridian;

TEST_CASE("registry: each wire format has its dialect") {
  for (auto k : {config::dialect_kind::openai, config::dialect_kind::anthropic,
                 config::dialect_kind::gemini})
    CHECK(providers::dialect_for(k).kind() == k);
}

TEST_CASE("registry: which upstream errors are worth another try") {
  const auto& d = providers::dialect_for(config::dialect_kind::openai);
  CHECK(d.retryable(429, R"({"error":{"message":"slow down"}})"));
  CHECK_FALSE(d.retryable(429, R"({"error":{"code":"insufficient_quota"}})"));
  CHECK_FALSE(d.retryable(429, R"({"error":{"code":"1113","message":"no balance"}})"));
  CHECK(d.retryable(500, ""));
  CHECK(d.retryable(503, ""));
  CHECK(d.retryable(408, ""));
  CHECK_FALSE(d.retryable(400, ""));
  CHECK_FALSE(d.retryable(401, ""));
  CHECK_FALSE(d.retryable(404, ""));
}
