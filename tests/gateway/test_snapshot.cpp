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

namespace {

const std::string k_provider =
    "providers:\n  local: { base_url: \"http://127.0.0.1:1/v1\", region: local, models: { m: {} } }\n";
const std::string k_key_a =
    "keys:\n  - { name: team-a, key_sha256: "
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", rpm: 10 }\n";

gateway::reload_review review(const std::string& now, const std::string& next) {
  return gateway::review_reload(*gateway::make_snapshot(now, "now.yaml", no_env()),
                                *gateway::make_snapshot(next, "next.yaml", no_env()));
}

bool mentions(const std::vector<std::string>& lines, const std::string& what) {
  for (const auto& l : lines)
    if (l.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("reload review: a file cut before its auth section may not switch auth off") {
  const std::string full = k_provider + k_key_a + "auth: { required: true }\n";
  auto cut = review(full, k_provider);  // the same file, cut before keys and auth
  REQUIRE(cut.refusal);
  CHECK(cut.refusal->find("auth: { required: false }") != std::string::npos);
  // Saying so explicitly is allowed, and logged.
  auto off = review(full, k_provider + "auth: { required: false }\n");
  CHECK_FALSE(off.refusal);
  CHECK(mentions(off.protective, "auth.required switched off"));
  CHECK(mentions(off.protective, "keys removed: team-a"));
  // Turning it on is a protective change too, but never refused.
  auto on = review(k_provider, full);
  CHECK_FALSE(on.refusal);
  CHECK(mentions(on.protective, "auth.required switched on"));
  CHECK(mentions(on.protective, "keys added: team-a"));
}

TEST_CASE("reload review: key, listener, admin token and provider changes are named") {
  const std::string base = "server: { listen: 127.0.0.1:8080 }\n" + k_provider + k_key_a;
  auto same = review(base, base);
  CHECK(same.protective.empty());
  CHECK(same.restart_needed.empty());
  CHECK_FALSE(same.health_changed);
  std::string limits = base;
  limits.replace(limits.find("rpm: 10"), 7, "rpm: 99");
  CHECK(mentions(review(base, limits).protective, "keys changed (secret or limits): team-a"));
  auto moved = review(base, "server: { listen: 0.0.0.0:8080, admin_listen: 127.0.0.1:9 }\n" +
                                k_provider + k_key_a + "auth: { admin_token_env: OTHER }\n");
  CHECK(mentions(moved.protective, "server.listen changed from 127.0.0.1:8080 to 0.0.0.0:8080"));
  CHECK(mentions(moved.protective, "server.admin_listen changed from (none)"));
  CHECK(mentions(moved.protective, "auth.admin_token_env changed"));
  CHECK(mentions(moved.restart_needed, "server.listen"));
  auto gone = review(base, "server: { listen: 127.0.0.1:8080 }\n" + k_key_a);
  CHECK(mentions(gone.protective, "every provider removed"));
  auto health = review(base, base + "health: { failure_threshold: 7 }\n");
  CHECK(health.health_changed);
  CHECK(health.protective.empty());
}
