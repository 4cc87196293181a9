// The router end to end on a small catalog: route config parsing, route matching and globs,
// hard constraints and their errors, OpenRouter's provider preferences and suffixes, circuit
// breakers, retry caps, request-body parsing and route validation.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>

#include "config/config.hpp"
#include "policies/router.hpp"

using namespace meridian;
using namespace meridian::policies;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_yaml = R"(
providers:
  deepseek:
    base_url: http://127.0.0.1:1/v1
    region: cn
    models:
      deepseek-chat: { input: 0.27, output: 1.10, quality: 80, context: 65536 }
      shared: { input: 1, output: 0, quality: 60 }
  openai:
    base_url: http://127.0.0.1:2/v1
    region: us
    models:
      gpt-4o: { input: 2.5, output: 10, quality: 90, context: 128000 }
      gpt-4o-mini: { input: 0.15, output: 0.6, quality: 75, context: 128000 }
      shared: { input: 2, output: 0, quality: 60 }
  claude:
    base_url: http://127.0.0.1:3/v1
    region: us
    models:
      sonnet: { input: 3, output: 15, quality: 92 }
      shared: { input: 4, output: 0, quality: 60 }
  local:
    base_url: http://127.0.0.1:4/v1
    region: local
    models:
      "qwen2.5:7b": { input: 0, output: 0, quality: 55, context: 32768 }
      "llama3:8b": { input: 0, output: 0, quality: 50, context: 8192 }
routes:
  - match: auto
    policy: quality
    candidates: [deepseek/deepseek-chat, openai/*, local/*]
    require: { min_quality: 60 }
    retries: 1
  - match: cheap-*
    policy: cost
    candidates: [openai/gpt-4o-mini, deepseek/deepseek-chat]
    fallback: false
  - match: eu-only
    policy: ordered
    candidates: [openai/gpt-4o, deepseek/deepseek-chat]
    require: { regions: [eu] }
  - match: split
    policy: weighted
    candidates:
      - { model: openai/gpt-4o-mini, weight: 3 }
      - { model: deepseek/deepseek-chat, weight: 1 }
  - match: thrifty
    policy: balanced
    weights: { cost: 1, latency: 0, quality: 0 }
    candidates: [claude/sonnet, openai/gpt-4o, deepseek/deepseek-chat]
    require: { max_price: { prompt: 2.6 }, exclude_providers: [local], capabilities: [tools] }
  - match: plain
    candidates: [deepseek/shared, openai/shared]
regions:
  apac: { electricity_usd_per_kwh: 0.09 }
  eu: { electricity_usd_per_kwh: 0.2 }
energy: { kwh_per_million_tokens: 1.2 }
)";

struct world {
  config::config cfg = config::parse_config(k_yaml, "router.yaml");
  providers::catalog cat =
      providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  health_book book;
  health_snapshot health;
  constraints key;
  std::mt19937_64 rng{1234};

  plan_result route(const request_facts& f) { return plan(f, cat, health, cfg.routes, key, rng); }
  plan_result route(std::string model) {
    request_facts f;
    f.model = std::move(model);
    return route(f);
  }
};

// "provider/model,provider/model" for compact ordering checks.
std::string attempts(const plan_result& r) {
  std::string out;
  for (const auto& a : r.attempts)
    out += (out.empty() ? "" : ",") + a.provider->name + "/" + a.model->id;
  return out;
}

std::string_view excluded_for(const plan_result& r, std::string_view provider,
                              std::string_view model) {
  for (const auto& e : r.excluded)
    if (e.provider->name == provider && e.model->id == model) return e.constraint;
  return {};
}

request_facts facts(std::string model) {
  request_facts f;
  f.model = std::move(model);
  return f;
}

const health_clock::time_point t0 = health_clock::time_point{} + 1h;

}  // namespace

TEST_CASE("routes, regions and energy parse with their defaults") {
  world w;
  const auto& routes = w.cfg.routes;
  REQUIRE(routes.size() == 6);
  CHECK(routes[0].match == "auto");
  CHECK(routes[0].policy == config::route_policy::quality);
  REQUIRE(routes[0].candidates.size() == 3);
  CHECK(routes[0].candidates[1].pattern == "openai/*");
  CHECK(routes[0].require.min_quality == 60);
  CHECK(routes[0].retries == 1);
  CHECK(routes[0].fallback);
  CHECK(routes[0].line == 29);
  CHECK(routes[1].retries == 2);
  CHECK_FALSE(routes[1].fallback);
  CHECK(routes[2].require.regions == std::vector<std::string>{"eu"});
  CHECK(routes[3].candidates[0].weight == 3);
  CHECK(routes[3].candidates[1].weight == 1);
  CHECK(routes[3].candidates[1].line == routes[3].candidates[0].line + 1);
  CHECK(routes[4].weights.cost == 1);
  CHECK(routes[4].weights.quality == 0);
  CHECK(routes[4].require.max_prompt_price == doctest::Approx(2.6));
  CHECK_FALSE(routes[4].require.max_completion_price);
  CHECK(routes[4].require.exclude_providers == std::vector<std::string>{"local"});
  REQUIRE(routes[4].require.capabilities.size() == 1);
  CHECK(routes[4].require.capabilities[0] == config::capability::tools);
  CHECK_FALSE(routes[5].policy);
  CHECK(routes[5].weights.cost == doctest::Approx(0.5));

  CHECK(w.cfg.regions.at("cn").electricity_usd_per_kwh == doctest::Approx(0.076));
  CHECK(w.cfg.regions.at("us").electricity_usd_per_kwh == doctest::Approx(0.14));
  CHECK(w.cfg.regions.at("local").electricity_usd_per_kwh == doctest::Approx(0.14));
  CHECK(w.cfg.regions.at("eu").electricity_usd_per_kwh == doctest::Approx(0.2));
  CHECK(w.cfg.regions.at("apac").line > 0);
  CHECK(w.cfg.energy.kwh_per_million_tokens == doctest::Approx(1.2));

  auto empty = config::parse_config("server: {}\n", "e.yaml");
  CHECK(empty.routes.empty());
  CHECK(empty.regions.size() == 4);
  CHECK(empty.regions.at("eu").electricity_usd_per_kwh == doctest::Approx(0.175));
  CHECK(empty.energy.kwh_per_million_tokens == doctest::Approx(1.0));
}

TEST_CASE("route policy names round-trip") {
  for (auto p :
       {config::route_policy::cost, config::route_policy::latency, config::route_policy::throughput,
        config::route_policy::quality, config::route_policy::balanced,
        config::route_policy::weighted, config::route_policy::ordered})
    CHECK(config::parse_route_policy(config::to_string(p)) == p);
  CHECK_FALSE(config::parse_route_policy("cheapest"));
}

TEST_CASE("glob_match handles stars anywhere") {
  CHECK(glob_match("auto", "auto"));
  CHECK_FALSE(glob_match("auto", "auto2"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("cheap-*", "cheap-chat"));
  CHECK_FALSE(glob_match("cheap-*", "cheap"));
  CHECK(glob_match("*-7b*", "qwen-7b-instruct"));
  CHECK(glob_match("a*b*c", "aXbYbZc"));
  CHECK_FALSE(glob_match("a*b*c", "aXbYbZ"));
}

TEST_CASE("a route expands globs, applies require and caps attempts at 1 + retries") {
  world w;
  auto r = w.route("auto");
  REQUIRE(r.ok());
  CHECK(r.route == "auto");
  CHECK(r.policy == "quality");
  CHECK(attempts(r) == "openai/gpt-4o,deepseek/deepseek-chat");
  CHECK(r.attempts[0].reason == "primary");
  CHECK(r.attempts[1].reason == "fallback");
  CHECK(excluded_for(r, "local", "qwen2.5:7b") == "route.require.min_quality");
  CHECK(excluded_for(r, "local", "llama3:8b") == "route.require.min_quality");
  CHECK(excluded_for(r, "openai", "gpt-4o-mini") == "route.retries");
  CHECK(excluded_for(r, "openai", "shared") == "route.retries");
  CHECK(r.explain == "route=auto policy=quality chose=openai/gpt-4o of=4 excluded=4");
}

TEST_CASE("fallback false keeps only the first candidate") {
  world w;
  auto r = w.route("cheap-anything");
  REQUIRE(r.ok());
  CHECK(r.route == "cheap-*");
  CHECK(attempts(r) == "openai/gpt-4o-mini");
  CHECK(excluded_for(r, "deepseek", "deepseek-chat") == "route.fallback");
}

TEST_CASE("a route whose require removes everything names the constraint") {
  world w;
  auto r = w.route("eu-only");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::not_found);
  CHECK(r.error->message.find("route.require.regions excluded 2") != std::string::npos);
  CHECK(r.attempts.empty());
}

TEST_CASE("balanced by cost with a price cap and an ordered route") {
  world w;
  auto r = w.route("thrifty");
  REQUIRE(r.ok());
  CHECK(attempts(r) == "deepseek/deepseek-chat,openai/gpt-4o");
  CHECK(excluded_for(r, "claude", "sonnet") == "route.require.max_price.prompt");
}

TEST_CASE("a weighted route splits first attempts by weight") {
  world w;
  int mini = 0;
  constexpr int k_draws = 20'000;
  for (int i = 0; i < k_draws; ++i) mini += w.route("split").attempts[0].model->id == "gpt-4o-mini";
  CHECK(mini / double(k_draws) == doctest::Approx(0.75).epsilon(0.03));
}

TEST_CASE("a route without a policy uses the price-weighted default") {
  world w;
  auto r = w.route("plain");
  REQUIRE(r.ok());
  CHECK(r.policy == "price_weighted");
  CHECK(r.attempts.size() == 2);
}

TEST_CASE("provider/model addresses one deployment and models adds fallbacks in order") {
  world w;
  auto f = facts("openai/gpt-4o");
  f.models = {"sonnet", "deepseek/deepseek-chat"};
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(r.route.empty());
  CHECK(attempts(r) == "openai/gpt-4o,claude/sonnet,deepseek/deepseek-chat");
  CHECK(r.attempts[1].reason == "models fallback");
  CHECK(r.explain.rfind("policy=price_weighted chose=openai/gpt-4o", 0) == 0);
}

TEST_CASE("unknown models are 404 and unknown fallbacks 400 naming models") {
  world w;
  auto r = w.route("nosuch");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::not_found);
  CHECK(r.error->param == "model");
  CHECK(r.error->message.find("'nosuch' does not exist") != std::string::npos);
  auto f = facts("sonnet");
  f.models = {"gpt-4o", "nope"};
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::unsatisfiable);
  CHECK(r.error->param == "models");
  CHECK(r.error->message.rfind("models[1]: ", 0) == 0);
  CHECK(w.route("").error->param == "model");
}

TEST_CASE("the key's region allow-list is never widened by fallbacks") {
  world w;
  w.key.regions = {"us"};
  auto f = facts("deepseek-chat");
  f.models = {"openai/gpt-4o", "deepseek/shared"};
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "openai/gpt-4o");
  CHECK(excluded_for(r, "deepseek", "deepseek-chat") == "key.regions");
  CHECK(excluded_for(r, "deepseek", "shared") == "key.regions");

  w.key.regions = {"cn"};
  f = facts("openai/gpt-4o");
  f.models = {"claude/sonnet"};
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::not_found);
  CHECK(r.error->message.find("key.regions excluded 2") != std::string::npos);

  // A route's own region list intersects with the key's: eu-only under a us key stays empty.
  w.key.regions = {"us"};
  r = w.route("eu-only");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->message.find("key.regions") != std::string::npos);
}

TEST_CASE("a route under a key constraint reports every constraint that emptied it") {
  world w;
  w.key.regions = {"local"};
  auto r = w.route("auto");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->message ==
        "No provider can serve 'auto': key.regions excluded 4, route.require.min_quality "
        "excluded 2");
}

TEST_CASE("provider.order with allow_fallbacks false tries only the listed providers in order") {
  world w;
  auto f = facts("shared");
  f.provider.order = {"claude", "openai"};
  f.provider.allow_fallbacks = false;
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "claude/shared,openai/shared");
  CHECK(excluded_for(r, "deepseek", "shared") == "provider.allow_fallbacks");
}

TEST_CASE("provider.order puts the listed first and the rest after, sorted when asked") {
  world w;
  auto f = facts("shared");
  f.provider.order = {"claude"};
  f.provider.sort = sort_by::price;
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "claude/shared,deepseek/shared,openai/shared");
  CHECK(r.policy == "cost");
}

TEST_CASE("provider.only and provider.ignore filter, and emptying them is a 404") {
  world w;
  auto f = facts("shared");
  f.provider.only = {"openai", "claude"};
  f.provider.sort = sort_by::price;
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "openai/shared,claude/shared");
  CHECK(excluded_for(r, "deepseek", "shared") == "provider.only");

  f = facts("shared");
  f.provider.ignore = {"deepseek", "claude"};
  r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "openai/shared");

  f.provider.ignore = {"deepseek", "claude", "openai"};
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::not_found);
  CHECK(r.error->param == "provider");
  CHECK(r.error->message.find("provider.ignore excluded 3") != std::string::npos);

  f = facts("shared");
  f.provider.only = {"nosuch"};
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->message.find("provider.only excluded 3") != std::string::npos);
}

TEST_CASE("provider.max_price is hard and no fallback relaxes it") {
  world w;
  auto f = facts("shared");
  f.models = {"openai/gpt-4o"};
  f.provider.max_prompt_price = 1.5;
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "deepseek/shared");
  CHECK(excluded_for(r, "openai", "gpt-4o") == "provider.max_price.prompt");

  f.provider.max_prompt_price = 0.5;
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::unsatisfiable);
  CHECK(r.error->param == "provider");
  CHECK(r.error->message.find("provider.max_price.prompt excluded 4") != std::string::npos);

  f = facts("gpt-4o");
  f.provider.max_completion_price = 5;
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->message.find("provider.max_price.completion") != std::string::npos);
}

TEST_CASE(":floor sorts by price and :nitro by throughput") {
  world w;
  auto r = w.route("shared:floor");
  REQUIRE(r.ok());
  CHECK(r.policy == "cost");
  CHECK(attempts(r) == "deepseek/shared,openai/shared,claude/shared");

  w.book.record_success("openai", "shared", t0, {.tokens_per_s = 100});
  w.book.record_success("claude", "shared", t0, {.tokens_per_s = 50});
  w.health = w.book.snapshot(t0);
  r = w.route("shared:nitro");
  REQUIRE(r.ok());
  CHECK(r.policy == "throughput");
  // deepseek is unobserved and so goes first, to be measured.
  CHECK(attempts(r) == "deepseek/shared,openai/shared,claude/shared");
  // A colon that is part of a model id is not a suffix.
  CHECK(attempts(w.route("qwen2.5:7b")) == "local/qwen2.5:7b");
}

TEST_CASE("provider.sort latency ranks by observed time to first token") {
  world w;
  w.book.record_success("deepseek", "shared", t0, {.ttft_ms = 900});
  w.book.record_success("openai", "shared", t0, {.ttft_ms = 100});
  w.book.record_success("claude", "shared", t0, {.ttft_ms = 300});
  w.health = w.book.snapshot(t0);
  auto f = facts("shared");
  f.provider.sort = sort_by::latency;
  CHECK(attempts(w.route(f)) == "openai/shared,claude/shared,deepseek/shared");
}

TEST_CASE("soft preferences move misses to the end but never remove them") {
  world w;
  w.book.record_success("deepseek", "shared", t0, {.ttft_ms = 5000, .tokens_per_s = 10});
  w.book.record_success("openai", "shared", t0, {.ttft_ms = 200, .tokens_per_s = 20});
  w.health = w.book.snapshot(t0);
  auto f = facts("shared");
  f.provider.sort = sort_by::price;
  f.provider.preferred_max_latency_s = 1;
  CHECK(attempts(w.route(f)) == "openai/shared,claude/shared,deepseek/shared");
  f.provider.preferred_max_latency_s.reset();
  f.provider.preferred_min_throughput = 15;
  CHECK(attempts(w.route(f)) == "openai/shared,claude/shared,deepseek/shared");
}

TEST_CASE("the default weights the first pick by inverse square of price") {
  world w;
  auto f = facts("shared");
  f.provider.ignore = {"claude"};
  f.est_prompt_tokens = 1000;
  int deepseek = 0;
  constexpr int k_draws = 20'000;
  for (int i = 0; i < k_draws; ++i) {
    auto r = w.route(f);
    REQUIRE(r.attempts.size() == 2);
    deepseek += r.attempts[0].provider->name == "deepseek";
  }
  CHECK(deepseek / double(k_draws) == doctest::Approx(0.8).epsilon(0.02));
}

TEST_CASE("open circuits are excluded unless every candidate is open") {
  world w;
  for (int i = 0; i < 3; ++i) w.book.record_failure("deepseek", "shared", t0);
  w.health = w.book.snapshot(t0 + 1s);
  auto f = facts("shared");
  f.provider.sort = sort_by::price;
  auto r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "openai/shared,claude/shared");
  CHECK(excluded_for(r, "deepseek", "shared") == "circuit_open");

  // Past the cooldown the probe is allowed again.
  w.health = w.book.snapshot(t0 + 31s);
  CHECK(attempts(w.route(f)) == "deepseek/shared,openai/shared,claude/shared");

  for (int i = 0; i < 3; ++i) {
    w.book.record_failure("openai", "shared", t0);
    w.book.record_failure("claude", "shared", t0);
  }
  w.health = w.book.snapshot(t0 + 1s);
  r = w.route(f);
  REQUIRE(r.ok());
  CHECK(attempts(r) == "deepseek/shared,openai/shared,claude/shared");
  CHECK(r.attempts[0].reason == "circuit open (all candidates are)");
  CHECK(r.explain.find("all_circuits_open") != std::string::npos);
}

TEST_CASE("a prompt larger than the context window excludes the deployment") {
  world w;
  auto f = facts("local/llama3:8b");
  f.est_prompt_tokens = 10'000;
  auto r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::unsatisfiable);
  CHECK(r.error->message.find("context_length excluded 1") != std::string::npos);
  f.models = {"local/qwen2.5:7b"};
  CHECK(attempts(w.route(f)) == "local/qwen2.5:7b");
}

TEST_CASE("validate_routes reports unknown providers and globs matching nothing") {
  auto cfg = config::parse_config(R"(providers:
  local:
    base_url: http://127.0.0.1:4/v1
    models: { "qwen2.5:7b": {} }
  openai: { preset: openai }
routes:
  - match: auto
    candidates:
      - local/*
      - nosuch/x
      - local/gpt-*
      - z*/m
      - openai/gpt-4o
      - openai/gpt-4o-typo
)",
                                  "v.yaml");
  auto cat = providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  auto messages = validate_routes(cfg, cat);
  REQUIRE(messages.size() == 4);
  CHECK(messages[0] ==
        "v.yaml: routes[0].candidates[1] (line 10): unknown provider 'nosuch'; declare it under "
        "providers");
  CHECK(messages[1] ==
        "v.yaml: routes[0].candidates[2] (line 11): 'local/gpt-*' matches no model in the "
        "catalog");
  CHECK(messages[2].find("routes[0].candidates[3] (line 12): 'z*' matches no declared provider") !=
        std::string::npos);
  // openai/gpt-4o is fine: the provider is declared, only its key is missing. A model its
  // catalog does not have is reported all the same, key or not (CI runs without secrets).
  CHECK(messages[3] ==
        "v.yaml: routes[0].candidates[5] (line 14): 'openai/gpt-4o-typo' matches no model in the "
        "catalog");
  auto with_key = providers::build_catalog(cfg, [](const std::string&) {
    return std::optional<std::string>("sk-test");
  });
  CHECK(validate_routes(cfg, with_key) == messages);

  world w;
  CHECK(validate_routes(w.cfg, w.cat).empty());
}

TEST_CASE("router: a bare name served by several providers is ambiguous without preferences") {
  auto cfg = meridian::config::parse_config(R"(
providers:
  a: { base_url: "http://127.0.0.1:1/v1", models: { shared: { input: 1, output: 1 } } }
  b: { base_url: "http://127.0.0.1:2/v1", models: { shared: { input: 2, output: 2 } } }
)");
  auto cat =
      meridian::providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  std::mt19937_64 rng(7);
  meridian::policies::request_facts f;
  f.model = "shared";
  auto r = meridian::policies::plan(f, cat, {}, cfg.routes, {}, rng);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::unsatisfiable);
  CHECK(r.error->code == "ambiguous_model");
  CHECK(r.error->message.find("a/shared, b/shared") != std::string::npos);
  f.provider.sort = meridian::policies::sort_by::price;
  r = meridian::policies::plan(f, cat, {}, cfg.routes, {}, rng);
  REQUIRE(r.ok());
  REQUIRE(r.attempts.size() == 2);
  CHECK(r.attempts[0].provider->name == "a");
  f = {};
  f.model = "shared:floor";
  r = meridian::policies::plan(f, cat, {}, cfg.routes, {}, rng);
  REQUIRE(r.ok());
  CHECK(r.attempts[0].provider->name == "a");
}

namespace {

// Capabilities declared per model: "vision" sees images, "text" has no tools nor JSON mode.
constexpr const char* k_capability_yaml = R"(
providers:
  a:
    base_url: http://127.0.0.1:1/v1
    models:
      vision: { input: 3, output: 3, quality: 90, capabilities: [tools, images, json] }
      text: { input: 1, output: 1, quality: 70, capabilities: [] }
      default: { input: 2, output: 2, quality: 80 }
routes:
  - match: any
    policy: cost
    candidates: [a/*]
  - match: seeing
    policy: cost
    candidates: [a/*]
    require: { capabilities: [images] }
)";

struct capability_world {
  config::config cfg = config::parse_config(k_capability_yaml, "caps.yaml");
  providers::catalog cat =
      providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  std::mt19937_64 rng{99};

  plan_result route(const request_facts& f) { return plan(f, cat, {}, cfg.routes, {}, rng); }
};

}  // namespace

TEST_CASE("router: a request with tools excludes models without tool support") {
  capability_world w;
  auto f = facts("any");
  CHECK(attempts(w.route(f)) == "a/text,a/default,a/vision");
  f.needs_tools = true;
  auto r = w.route(f);
  CHECK(attempts(r) == "a/default,a/vision");
  CHECK(excluded_for(r, "a", "text") == "capability.tools");
}

TEST_CASE("router: images and JSON mode are hard constraints too") {
  capability_world w;
  auto f = facts("any");
  f.needs_images = true;
  auto r = w.route(f);
  CHECK(attempts(r) == "a/vision");
  CHECK(excluded_for(r, "a", "text") == "capability.images");
  CHECK(excluded_for(r, "a", "default") == "capability.images");
  f.needs_images = false;
  f.needs_json = true;
  r = w.route(f);
  CHECK(attempts(r) == "a/default,a/vision");
  CHECK(excluded_for(r, "a", "text") == "capability.json");
}

TEST_CASE("router: a capability no candidate has names the request field") {
  capability_world w;
  auto f = facts("a/text");
  f.needs_tools = true;
  auto r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->what == plan_error::kind::unsatisfiable);
  CHECK(r.error->param == "tools");
  CHECK(r.error->message.find("capability.tools excluded 1") != std::string::npos);
  f.needs_tools = false;
  f.needs_json = true;
  r = w.route(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->param == "response_format");
}

TEST_CASE("router: route require.capabilities applies even when the request does not need it") {
  capability_world w;
  auto r = w.route(facts("seeing"));
  CHECK(attempts(r) == "a/vision");
  CHECK(excluded_for(r, "a", "text") == "route.require.capabilities");
  CHECK(excluded_for(r, "a", "default") == "route.require.capabilities");
}
