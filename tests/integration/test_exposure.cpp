// What an operator or another tenant should not see, and what an operator must see: an echoed
// secret in Retry-After, per-key metrics on the public port, another key's generations, a reused
// request id overwriting a record, and a ledger that silently stops writing.
#include <doctest/doctest.h>

#include <sqlite3.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const char* k_sim = R"(
providers:
  good: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5 }
)";

std::string body(const std::string& model = "good/m") {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}]})";
}

std::map<std::string, std::string> bearer(const std::string& secret) {
  return {{"authorization", "Bearer " + secret}};
}

std::string keyed_gateway(sim& s, const std::string& server_extra, const std::string& extra = "") {
  return "server:\n  listen: 127.0.0.1:0\n  threads: 1\n" + server_extra +
         "providers:\n  good: { base_url: \"http://127.0.0.1:" +
         std::to_string(s.ports.at("good")) +
         "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n"
         "keys:\n"
         "  - { name: team-a, key_sha256: \"" +
         sha256_hex("sk-team-a") + "\" }\n  - { name: team-b, key_sha256: \"" +
         sha256_hex("sk-team-b") + "\" }\n" + extra;
}

}  // namespace

TEST_CASE("exposure: an upstream Retry-After that is not a delay or a date is never forwarded") {
  const std::string upstream_key = "sk-upstream-ECHOED-9f8e7d";
  raw_upstream up([&](const std::string&, const raw_upstream::writer& write) {
    const std::string err =
        R"({"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limited"}})";
    return write("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                 "Retry-After: Bearer " +
                 upstream_key + "\r\nContent-Length: " + std::to_string(err.size()) +
                 "\r\n\r\n" + err);
  });
  gateway g("server:\n  listen: 127.0.0.1:0\n  threads: 1\nproviders:\n"
            "  raw: { base_url: \"http://127.0.0.1:" +
            std::to_string(up.port) + "/v1\", region: us, models: { m: {} } }\n");
  auto r = http_call(g.port, "POST", "/v1/chat/completions", body("raw/m"));
  CHECK(r.status == 429);
  CHECK(r.headers["retry-after"] == "1");
  for (const auto& [name, value] : r.headers) CHECK(value.find(upstream_key) == std::string::npos);
  CHECK(r.body.find(upstream_key) == std::string::npos);
}

TEST_CASE("exposure: with an admin listener, per-key series are served only there") {
  sim s(k_sim);
  gateway g(keyed_gateway(s, "  admin_listen: 127.0.0.1:0\n"));
  REQUIRE(g.admin_port);
  REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", body(), bearer("sk-team-a")).status ==
          200);
  auto pub = http_call(g.port, "GET", "/metrics").body;
  auto admin = http_call(g.admin_port, "GET", "/metrics").body;
  CHECK(pub.find("meridian_requests_total") != std::string::npos);
  CHECK(pub.find("team-a") == std::string::npos);
  CHECK(pub.find("meridian_key_cost_usd_total") == std::string::npos);
  INFO(admin);
  CHECK(admin.find("meridian_key_cost_usd_total{key=\"team-a\"}") != std::string::npos);
  // The dashboard's spend per key, likewise: the operator's listener shows it, a key does not.
  REQUIRE(eventually([&] {
    return http_call(g.admin_port, "GET", "/dashboard")
               .body.find("data-testid=\"spend-key-team-a\"") != std::string::npos;
  }));
  const std::string page = http_call(g.port, "GET", "/dashboard", "", bearer("sk-team-b")).body;
  CHECK(page.find("data-testid=\"spend-hidden\"") != std::string::npos);
  CHECK(page.find("spend-key-team-a") == std::string::npos);
}

TEST_CASE("exposure: a key finds only its own generations; the admin token finds all") {
  sim s(k_sim);
  gateway g(keyed_gateway(s, "", "stats: { ledger: \"sqlite:l.db\" }\n"),
            {{"MERIDIAN_ADMIN_TOKEN", "admin-token-xyz"}});
  // Both tenants send the same x-request-id (a retry library's counter, or on purpose).
  auto a = http_call(g.port, "POST", "/v1/chat/completions", body(),
                     {{"authorization", "Bearer sk-team-a"}, {"x-request-id", "same-id"}});
  auto b = http_call(g.port, "POST", "/v1/chat/completions", body(),
                     {{"authorization", "Bearer sk-team-b"}, {"x-request-id", "same-id"}});
  REQUIRE(a.status == 200);
  REQUIRE(b.status == 200);
  CHECK(a.headers["x-request-id"] == "same-id");  // the client's id is echoed
  const std::string own_a = a.headers["x-meridian-request-id"];
  const std::string own_b = b.headers["x-meridian-request-id"];
  CHECK(own_a.rfind("req_", 0) == 0);
  CHECK(own_a != own_b);
  auto lookup = [&](const std::string& id, const std::string& secret) {
    return http_call(g.port, "GET", "/v1/generation?id=" + id, "", bearer(secret));
  };
  // Each key sees its own record under either id, and never the other's.
  auto mine = lookup("same-id", "sk-team-a");
  REQUIRE(mine.status == 200);
  CHECK(json::parse(mine.body)["id"] == own_a);
  CHECK(json::parse(mine.body)["client_request_id"] == "same-id");
  CHECK(json::parse(lookup("same-id", "sk-team-b").body)["id"] == own_b);
  CHECK(lookup(own_b, "sk-team-a").status == 404);
  CHECK(lookup(own_a, "sk-team-b").status == 404);
  CHECK(http_call(g.port, "GET", "/v1/generation?id=" + own_a).status == 404);  // anonymous
  // The operator sees both: the reused id no longer overwrote the first record.
  CHECK(lookup(own_a, "admin-token-xyz").status == 200);
  CHECK(lookup(own_b, "admin-token-xyz").status == 200);
  auto share = json::parse(
      http_call(g.port, "GET", "/v1/stats/share?window=1h&by=key", "", {}).body);
  CHECK(share["total"]["requests"] == 2);
}

TEST_CASE("exposure: a ledger that cannot write says so: log, backlog gauge, complete: false") {
  sim s(k_sim);
  temp_dir d;
  const std::string db = d.path() + "/l.db";
  gateway g("server:\n  listen: 127.0.0.1:0\n  threads: 1\nproviders:\n"
            "  good: { base_url: \"http://127.0.0.1:" +
                std::to_string(s.ports.at("good")) +
                "/v1\", region: cn, models: { m: {} } }\n"
                "stats: { ledger: \"sqlite:" +
                db + "\", flush_interval: 100ms }\n",
            {}, {}, true);
  REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", body()).status == 200);
  auto share = [&] {
    auto r = http_call(g.port, "GET", "/v1/stats/share?window=1h&by=provider", "", {}, 15s);
    REQUIRE(r.status == 200);
    return json::parse(r.body);
  };
  CHECK(eventually([&] { return share()["complete"] == true; }));
  // Another process takes the database's write lock and keeps it: every write now fails.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  for (int i = 0; i < 3; ++i)
    CHECK(http_call(g.port, "POST", "/v1/chat/completions", body()).status == 200);  // serving
  CHECK(eventually(
      [&] {
        auto m = http_call(g.port, "GET", "/metrics").body;
        return m.find("meridian_ledger_backlog_events 3") != std::string::npos;
      },
      15s));
  auto stale = share();
  CHECK(stale["complete"] == false);
  CHECK(stale["pending_events"] == 3);
  CHECK(stale["total"]["requests"] == 1);  // what the ledger holds, marked as incomplete
  CHECK(eventually(
      [&] { return g.stderr_text().find("the usage ledger cannot write") != std::string::npos; },
      10s));
  // The lock goes; the waiting events are written and nothing was lost.
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  CHECK(eventually([&] { return share()["complete"] == true; }, 15s));
  CHECK(share()["total"]["requests"] == 4);
  CHECK(eventually(
      [&] { return g.stderr_text().find("the usage ledger writes again") != std::string::npos; },
      10s));
}
