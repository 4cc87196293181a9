// Virtual keys through the real binary: authentication, rate limits with OpenAI's headers,
// budgets that concurrent requests cannot overspend, data residency whatever the route or the
// fallbacks say, and the admin key API persisted in the ledger.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

std::string body(const std::string& model, const std::string& extra = {}) {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}])" + extra + "}";
}

std::map<std::string, std::string> bearer(const std::string& secret) {
  return {{"authorization", "Bearer " + secret}};
}

int sim_requests(sim& s, const std::string& provider) {
  return json::parse(s.stats(provider))["requests"].get<int>();
}

std::string provider_yaml(sim& s, const std::string& name, const std::string& region,
                          const std::string& prices = "input: 1, output: 2") {
  return "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(s.ports.at(name)) +
         "/v1\", region: " + region + ", models: { m: { " + prices + " } } }\n";
}

}  // namespace

TEST_CASE("keys: without auth.required, a mistyped key is refused, not served anonymously") {
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  // A key with a budget and a residency: a typo must not escape them.
  gateway g("server: { listen: 127.0.0.1:0, threads: 1 }\n"
            "providers:\n" +
            provider_yaml(s, "p", "us") +
            "auth: { required: false }\n"
            "keys:\n"
            "  - { name: team, key_sha256: \"" +
            sha256_hex("sk-team") + "\", budget: { usd: 1, period: day }, allow: { regions: [us] } }\n");
  auto typo = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-taem"));
  CHECK(typo.status == 401);
  CHECK(json::parse(typo.body)["error"]["code"] == "invalid_api_key");
  CHECK(sim_requests(s, "p") == 0);
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-team")).status ==
        200);
  // No key at all is still anonymous when auth is not required.
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("p/m")).status == 200);
  // The dashboard and the scrape stay public without auth.required.
  CHECK(http_call(g.port, "GET", "/metrics").status == 200);
  CHECK(http_call(g.port, "GET", "/dashboard").status == 200);

  // With no keys configured there is nothing to mistype: SDKs' placeholder keys are served.
  gateway open("server: { listen: 127.0.0.1:0, threads: 1 }\nproviders:\n" +
               provider_yaml(s, "p", "us"));
  CHECK(http_call(open.port, "POST", "/v1/chat/completions", body("p/m"), bearer("none")).status ==
        200);
}

TEST_CASE("keys: auth.required refuses missing and unknown keys in each API's error shape") {
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  gateway g(
      "server: { listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n" +
          provider_yaml(s, "p", "us") +
          "auth: { required: true }\n"
          "keys:\n"
          "  - { name: hashed, key_sha256: \"" +
          sha256_hex("sk-hashed") +
          "\" }\n"
          "  - { name: from-env, key_env: TEAM_KEY }\n",
      {{"TEAM_KEY", "sk-from-env"}});

  auto none = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"));
  CHECK(none.status == 401);
  auto err = json::parse(none.body);
  CHECK(err["error"]["code"] == "invalid_api_key");
  CHECK(err["error"]["message"].get<std::string>().find("Missing API key") != std::string::npos);
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-wrong")).status ==
        401);
  CHECK(http_call(g.port, "GET", "/v1/models").status == 401);

  auto hashed = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-hashed"));
  CHECK(hashed.status == 200);
  auto env_key = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"),
                           {{"x-api-key", "sk-from-env"}});
  CHECK(env_key.status == 200);

  // Anthropic's SDK sends x-api-key and expects Anthropic's error shape.
  const std::string msg =
      R"({"model":"p/m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]})";
  auto anth = http_call(g.port, "POST", "/v1/messages", msg, {{"x-api-key", "sk-nope"}});
  CHECK(anth.status == 401);
  CHECK(json::parse(anth.body)["type"] == "error");
  CHECK(http_call(g.port, "POST", "/v1/messages", msg, {{"x-api-key", "sk-hashed"}}).status == 200);

  // Probes stay open; the scrape and the dashboard need a key, as the share API does (the
  // admin listener serves them to the operator). The failures are counted (two more missing).
  CHECK(http_call(g.port, "GET", "/healthz").status == 200);
  CHECK(http_call(g.port, "GET", "/metrics").status == 401);
  CHECK(http_call(g.port, "GET", "/dashboard").status == 401);
  CHECK(http_call(g.port, "GET", "/dashboard", "", bearer("sk-hashed")).status == 200);
  auto metrics = http_call(g.port, "GET", "/metrics", "", bearer("sk-hashed")).body;
  CHECK(metrics.find("meridian_auth_failures_total{reason=\"missing\"} 4") != std::string::npos);
  CHECK(metrics.find("meridian_auth_failures_total{reason=\"unknown\"} 2") != std::string::npos);
  // The access log names the key, never the secret.
  CHECK(eventually([&] {
    for (const auto& line : g.proc->lines())
      if (line.find("\"key\":\"from-env\"") != std::string::npos) return true;
    return false;
  }));
  for (const auto& line : g.proc->lines()) CHECK(line.find("sk-from-env") == std::string::npos);
}

TEST_CASE("keys: rpm refuses with 429, Retry-After and OpenAI's x-ratelimit headers") {
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  gateway g(
      "server: { listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n" +
      provider_yaml(s, "p", "us") +
      "keys:\n"
      "  - { name: small, key_sha256: \"" +
      sha256_hex("sk-small") + "\", rpm: 3, tpm: 100000 }\n");
  for (int i = 0; i < 3; ++i) {
    auto r = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-small"));
    REQUIRE(r.status == 200);
    CHECK(r.headers["x-ratelimit-limit-requests"] == "3");
    CHECK(r.headers["x-ratelimit-remaining-requests"] == std::to_string(2 - i));
    CHECK(r.headers["x-ratelimit-limit-tokens"] == "100000");
    CHECK(!r.headers["x-ratelimit-reset-requests"].empty());
  }
  auto refused = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer("sk-small"));
  CHECK(refused.status == 429);
  CHECK(std::stoi(refused.headers["retry-after"]) >= 1);
  CHECK(refused.headers["x-ratelimit-remaining-requests"] == "0");
  auto err = json::parse(refused.body);
  CHECK(err["error"]["code"] == "rate_limit_exceeded");
  CHECK(err["error"]["type"] == "requests");
  CHECK(sim_requests(s, "p") == 3);  // the refused request never went upstream
  // Without auth.required, a request with no key is anonymous and not limited.
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("p/m")).status == 200);
  auto metrics = http_call(g.port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_key_rejections_total{key=\"small\",reason=\"rpm\"} 1") !=
        std::string::npos);
}

TEST_CASE("keys: 200 concurrent requests against a budget for 50 never overspend it") {
  // Each answer costs exactly what is reserved for it: 10 output tokens at $100 per million
  // ($0.001), input free; the budget is $0.05.
  sim s(
      "providers:\n  p: { port: 0, models: [m], ttft: 300ms, tokens_per_second: 0, "
      "reply_tokens: 10 }\n");
  temp_dir d;
  const std::string g_yaml =
      "server: { listen: 127.0.0.1:0, threads: 2 }\n"
      "providers:\n" +
      provider_yaml(s, "p", "us", "input: 0, output: 100, cache_read: 0, cache_write: 0") +
      "stats: { ledger: \"sqlite:" + d.path() +
      "/ledger.db\", flush_interval: 100ms }\n"
      "keys:\n"
      "  - { name: capped, key_sha256: \"" +
      sha256_hex("sk-capped") + "\", budget: { usd: 0.05, period: day } }\n";
  gateway g(g_yaml);
  constexpr int k_clients = 200;
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::atomic<double> paid{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < k_clients; ++i)
    clients.emplace_back([&] {
      auto r = http_call(g.port, "POST", "/v1/chat/completions", body("p/m", R"(,"max_tokens":10)"),
                         bearer("sk-capped"), 30s);
      if (r.status == 200) {
        ++ok;
        double cost = json::parse(r.body)["usage"]["cost"].get<double>();
        double seen = paid.load();
        while (!paid.compare_exchange_weak(seen, seen + cost)) {
        }
      } else if (r.status == 402 && json::parse(r.body)["error"]["code"] == "budget_exceeded") {
        ++refused;
      } else {
        ++other;
      }
    });
  for (auto& t : clients) t.join();
  MESSAGE("budget $0.05 at $0.001 per request, 200 concurrent: "
          << ok.load() << " served, " << refused.load() << " refused (402), paid $" << paid.load());
  CHECK(other == 0);
  CHECK(ok + refused == k_clients);
  CHECK(ok <= 50);
  CHECK(ok >= 49);  // reservations are exact here; 49 allows for one micro-dollar of rounding
  CHECK(paid.load() <= 0.05 + 1e-9);
  CHECK(sim_requests(s, "p") == ok.load());  // refused requests never went upstream
  // The ledger agrees, per key.
  CHECK(eventually(
      [&] {
        auto share = json::parse(http_call(g.port, "GET", "/v1/stats/share?by=key").body);
        return share["rows"].size() == 1 && share["rows"][0]["key"] == "capped" &&
               std::abs(share["rows"][0]["cost_usd"].get<double>() - paid.load()) < 1e-9;
      },
      3s));
  auto metrics = http_call(g.port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_key_rejections_total{key=\"capped\",reason=\"budget\"} " +
                     std::to_string(refused.load())) != std::string::npos);
  // After a restart the spend is read back from the ledger: the budget stays exhausted.
  g.proc->signal(SIGTERM);
  REQUIRE(g.proc->wait_exit(10s) == 0);
  gateway again(g_yaml);
  auto after = http_call(again.port, "POST", "/v1/chat/completions",
                         body("p/m", R"(,"max_tokens":10)"), bearer("sk-capped"));
  CHECK(after.status == 402);
  CHECK(sim_requests(s, "p") == ok.load());
}

TEST_CASE("keys: a us-only key never reaches a cn provider, whatever the route or fallbacks") {
  sim s(
      "providers:\n"
      "  cheap_cn: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n"
      "  broken_us: { port: 0, models: [m], fault: \"status=500\" }\n"
      "  good_eu: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  temp_dir d;
  gateway g(
      "server: { listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n" +
      provider_yaml(s, "cheap_cn", "cn", "input: 0.1, output: 0.1") +
      provider_yaml(s, "broken_us", "us") + provider_yaml(s, "good_eu", "eu") +
      "routes:\n"
      "  - { match: auto, policy: cost, candidates: [cheap_cn/m, broken_us/m], retries: 3 }\n"
      "  - { match: any, policy: ordered, candidates: [cheap_cn/m, broken_us/m, good_eu/m],"
      " require: { regions: [cn, us] }, retries: 3 }\n"
      "stats: { ledger: \"sqlite:" +
      d.path() +
      "/ledger.db\", flush_interval: 100ms }\n"
      "keys:\n"
      "  - { name: us-only, key_sha256: \"" +
      sha256_hex("sk-us") + "\", allow: { regions: [us] } }\n");
  auto us = bearer("sk-us");
  // The only allowed candidate fails: the client gets the failure, not a cn fallback.
  auto r = http_call(g.port, "POST", "/v1/chat/completions", body("auto"), us);
  CHECK(r.status == 502);
  stream_client c(g.port, body("auto", R"(,"stream":true)"), us);
  CHECK(c.status() == 502);
  c.close();
  // Request preferences cannot widen it.
  auto pref =
      http_call(g.port, "POST", "/v1/chat/completions",
                body("auto", R"(,"provider":{"order":["cheap_cn"],"allow_fallbacks":true})"), us);
  CHECK(pref.status != 200);
  // Naming the cn deployment directly is refused before anything is sent.
  auto direct = http_call(g.port, "POST", "/v1/chat/completions", body("cheap_cn/m"), us);
  CHECK(direct.status == 404);  // as OpenRouter answers a selection nobody serves
  CHECK(direct.body.find("key.regions") != std::string::npos);
  // The route's regions and the key's intersect to {us}: eu is never widened in either.
  auto any = http_call(g.port, "POST", "/v1/chat/completions", body("any"), us);
  CHECK(any.status >= 500);  // 502, or 503 once broken_us's circuit has opened
  auto emb =
      http_call(g.port, "POST", "/v1/embeddings", R"({"model":"cheap_cn/m","input":"x"})", us);
  CHECK(emb.status == 404);
  CHECK(json::parse(emb.body)["error"]["code"] == "region_not_allowed");

  CHECK(sim_requests(s, "cheap_cn") == 0);
  CHECK(sim_requests(s, "good_eu") == 0);
  CHECK(sim_requests(s, "broken_us") > 0);
  // Without the key the same route does use cn, so the constraint above was the key's.
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("auto")).status == 200);
  CHECK(sim_requests(s, "cheap_cn") == 1);
  // The ledger records the region of every call the key made.
  CHECK(eventually(
      [&] {
        auto share =
            json::parse(http_call(g.port, "GET", "/v1/stats/share?by=region&window=1h").body);
        int requests_us = 0;
        for (const auto& row : share["rows"])
          if (row["key"] == "us") requests_us = row["requests"].get<int>();
        return requests_us == sim_requests(s, "broken_us");
      },
      3s));
}

TEST_CASE("keys: the admin API creates, lists and revokes keys, persisted across restarts") {
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  temp_dir d;
  const std::string yaml =
      "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n" +
      provider_yaml(s, "p", "us") +
      "auth: { required: true }\n"
      "stats: { ledger: \"sqlite:" +
      d.path() + "/ledger.db\", flush_interval: 100ms }\n";
  const std::map<std::string, std::string> env = {{"MERIDIAN_ADMIN_TOKEN", "adm-secret"}};
  const auto admin = bearer("adm-secret");
  std::string secret;
  {
    gateway g(yaml, env);
    REQUIRE(g.admin_port);
    const std::string spec =
        R"({"name":"team-web","rpm":600,"budget":{"usd":5,"period":"month"},"allow":{"regions":["us"]}})";
    CHECK(http_call(g.admin_port, "POST", "/admin/keys", spec).status == 401);
    CHECK(http_call(g.admin_port, "POST", "/admin/keys", spec, bearer("wrong")).status == 401);
    auto bad = http_call(g.admin_port, "POST", "/admin/keys",
                         R"({"name":"x","allow":{"regions":["mars"]}})", admin);
    CHECK(bad.status == 400);
    CHECK(json::parse(bad.body)["error"]["param"] == "allow.regions");
    // Admin endpoints are not on the public listener.
    CHECK(http_call(g.port, "POST", "/admin/keys", spec, admin).status == 404);

    auto made = http_call(g.admin_port, "POST", "/admin/keys", spec, admin);
    REQUIRE(made.status == 201);
    auto mj = json::parse(made.body);
    secret = mj["key"].get<std::string>();
    CHECK(secret.rfind("sk-mer-", 0) == 0);
    CHECK(http_call(g.admin_port, "POST", "/admin/keys", spec, admin).status == 409);

    auto served = http_call(g.port, "POST", "/v1/chat/completions", body("p/m"), bearer(secret));
    CHECK(served.status == 200);
    CHECK(served.headers["x-ratelimit-limit-requests"] == "600");

    auto listed = http_call(g.admin_port, "GET", "/admin/keys", {}, admin);
    REQUIRE(listed.status == 200);
    CHECK(listed.body.find(secret) == std::string::npos);  // never shown again
    auto lj = json::parse(listed.body);
    REQUIRE(lj["data"].size() == 1);
    CHECK(lj["data"][0]["name"] == "team-web");
    CHECK(lj["data"][0]["source"] == "admin");
    CHECK(lj["data"][0]["rpm"] == 600);
    CHECK(lj["data"][0]["budget"]["spend"]["spent_usd"].get<double>() > 0);
    g.proc->signal(SIGTERM);
    REQUIRE(g.proc->wait_exit(10s) == 0);
  }
  gateway again(yaml, env);
  CHECK(http_call(again.port, "POST", "/v1/chat/completions", body("p/m"), bearer(secret)).status ==
        200);
  CHECK(http_call(again.admin_port, "DELETE", "/admin/keys?name=team-web", {}, admin).status ==
        200);
  CHECK(http_call(again.admin_port, "DELETE", "/admin/keys?name=team-web", {}, admin).status ==
        404);
  CHECK(http_call(again.port, "POST", "/v1/chat/completions", body("p/m"), bearer(secret)).status ==
        401);
  auto listed = json::parse(http_call(again.admin_port, "GET", "/admin/keys", {}, admin).body);
  REQUIRE(listed["data"].size() == 1);
  CHECK(listed["data"][0].contains("revoked_ms"));
}

TEST_CASE("keys: without an admin token the key API is off") {
  gateway g("server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, threads: 1 }\n");
  REQUIRE(g.admin_port);
  auto r = http_call(g.admin_port, "GET", "/admin/keys");
  CHECK(r.status == 403);
  CHECK(json::parse(r.body)["error"]["code"] == "admin_disabled");
  CHECK(http_call(g.admin_port, "GET", "/admin/config").status == 200);
}

TEST_CASE("keys: a stream the client closes early is still charged to the key, estimated") {
  sim s(
      "providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 50, "
      "reply_tokens: 200 }\n");
  temp_dir d;
  gateway g(
      "server: { listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n" +
      provider_yaml(s, "p", "us") + "stats: { ledger: \"sqlite:" + d.path() +
      "/ledger.db\", flush_interval: 100ms }\n"
      "keys:\n"
      "  - { name: streamer, key_sha256: \"" +
      sha256_hex("sk-stream") + "\", budget: { usd: 10, period: day } }\n");
  {
    stream_client c(g.port, body("p/m", R"(,"stream":true)"), bearer("sk-stream"));
    REQUIRE(c.status() == 200);
    REQUIRE(c.next_event());
    REQUIRE(c.next_event());
    c.close();  // before the usage chunk: the provider reported nothing for this answer
  }
  CHECK(eventually(
      [&] {
        auto share = json::parse(http_call(g.port, "GET", "/v1/stats/share?by=key").body);
        return share["rows"].size() == 1 && share["rows"][0]["key"] == "streamer" &&
               share["rows"][0]["cost_usd"].get<double>() > 0;
      },
      5s));
}
