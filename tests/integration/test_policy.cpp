// Policy expressiveness through the real binary: fallback by error kind (a context-length error
// to a larger window, a quota or content refusal to another provider), tiers, routes chosen by
// header and key, fallback_route, and the key's allow.models / allow.routes.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const char* k_sim = R"(
providers:
  small:    { port: 0, models: [m], fault: "error=context_length" }
  small2:   { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 3 }
  big:      { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 4 }
  broke:    { port: 0, models: [m, m2], fault: "error=quota" }
  filtered: { port: 0, models: [m, m2], fault: "error=content_policy" }
  good:     { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5 }
  us:       { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 6 }
  claude:   { port: 0, dialect: anthropic, models: [m], fault: "error=context_length" }
)";

std::string provider(sim& s, const std::string& name, const std::string& region,
                     const std::string& models, const std::string& extra = "") {
  return "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(s.ports.at(name)) +
         "/v1\"" + ", region: " + region + extra + ", models: { " + models + " } }\n";
}

std::string gateway_yaml(sim& s, const std::string& rest) {
  const std::string m8k = "m: { input: 1, output: 2, context: 8192 }";
  return "server: { listen: 127.0.0.1:0, threads: 1 }\nproviders:\n" +
         provider(s, "small", "cn", m8k) + provider(s, "small2", "cn", m8k) +
         provider(s, "big", "cn", "m: { input: 3, output: 6, context: 131072 }") +
         provider(s, "broke", "cn", "m: { input: 1, output: 1 }, m2: { input: 1, output: 1 }") +
         provider(s, "filtered", "cn", "m: { input: 1, output: 1 }, m2: { input: 1, output: 1 }") +
         provider(s, "good", "cn", "m: { input: 2, output: 2 }") +
         provider(s, "us", "us", "m: { input: 0.5, output: 0.5 }") +
         provider(s, "claude", "us", "m: { input: 1, output: 1, context: 200000 }",
                  ", dialect: anthropic") +
         rest;
}

std::string body(const std::string& model) {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}]})";
}

int sim_requests(sim& s, const std::string& provider) {
  return json::parse(s.stats(provider))["requests"].get<int>();
}

std::map<std::string, std::string> bearer(const std::string& key) {
  return {{"authorization", "Bearer " + key}};
}

}  // namespace

TEST_CASE("policy: fallback by error kind: a larger window, another provider, no retry in vain") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, R"(routes:
  - { match: ctx, policy: ordered, candidates: [small/m, small2/m, big/m], retries: 4 }
  - { match: ctx-only-small, policy: ordered, candidates: [small/m, small2/m], retries: 4 }
  - { match: quota, policy: ordered, candidates: [broke/m, broke/m2, good/m], retries: 4 }
  - { match: content, policy: ordered, candidates: [filtered/m, filtered/m2, good/m], retries: 4 }
  - { match: claude-ctx, policy: ordered, candidates: [claude/m, small2/m, big/m], retries: 4 }
)"));
  // Context length: small2 has the same 8k window as small and is skipped for big's 128k.
  auto ctx = http_call(g.port, "POST", "/v1/chat/completions", body("ctx"));
  CHECK(ctx.status == 200);
  CHECK(ctx.headers["x-meridian-provider"] == "big");
  CHECK(ctx.headers["x-meridian-route"].find("failed=small/m=context_length") != std::string::npos);
  CHECK(sim_requests(s, "small2") == 0);
  // Nothing larger: the provider's own 400 is the client's answer, and no one else is asked.
  auto none = http_call(g.port, "POST", "/v1/chat/completions", body("ctx-only-small"));
  CHECK(none.status == 400);
  CHECK(json::parse(none.body)["error"]["code"] == "context_length_exceeded");
  CHECK(sim_requests(s, "small2") == 0);
  // Anthropic's wording ("prompt is too long") in its own dialect: 200k known, so 8k is skipped.
  auto claude = http_call(g.port, "POST", "/v1/chat/completions", body("claude-ctx"));
  CHECK(claude.status == 400);  // nothing has a window above Claude's 200k
  CHECK(json::parse(claude.body)["error"]["code"] == "context_length_exceeded");
  CHECK(sim_requests(s, "small2") == 0);
  CHECK(sim_requests(s, "big") == 1);

  // A spent balance: the provider's other model is not tried.
  auto quota = http_call(g.port, "POST", "/v1/chat/completions", body("quota"));
  CHECK(quota.status == 200);
  CHECK(quota.headers["x-meridian-provider"] == "good");
  CHECK(quota.headers["x-meridian-route"].find("failed=broke/m=quota") != std::string::npos);
  CHECK(sim_requests(s, "broke") == 1);
  // A content filter's refusal: another provider is asked, not the same one again.
  auto content = http_call(g.port, "POST", "/v1/chat/completions", body("content"));
  CHECK(content.status == 200);
  CHECK(content.headers["x-meridian-provider"] == "good");
  CHECK(content.headers["x-meridian-route"].find("failed=filtered/m=content_policy") !=
        std::string::npos);
  CHECK(sim_requests(s, "filtered") == 1);

  auto metrics = http_call(g.port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_fallbacks_total{from=\"broke/m\",to=\"good/m\",reason=\"quota\"}") !=
        std::string::npos);
  CHECK(metrics.find("meridian_fallbacks_total{from=\"small/m\",to=\"big/m\",reason=\"context_"
                     "length\"}") != std::string::npos);
}

TEST_CASE("policy: tiers, a route by header or key, fallback_route and the key's allow-lists") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, R"(routes:
  - match: auto
    tiers:
      - { policy: cost, candidates: [good/m, big/m] }
      - { policy: cost, candidates: [us/m] }
  - match: team
    when: { header: { x-team: research } }
    candidates: [big/m]
  - match: team
    when: { key: reviewer }
    candidates: [us/m]
  - { match: team, candidates: [good/m] }
  - { match: cn-first, candidates: [broke/m], fallback_route: hard }
  - { match: hard, policy: ordered, candidates: [us/m, big/m] }
keys:
  - { name: reviewer, key_sha256: ")" +
                                sha256_hex("sk-reviewer") +
                                R"(", allow: { routes: [team, "cn-*"] } }
  - { name: us-models, key_sha256: ")" +
                                sha256_hex("sk-us") + R"(", allow: { models: ["us/*"] } }
)"));
  // Tiers: the CN tier's cheapest, although the US is cheaper still.
  auto tiered = http_call(g.port, "POST", "/v1/chat/completions", body("auto"));
  CHECK(tiered.headers["x-meridian-provider"] == "good");
  CHECK(tiered.headers["x-meridian-route"].find("route=auto policy=cost chose=good/m tier=1") == 0);
  // A key that may only use us/*: the first tier is empty for it, the second serves.
  auto us_only = http_call(g.port, "POST", "/v1/chat/completions", body("auto"), bearer("sk-us"));
  CHECK(us_only.headers["x-meridian-provider"] == "us");
  CHECK(us_only.headers["x-meridian-route"].find("tier=2") != std::string::npos);
  auto refused = http_call(g.port, "POST", "/v1/chat/completions", body("good/m"), bearer("sk-us"));
  CHECK(refused.status == 403);
  CHECK(json::parse(refused.body)["error"]["code"] == "model_not_allowed");

  // A route by header, by key, else the plain one.
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("team"), {{"x-team", "research"}})
            .headers["x-meridian-provider"] == "big");
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("team"), bearer("sk-reviewer"))
            .headers["x-meridian-provider"] == "us");
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("team"))
            .headers["x-meridian-provider"] == "good");

  // allow.routes: another route, or a model by name, is 403 in OpenAI's error shape.
  auto other =
      http_call(g.port, "POST", "/v1/chat/completions", body("auto"), bearer("sk-reviewer"));
  CHECK(other.status == 403);
  auto err = json::parse(other.body)["error"];
  CHECK(err["code"] == "route_not_allowed");

  // fallback_route: broke's quota error moves on to hard's candidates.
  auto fell = http_call(g.port, "POST", "/v1/chat/completions", body("cn-first"));
  CHECK(fell.status == 200);
  CHECK(fell.headers["x-meridian-provider"] == "us");
  CHECK(fell.headers["x-meridian-route"].find("fallback_route=hard") != std::string::npos);
  // The reviewer may use cn-first but not hard: broke's refusal is its answer.
  auto bounded =
      http_call(g.port, "POST", "/v1/chat/completions", body("cn-first"), bearer("sk-reviewer"));
  CHECK(bounded.status == 502);  // the operator's account, not the client's request
  CHECK(json::parse(bounded.body)["error"]["code"] == "upstream_quota_exhausted");
}

TEST_CASE("policy: apps, tasks and languages are recorded and ranked like OpenRouter's") {
  sim s(k_sim);
  temp_dir d;
  gateway g("stats: { ledger: \"sqlite:" + d.path() + "/ledger.db\", flush_interval: 100ms }\n" +
            gateway_yaml(s, "routes:\n  - { match: auto, candidates: [good/m] }\n"));
  auto chat = [&](const std::string& text, const std::map<std::string, std::string>& headers) {
    const json b = {{"model", "auto"}, {"messages", {{{"role", "user"}, {"content", text}}}}};
    return http_call(g.port, "POST", "/v1/chat/completions", b.dump(), headers);
  };
  // OpenRouter's attribution headers: X-Title wins; else the Referer's host.
  CHECK(chat("帮我写一个 Python 函数，判断字符串是不是回文", {{"x-title", "Cline"}}).status == 200);
  CHECK(chat("solve 3x + 5 = 20 for x", {{"http-referer", "https://www.Example.com:8443/app?x=1"}})
            .status == 200);
  CHECK(chat("Write a short poem about autumn", {{"x-title", "Cline"}}).status == 200);
  CHECK(chat("hello", {}).status == 200);

  json apps;
  REQUIRE(eventually([&] {
    apps = json::parse(http_call(g.port, "GET", "/v1/stats/share?window=1h&by=app").body);
    return apps["total"]["requests"] == 4;
  }));
  std::map<std::string, int> requests;
  for (const auto& r : apps["rows"]) requests[r["key"]] = r["requests"];
  CHECK(requests["Cline"] == 2);
  CHECK(requests["example.com"] == 1);
  CHECK(requests["(unnamed)"] == 1);
  auto tasks = json::parse(http_call(g.port, "GET", "/v1/stats/share?window=1h&by=task").body);
  std::map<std::string, int> by_task;
  for (const auto& r : tasks["rows"]) by_task[r["key"]] = r["requests"];
  CHECK(by_task["code"] == 1);
  CHECK(by_task["math"] == 1);
  CHECK(by_task["chat"] == 2);
  auto languages =
      json::parse(http_call(g.port, "GET", "/v1/stats/share?window=1h&by=language").body);
  std::map<std::string, int> by_language;
  for (const auto& r : languages["rows"]) by_language[r["key"]] = r["requests"];
  CHECK(by_language["zh"] == 1);
  CHECK(by_language["en"] == 3);
  // The access log says it too, and the dashboard ranks apps.
  REQUIRE(g.proc->wait_line("\"app\":\"Cline\",\"task\":\"code\",\"language\":\"zh\"", 2s));
  auto page = http_call(g.port, "GET", "/dashboard?window=1h");
  CHECK(page.body.find("data-testid=\"share-app-Cline\"") != std::string::npos);
  CHECK(page.body.find("data-testid=\"share-task-code\"") != std::string::npos);
  CHECK(http_call(g.port, "GET", "/v1/stats/daily?days=1&by=app").body.find("Cline") !=
        std::string::npos);
}

TEST_CASE("policy: a deployment's and a provider's rpm route around them before they answer 429") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, R"(routes:
  - { match: capped, policy: ordered, candidates: [small2/m, big/m, good/m], retries: 4 }
  - { match: alone, candidates: [small2/m] }
)") + R"(models:
  small2/m: { rpm: 2 }
)");
  for (int i = 0; i < 2; ++i)
    CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("capped"))
              .headers["x-meridian-provider"] == "small2");
  auto third = http_call(g.port, "POST", "/v1/chat/completions", body("capped"));
  CHECK(third.status == 200);
  CHECK(third.headers["x-meridian-provider"] == "big");
  CHECK(third.headers["x-meridian-route"].find("failed=small2/m=model.rpm") != std::string::npos);
  CHECK(sim_requests(s, "small2") == 2);  // never asked past its limit
  // With nowhere else to go, Meridian's own 429 says which limit.
  auto alone = http_call(g.port, "POST", "/v1/chat/completions", body("alone"));
  CHECK(alone.status == 429);
  CHECK(json::parse(alone.body)["error"]["message"].get<std::string>().find("model.rpm of "
                                                                            "small2/m") !=
        std::string::npos);
  CHECK(sim_requests(s, "small2") == 2);

  // A provider-wide limit counts all its models together.
  sim t(k_sim);
  std::string yaml = gateway_yaml(t, R"(routes:
  - { match: both, policy: ordered, candidates: [broke/m2, good/m], retries: 2 }
)");
  const std::string broke = "region: cn, models: { m: { input: 1, output: 1 }, m2";
  const auto at = yaml.find(broke);  // broke's entry comes before filtered's
  REQUIRE(at != std::string::npos);
  yaml.replace(at, broke.size(), "region: cn, rpm: 1, models: { m: { input: 1, output: 1 }, m2");
  gateway h(yaml);
  auto first = http_call(h.port, "POST", "/v1/chat/completions", body("broke/m"));
  CHECK(first.status == 502);  // broke's spent balance, its one request of the minute
  auto next = http_call(h.port, "POST", "/v1/chat/completions", body("both"));
  CHECK(next.headers["x-meridian-route"].find("failed=broke/m2=provider.rpm") != std::string::npos);
  CHECK(sim_requests(t, "broke") == 1);
}

namespace {

struct workload_result {
  double cost = 0;
  std::uint64_t cached = 0;
  int kept = 0;  // answers whose route header says affinity=kept
};

// Twelve conversations of five turns each, with a long shared-per-conversation system prompt,
// against two providers that each keep a prompt cache and charge a tenth for cached input.
workload_result run_workload(bool affinity) {
  sim s(R"(
providers:
  a: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 8, prompt_cache: true }
  b: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 8, prompt_cache: true }
)");
  std::string yaml = "server: { listen: 127.0.0.1:0, threads: 1 }\n";
  yaml += affinity ? "affinity: { ttl: 5m }\n" : "affinity: false\n";
  yaml += "providers:\n";
  for (const char* p : {"a", "b"})
    yaml += std::string("  ") + p +
            ": { base_url: \"http://127.0.0.1:" + std::to_string(s.ports.at(p)) +
            "/v1\", region: cn, models: { m: { input: 1, output: 1, cache_read: 0.1 } } }\n";
  yaml += "routes:\n  - { match: chat, policy: weighted, candidates: [a/m, b/m] }\n";
  gateway g(yaml);
  workload_result out;
  for (int c = 0; c < 12; ++c) {
    json messages = json::array();
    messages.push_back({{"role", "system"},
                        {"content", "Conversation " + std::to_string(c) + ". " +
                                        std::string(4000, 'x') + " You are a helpful assistant."}});
    for (int turn = 0; turn < 5; ++turn) {
      messages.push_back({{"role", "user"}, {"content", "Question " + std::to_string(turn)}});
      const json req = {{"model", "chat"}, {"messages", messages}};
      auto r = http_call(g.port, "POST", "/v1/chat/completions", req.dump());
      REQUIRE(r.status == 200);
      const auto j = json::parse(r.body);
      out.cost += j["usage"]["cost"].get<double>();
      out.cached += j["usage"]["prompt_tokens_details"]["cached_tokens"].get<std::uint64_t>();
      out.kept += r.headers["x-meridian-route"].find("affinity=kept") != std::string::npos;
      messages.push_back(j["choices"][0]["message"]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("policy: session affinity keeps a conversation where its prompt cache is") {
  const auto with = run_workload(true), without = run_workload(false);
  const double ratio = with.cost / without.cost;
  std::ostringstream report;
  report << "12 conversations x 5 turns, 2 providers with prompt caches (cache read 0.1x input), "
            "policy weighted 50/50\n"
         << "with affinity:    cost " << with.cost << " USD, cached tokens " << with.cached
         << ", answers kept on the session's deployment " << with.kept << "\n"
         << "without affinity: cost " << without.cost << " USD, cached tokens " << without.cached
         << "\ncost ratio with/without: " << ratio << "\n";
  MESSAGE(report.str());
  std::filesystem::create_directories(MERIDIAN_ARTIFACT_DIR);
  std::ofstream(std::string(MERIDIAN_ARTIFACT_DIR) + "/affinity_cost.txt") << report.str();
  // Every turn after the first finds its prefix where it went before.
  CHECK(with.kept >= 12 * 4);
  CHECK(with.cached > without.cached);
  CHECK(with.cost < without.cost);
}

TEST_CASE("policy: meridian route shows list and effective prices from the ledger's cache shares") {
  sim s(R"(
providers:
  cached: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 4, prompt_cache: true }
  plain:  { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 4 }
)");
  temp_dir d;
  const std::string yaml =
      "server: { listen: 127.0.0.1:0, threads: 1 }\n"
      "stats: { ledger: \"sqlite:" +
      d.path() +
      "/ledger.db\", flush_interval: 50ms }\n"
      "providers:\n"
      "  cached: { base_url: \"http://127.0.0.1:" +
      std::to_string(s.ports.at("cached")) +
      "/v1\", region: cn, models: { m: { input: 1.5, output: 1, cache_read: 0.15 } } }\n"
      "  plain: { base_url: \"http://127.0.0.1:" +
      std::to_string(s.ports.at("plain")) +
      "/v1\", region: cn, models: { m: { input: 1.0, output: 1, cache_read: 1.0 } } }\n"
      "routes:\n"
      "  - { match: agent, policy: cost, candidates: [plain/m, cached/m] }\n"
      "  - { match: warm, policy: ordered, candidates: [cached/m] }\n";
  {
    gateway g(yaml);
    // An agent's conversation through `agent`, pinned to the caching provider with OpenRouter's
    // provider.order: every turn resends the long prefix, which its cache serves.
    json messages = json::array({{{"role", "system"}, {"content", std::string(8000, 's')}}});
    for (int turn = 0; turn < 4; ++turn) {
      messages.push_back({{"role", "user"}, {"content", "step " + std::to_string(turn)}});
      auto r = http_call(
          g.port, "POST", "/v1/chat/completions",
          json{{"model", "agent"}, {"provider", {{"order", {"cached"}}}}, {"messages", messages}}
              .dump());
      REQUIRE(r.status == 200);
      REQUIRE(r.headers["x-meridian-provider"] == "cached");
      messages.push_back(json::parse(r.body)["choices"][0]["message"]);
    }
    REQUIRE(eventually([&] {
      return json::parse(http_call(g.port, "GET", "/v1/stats/share?window=1h&by=provider")
                             .body)["total"]["requests"] == 4;
    }));
  }
  temp_dir w;
  const auto config = w.write("m.yaml", yaml);
  const auto req =
      w.write("req.json", json{{"model", "agent"},
                               {"max_tokens", 100},
                               {"messages",
                                {{{"role", "system"}, {"content", std::string(200000, 's')}},
                                 {{"role", "user"}, {"content", "next"}}}}}
                              .dump());
  process run({MERIDIAN_BIN, "route", "-c", config, req});
  REQUIRE(run.wait_exit(10s) == 0);
  const std::string out = run.output();
  INFO(out);
  CHECK(out.find("LIST_USD  CACHE EFFECTIVE_USD") != std::string::npos);
  CHECK(out.find("cache shares: observed per route over the ledger's last 24 h") !=
        std::string::npos);
  // Its cache served most of the agent's prompts (3 of 4 turns, the long prefix): at 1.5 list
  // but 0.15 cached, it is cheaper in effect than plain's 1.0, and comes first.
  const auto first = out.find("\n   1  ");
  REQUIRE(first != std::string::npos);
  CHECK(out.substr(first, 20).find("cached/m") != std::string::npos);
  // Without the ledger's records the list order is back.
  std::filesystem::remove(d.path() + "/ledger.db");
  process fresh({MERIDIAN_BIN, "route", "-c", config, req});
  REQUIRE(fresh.wait_exit(10s) == 0);
  const std::string plain = fresh.output();
  CHECK(plain.substr(plain.find("\n   1  "), 20).find("plain/m") != std::string::npos);
  CHECK(plain.find("none observed") != std::string::npos);
}

TEST_CASE("policy: cache_prompts marks an OpenAI client's stable prefix for Anthropic's cache") {
  sim s(R"(
providers:
  claude: { port: 0, dialect: anthropic, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 4 }
)");
  const std::string base =
      "server: { listen: 127.0.0.1:0, threads: 1 }\nproviders:\n"
      "  claude: { base_url: \"http://127.0.0.1:" +
      std::to_string(s.ports.at("claude")) + "/v1\", region: us, dialect: anthropic";
  const std::string models = ", models: { m: { input: 3, output: 15, cache_read: 0.3 } } }\n";
  const json req = {{"model", "claude/m"},
                    {"max_tokens", 50},
                    {"messages",
                     {{{"role", "system"}, {"content", std::string(3000, 's')}},
                      {{"role", "user"}, {"content", "first"}},
                      {{"role", "assistant"}, {"content", "ok"}},
                      {{"role", "user"}, {"content", "second"}}}}};
  auto cached_tokens = [&](const std::string& config) {
    gateway g(config);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", req.dump());
    REQUIRE(r.status == 200);
    return json::parse(r.body)["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
  };
  CHECK(cached_tokens(base + models) == 0);  // unmarked: Anthropic caches nothing
  CHECK(cached_tokens(base + ", cache_prompts: true" + models) > 0);
  const auto sent =
      json::parse(json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>());
  CHECK(sent["system"].back()["cache_control"]["type"] == "ephemeral");
  CHECK(sent["messages"][1]["content"].back()["cache_control"]["type"] == "ephemeral");
  CHECK(sent["messages"][2].dump().find("cache_control") == std::string::npos);  // the new turn
}
