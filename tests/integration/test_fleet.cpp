// Fleet mode through the real binary: three gateways sharing rate limits in Redis and one
// ledger in PostgreSQL (both started by scripts/services.sh, as CI does), and what happens when
// Redis cannot be reached.
#include <doctest/doctest.h>

#include <signal.h>

#include <random>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

std::string service_url(const char* variable) {
  const char* url = std::getenv(variable);
  if (!url || !*url)
    FAIL(variable << " is not set: run the tests via scripts/test.sh, or first "
                     "eval \"$(scripts/services.sh start)\" in this shell");
  return url;
}

std::string random_hex() {
  std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string body() {
  return R"({"model":"p/m","messages":[{"role":"user","content":"hi"}]})";
}

std::map<std::string, std::string> bearer(const std::string& secret) {
  return {{"authorization", "Bearer " + secret}};
}

// A fresh database on the test server, dropped when this goes.
struct scratch_database {
  explicit scratch_database(const std::string& server_url) : server(server_url) {
    name = "fleet_" + random_hex();
    REQUIRE(std::system(("psql '" + server + "' -qc 'CREATE DATABASE " + name + "'").c_str()) == 0);
    auto slash = server.find('/', server.find("://") + 3);
    url = server.substr(0, slash) + "/" + name;
  }
  ~scratch_database() {
    std::system(("psql '" + server + "' -qc 'DROP DATABASE IF EXISTS " + name +
                 " WITH (FORCE)' >/dev/null 2>&1")
                    .c_str());
  }
  std::string server, name, url;
};

json share_by_key(std::uint16_t port) {
  // With auth.required, the statistics need a key too.
  return json::parse(http_call(port, "GET", "/v1/stats/share?by=key&window=1h", {},
                               {{"authorization", "Bearer sk-open"}})
                         .body,
                     nullptr, false);
}

json row_of(const json& share, const std::string& key) {
  if (!share.is_object() || !share.contains("rows")) return {};
  for (const auto& row : share["rows"])
    if (row["key"] == key) return row;
  return {};
}

}  // namespace

TEST_CASE("fleet: three gateways share one rpm limit in Redis and one PostgreSQL ledger") {
  const std::string redis = service_url("MERIDIAN_TEST_REDIS");
  scratch_database db(service_url("MERIDIAN_TEST_POSTGRES"));
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  // Names unique to this run: Redis is shared with every other test of the run.
  const std::string run = random_hex(), limited = "limited-" + run, open = "open-" + run;
  const std::string yaml =
      "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, threads: 1 }\n"
      "providers:\n"
      "  p: { base_url: \"http://127.0.0.1:" +
      std::to_string(s.ports.at("p")) +
      "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n"
      "auth: { required: true }\n"
      "keys:\n"
      "  - { name: " +
      limited + ", key_sha256: \"" + sha256_hex("sk-limited") +
      "\", rpm: 10 }\n"
      "  - { name: " +
      open + ", key_sha256: \"" + sha256_hex("sk-open") +
      "\" }\n"
      "state: { url: \"" +
      redis +
      "\", on_error: closed }\n"
      "stats: { ledger: \"" +
      db.url + "\", flush_interval: 100ms }\n";
  const std::map<std::string, std::string> env = {{"MERIDIAN_ADMIN_TOKEN", "adm"}};
  std::vector<std::unique_ptr<gateway>> fleet;
  for (int i = 0; i < 3; ++i) fleet.push_back(std::make_unique<gateway>(yaml, env));

  // 30 requests spread over the three: the fleet admits the limit once, not three times.
  int admitted = 0, limited_429 = 0;
  std::uint64_t limited_tokens = 0;
  for (int i = 0; i < 30; ++i) {
    auto r =
        http_call(fleet[i % 3]->port, "POST", "/v1/chat/completions", body(), bearer("sk-limited"));
    if (r.status == 200) {
      ++admitted;
      limited_tokens += json::parse(r.body)["usage"]["total_tokens"].get<std::uint64_t>();
    }
    if (r.status == 429) ++limited_429;
  }
  MESSAGE("rpm 10 over three gateways, 30 requests: " << admitted << " admitted, " << limited_429
                                                      << " refused with 429");
  CHECK(admitted == 10);
  CHECK(limited_429 == 20);

  // Traffic to all three lands in one ledger, read back from any of them.
  std::uint64_t open_tokens = 0;
  for (int i = 0; i < 12; ++i) {
    auto r =
        http_call(fleet[i % 3]->port, "POST", "/v1/chat/completions", body(), bearer("sk-open"));
    REQUIRE(r.status == 200);
    open_tokens += json::parse(r.body)["usage"]["total_tokens"].get<std::uint64_t>();
  }
  CHECK(json::parse(s.stats("p"))["requests"] == 22);
  json share;
  for (auto& g : fleet) {
    CHECK_MESSAGE(eventually(
                      [&] {
                        share = share_by_key(g->port);
                        json a = row_of(share, open), b = row_of(share, limited);
                        return a.is_object() && b.is_object() && a["tokens"] == open_tokens &&
                               a["requests"] == 12 && b["tokens"] == limited_tokens &&
                               b["requests"] == 10;
                      },
                      5s),
                  share.dump());
  }
  MESSAGE("ledger (PostgreSQL) by key, read from each gateway: "
          << open << " " << open_tokens << " tokens in 12 requests, " << limited << " "
          << limited_tokens << " tokens in 10 requests");

  // A key created on one gateway is served by the others after their next refresh.
  auto made = http_call(fleet[0]->admin_port, "POST", "/admin/keys",
                        R"({"name":"admin-)" + run + R"("})", bearer("adm"));
  REQUIRE(made.status == 201);
  const std::string secret = json::parse(made.body)["key"].get<std::string>();
  CHECK(eventually(
      [&] {
        return http_call(fleet[2]->port, "POST", "/v1/chat/completions", body(), bearer(secret))
                   .status == 200;
      },
      6s));
  for (auto& g : fleet) {
    g->proc->signal(SIGTERM);
    CHECK(g->proc->wait_exit(10s) == 0);
  }
}

TEST_CASE("fleet: an unreachable Redis refuses (on_error closed) or admits (open), counted") {
  sim s("providers:\n  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0 }\n");
  // A port nothing listens on: bind one, then close it.
  std::uint16_t dead_port = 0;
  {
    gateway probe("server: { listen: 127.0.0.1:0, threads: 1 }\n");
    dead_port = probe.port;
    probe.proc->signal(SIGTERM);
    REQUIRE(probe.proc->wait_exit(10s) == 0);
  }
  auto yaml = [&](const std::string& on_error) {
    return "server: { listen: 127.0.0.1:0, threads: 1 }\n"
           "providers:\n"
           "  p: { base_url: \"http://127.0.0.1:" +
           std::to_string(s.ports.at("p")) +
           "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n"
           "keys:\n"
           "  - { name: k, key_sha256: \"" +
           sha256_hex("sk-k") +
           "\", rpm: 5 }\n"
           "state: { url: \"redis://127.0.0.1:" +
           std::to_string(dead_port) + "\", on_error: " + on_error + ", timeout: 200ms }\n";
  };
  {
    gateway closed(yaml("closed"), {}, {}, true);
    auto r = http_call(closed.port, "POST", "/v1/chat/completions", body(), bearer("sk-k"));
    CHECK(r.status == 503);
    CHECK(json::parse(r.body)["error"]["code"] == "state_unavailable");
    CHECK(json::parse(s.stats("p"))["requests"] == 0);
    auto metrics = http_call(closed.port, "GET", "/metrics").body;
    CHECK(metrics.find("meridian_state_errors_total{op=\"admit\",action=\"refused\"} 1") !=
          std::string::npos);
    CHECK(eventually([&] {
      return closed.stderr_text().find("rate-limit store unavailable") != std::string::npos;
    }));
  }
  gateway open(yaml("open"));
  CHECK(http_call(open.port, "POST", "/v1/chat/completions", body(), bearer("sk-k")).status == 200);
  auto metrics = http_call(open.port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_state_errors_total{op=\"admit\",action=\"admitted\"} 1") !=
        std::string::npos);
}
