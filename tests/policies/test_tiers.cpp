// Policy expressiveness: tiers ranked by their own policies, route-to-route fallback, routes
// chosen by header, key or metadata, and the key's allow.models / allow.routes.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>

#include "config/config.hpp"
#include "policies/router.hpp"

using namespace meridian;
using namespace meridian::policies;
using namespace std::chrono_literals;

namespace {

// gpt-4o-mini is cheaper than DeepSeek: a flat cost route over all three sends everything to
// the US, which is what tiers exist to prevent.
constexpr const char* k_yaml = R"(
providers:
  deepseek:
    base_url: http://127.0.0.1:1/v1
    region: cn
    models:
      deepseek-chat: { input: 0.27, output: 1.10, quality: 80, context: 65536 }
  qwen:
    base_url: http://127.0.0.1:2/v1
    region: cn
    models:
      qwen-plus: { input: 0.4, output: 1.2, quality: 78, context: 131072 }
  openai:
    base_url: http://127.0.0.1:3/v1
    region: us
    models:
      gpt-4o: { input: 2.5, output: 10, quality: 90, context: 128000 }
      gpt-4o-mini: { input: 0.15, output: 0.6, quality: 75, context: 128000 }
routes:
  - match: flat
    policy: cost
    candidates: [deepseek/deepseek-chat, qwen/qwen-plus, openai/gpt-4o-mini]
  - match: auto
    tiers:
      - { policy: cost, candidates: [deepseek/deepseek-chat, qwen/qwen-plus] }
      - { policy: quality, candidates: [openai/gpt-4o-mini, openai/gpt-4o] }
    retries: 3
  - match: research
    when: { header: { x-team: research } }
    candidates: [openai/gpt-4o]
  - match: research
    candidates: [deepseek/deepseek-chat]
  - match: "*"
    when: { key: [team-code], metadata: { task: "code*" } }
    candidates: [openai/gpt-4o]
  - match: cn-only
    policy: cost
    candidates: [deepseek/deepseek-chat, qwen/qwen-plus]
    fallback_route: hard
    retries: 0
  - match: hard
    policy: quality
    candidates: [openai/gpt-4o, deepseek/deepseek-chat]
    fallback_route: cn-only
)";

struct world {
  config::config cfg = config::parse_config(k_yaml, "tiers.yaml");
  providers::catalog cat =
      providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  constraints key;
  std::mt19937_64 rng{7};

  plan_result route(const request_facts& f, const health_snapshot& h = {}) {
    return plan(f, cat, h, cfg.routes, key, rng);
  }
  plan_result route(std::string model) {
    request_facts f;
    f.model = std::move(model);
    return route(f);
  }
};

std::string attempts(const plan_result& r) {
  std::string out;
  for (const auto& a : r.attempts)
    out += (out.empty() ? "" : ",") + a.provider->name + "/" + a.model->id;
  return out;
}

std::string reasons(const plan_result& r) {
  std::string out;
  for (const auto& a : r.attempts) out += (out.empty() ? "" : ",") + std::string(a.reason);
  return out;
}

}  // namespace

TEST_CASE("tiers: cheapest within CN first, then the US by quality") {
  world w;
  // The bug tiers fix: one cost ranking across regions picks the US model first.
  CHECK(w.route("flat").attempts.front().model->id == "gpt-4o-mini");

  auto r = w.route("auto");
  REQUIRE(r.ok());
  CHECK(attempts(r) == "deepseek/deepseek-chat,qwen/qwen-plus,openai/gpt-4o,openai/gpt-4o-mini");
  CHECK(reasons(r) == "primary,fallback,tier fallback,tier fallback");
  CHECK(r.policy == "cost");
  CHECK(r.attempts[2].tier == 1);
  CHECK(r.explain == "route=auto policy=cost chose=deepseek/deepseek-chat tier=1 of=4 excluded=0");
}

TEST_CASE("tiers: the next tier leads only when the first has no eligible or healthy candidate") {
  world w;
  // Not eligible: the key may only use the US.
  w.key.regions = {"us"};
  auto us = w.route("auto");
  REQUIRE(us.ok());
  CHECK(attempts(us) == "openai/gpt-4o,openai/gpt-4o-mini");
  CHECK(us.policy == "quality");
  CHECK(us.explain.find("tier=2") != std::string::npos);
  w.key.regions.clear();

  // Not healthy: both CN circuits open.
  health_options options;
  options.failure_threshold = 1;
  health_book book(options);
  const auto now = health_clock::time_point{} + 1h;
  book.record_failure("deepseek", "deepseek-chat", now);
  book.record_failure("qwen", "qwen-plus", now);
  auto r = w.route(request_facts{.model = "auto"}, book.snapshot(now + 1s));
  REQUIRE(r.ok());
  CHECK(attempts(r) == "openai/gpt-4o,openai/gpt-4o-mini");
  CHECK(r.attempts[0].reason == "primary");
}

TEST_CASE("fallback_route: the next route's candidates after this one's, each route once") {
  world w;
  auto r = w.route("cn-only");
  REQUIRE(r.ok());
  // retries: 0 keeps one of cn-only's own; then hard's, without repeating deepseek; hard's own
  // fallback_route back to cn-only is not followed twice.
  CHECK(attempts(r) == "deepseek/deepseek-chat,openai/gpt-4o");
  CHECK(reasons(r) == "primary,route fallback");
  CHECK(r.attempts[1].route->match == "hard");
  CHECK(r.explain.find("fallback_route=hard") != std::string::npos);

  // Every candidate of the route excluded: the fallback route serves, and says so.
  w.key.regions = {"us"};
  auto us = w.route("cn-only");
  REQUIRE(us.ok());
  CHECK(attempts(us) == "openai/gpt-4o");
  CHECK(us.route == "cn-only");
  CHECK(us.explain.find("via=hard") != std::string::npos);
}

TEST_CASE("when: a route chosen by header, by key and metadata, else the next match") {
  world w;
  CHECK(attempts(w.route("research")) == "deepseek/deepseek-chat");
  w.key.header = [](std::string_view name) -> std::optional<std::string_view> {
    if (name == "x-team") return std::string_view("research");
    return std::nullopt;
  };
  CHECK(attempts(w.route("research")) == "openai/gpt-4o");
  w.key.header = {};

  request_facts f{.model = "deepseek/deepseek-chat"};
  f.metadata = {{"task", "code-review"}};
  CHECK(attempts(w.route(f)) == "deepseek/deepseek-chat");  // no key: the catch-all does not hold
  w.key.key = "team-code";
  CHECK(attempts(w.route(f)) == "openai/gpt-4o");
  f.metadata = {{"task", "chat"}};
  CHECK(attempts(w.route(f)) == "deepseek/deepseek-chat");
}

TEST_CASE("allow.models narrows every route; allow.routes refuses others with 403") {
  world w;
  w.key.models = {"*/gpt-4o-mini", "qwen/*"};
  auto r = w.route("auto");
  REQUIRE(r.ok());
  CHECK(attempts(r) == "qwen/qwen-plus,openai/gpt-4o-mini");
  auto none = w.route("hard");  // gpt-4o and deepseek, then cn-only's qwen
  REQUIRE(none.ok());
  CHECK(attempts(none) == "qwen/qwen-plus");
  auto direct = w.route("openai/gpt-4o");
  REQUIRE_FALSE(direct.ok());
  CHECK(direct.error->what == plan_error::kind::forbidden);
  CHECK(direct.error->code == "model_not_allowed");

  world v;
  v.key.routes = {"auto", "cn-*"};
  CHECK(v.route("auto").ok());
  auto other = v.route("hard");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error->what == plan_error::kind::forbidden);
  CHECK(other.error->code == "route_not_allowed");
  CHECK(other.error->message.find("auto, cn-*") != std::string::npos);
  auto addressed = v.route("openai/gpt-4o");
  REQUIRE_FALSE(addressed.ok());
  CHECK(addressed.error->code == "model_not_allowed");
  // cn-only may fall back to hard only if the key may use hard: it may not.
  CHECK(attempts(v.route("cn-only")) == "deepseek/deepseek-chat");
}

TEST_CASE("tiers, when and fallback_route: mistakes are config errors") {
  auto error = [](const std::string& routes) {
    const std::string yaml = R"(
providers:
  a: { base_url: "http://127.0.0.1:1/v1", region: us, models: { m: { input: 1, output: 1 } } }
routes:
)" + routes;
    try {
      config::parse_config(yaml, "t.yaml");
    } catch (const config::config_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error("  - { match: x, candidates: [a/m], tiers: [{candidates: [a/m]}] }\n")
            .find("give candidates or tiers, not both") != std::string::npos);
  CHECK(error("  - { match: x, tiers: [] }\n").find("must list at least one tier") !=
        std::string::npos);
  CHECK(error("  - { match: x, tiers: [{policy: cost}] }\n").find("a tier needs candidates") !=
        std::string::npos);
  CHECK(error("  - { match: x, tiers: [{policy: cost, weights: {cost: 1}, candidates: [a/m]}] }\n")
            .find("weights apply only to policy balanced") != std::string::npos);
  CHECK(error("  - { match: x, candidates: [a/m], fallback_route: nowhere }\n")
            .find("no route matches 'nowhere'") != std::string::npos);
  CHECK(error("  - { match: x, candidates: [a/m], when: {} }\n")
            .find("give at least one of header, key or metadata") != std::string::npos);
  CHECK(error("  - { match: x, candidates: [a/m] }\n  - { match: x, when: {key: k}, candidates: "
              "[a/m] }\n")
            .find("duplicate route for match 'x'") != std::string::npos);
  CHECK(error("  - { match: x, when: {key: k}, candidates: [a/m] }\n  - { match: x, candidates: "
              "[a/m] }\n")
            .empty());
  // Header names are matched lowercase, as HTTP/1.1 header names compare.
  auto cfg = config::parse_config(R"(
providers:
  a: { base_url: "http://127.0.0.1:1/v1", region: us, models: { m: { input: 1, output: 1 } } }
routes:
  - { match: x, when: { header: { X-Team: "r*" } }, tiers: [{candidates: [a/m]}] }
)",
                                  "t.yaml");
  REQUIRE(cfg.routes.size() == 1);
  CHECK(cfg.routes[0].when.headers.at(0).first == "x-team");
  CHECK(cfg.routes[0].tiers.size() == 1);
}

TEST_CASE("quality per task: a floor and the quality policy read the request's task") {
  auto cfg = config::parse_config(R"(
providers:
  cheap:
    base_url: http://127.0.0.1:1/v1
    region: cn
    models:
      chat-model: { input: 0.1, output: 0.2, quality: { default: 80, code: 60, math: 70 } }
  frontier:
    base_url: http://127.0.0.1:2/v1
    region: us
    models:
      big: { input: 3, output: 15, quality: { default: 85, code: 92 } }
routes:
  - match: auto
    policy: cost
    candidates: [cheap/chat-model, frontier/big]
    require: { min_quality: 75 }
  - match: best
    policy: quality
    candidates: [cheap/chat-model, frontier/big]
)",
                                  "t.yaml");
  auto cat = providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  std::mt19937_64 rng(1);
  auto route = [&](const char* model, task t) {
    request_facts f;
    f.model = model;
    f.task.what = t;
    return attempts(plan(f, cat, {}, cfg.routes, {}, rng));
  };
  // Easy chat goes to the cheap model; code is below its floor there, so to the frontier one.
  CHECK(route("auto", task::chat) == "cheap/chat-model,frontier/big");
  CHECK(route("auto", task::code) == "frontier/big");
  CHECK(route("best", task::chat) == "frontier/big,cheap/chat-model");
  CHECK(route("best", task::translation) == "frontier/big,cheap/chat-model");

  auto bad = [](const std::string& quality) {
    try {
      config::parse_config(
          "providers:\n  a: { base_url: \"http://127.0.0.1:1/v1\", region: us, "
          "models: { m: { quality: " +
              quality + " } } }\n",
          "q.yaml");
    } catch (const config::config_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad("{ poetry: 90 }").find("unknown key; expected one of default, code, math") !=
        std::string::npos);
  CHECK(bad("{ code: 101 }").find("0") != std::string::npos);
  CHECK(bad("{ default: 70, math: 95 }").empty());
  // Every task the config accepts is one the classifier can answer, and the reverse.
  for (auto name : config::k_task_names) {
    CHECK(parse_task(name).has_value());
    CHECK(bad("{ " + std::string(name) + ": 90 }").empty());
  }
  for (auto t :
       {task::code, task::math, task::translation, task::long_context, task::tool_use, task::chat})
    CHECK(std::find(std::begin(config::k_task_names), std::end(config::k_task_names),
                    to_string(t)) != std::end(config::k_task_names));
}

TEST_CASE("effective price: a cost route ranks by the cache share each deployment has shown") {
  auto cfg = config::parse_config(R"(
providers:
  nocache: { base_url: "http://127.0.0.1:1/v1", region: cn, models: { m: { input: 1.0, output: 1, cache_read: 1.0 } } }
  cached: { base_url: "http://127.0.0.1:2/v1", region: cn, models: { m: { input: 1.5, output: 1, cache_read: 0.15 } } }
routes:
  - { match: agent, policy: cost, candidates: [nocache/m, cached/m] }
  - { match: other, policy: cost, candidates: [nocache/m, cached/m] }
)",
                                  "t.yaml");
  auto cat = providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  request_facts f;
  f.est_prompt_tokens = 50'000;
  f.max_tokens = 100;
  std::mt19937_64 rng(1);
  health_book book;
  const auto now = health_clock::time_point{} + std::chrono::hours(1);
  auto order = [&](const char* route) {
    f.model = route;
    return attempts(plan(f, cat, book.snapshot(now), cfg.routes, {}, rng));
  };
  CHECK(order("agent") == "nocache/m,cached/m");  // list prices: 1.0 < 1.5
  observation seen;
  seen.route = "agent";
  seen.cache_share = 0.8;  // 80 % of its prompts read from its cache on this route
  book.record_success("cached", "m", now, seen);
  // 0.2 x 1.5 + 0.8 x 0.15 = 0.42 per million effective, against 1.0
  CHECK(order("agent") == "cached/m,nocache/m");
  CHECK(order("other") == "nocache/m,cached/m");  // another route's workload is its own
}
