// Snapshots: every check that can reject a config runs before anything serves from it.
#include <doctest/doctest.h>

#include "gateway/snapshot.hpp"

using namespace meridian;

namespace {

providers::env_lookup no_env() {
  return [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
}

}  // namespace

TEST_CASE("snapshot: a valid config resolves its catalog and routes") {
  auto snap = gateway::make_snapshot(R"(
providers:
  local: { base_url: "http://127.0.0.1:1/v1", region: local, models: { m1: {}, m2: {} } }
  deepseek: { preset: deepseek }
routes:
  - match: auto
    policy: cost
    candidates: [local/*, deepseek/deepseek-chat]
)",
                                     "t.yaml", no_env());
  REQUIRE(snap);
  CHECK(snap->catalog.providers.size() == 1);
  REQUIRE(snap->catalog.skipped.size() == 1);  // no key: skipped, not fatal
  CHECK(snap->catalog.skipped[0].name == "deepseek");
  REQUIRE(snap->cfg->routes.size() == 1);
  CHECK(snap->cfg->source == "t.yaml");
}

TEST_CASE("snapshot: a route candidate that matches nothing rejects the whole config") {
  CHECK_THROWS_WITH_AS(gateway::make_snapshot(R"(
providers:
  local: { base_url: "http://127.0.0.1:1/v1", models: { m1: {} } }
routes:
  - match: auto
    candidates: [local/nosuch]
)",
                                              "t.yaml", no_env()),
                       doctest::Contains("t.yaml: routes[0].candidates[0] (line 6)"),
                       config::config_error);
}
