// `meridian demo --port P`: the simulators and the gateway from the demo files, showing the
// product: `auto` under a cost policy across CN, US and local with the flaky local server's
// failures falling back and opening its circuit, a quality route, a key held to US and local,
// and savings against the baseline.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

bool port_free(unsigned port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Seven free ports in a row, below the kernel's ephemeral range (which starts at 32768).
unsigned free_run() {
  std::mt19937 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 50; ++attempt) {
    const unsigned p = 20000 + rng() % 10000;
    bool all = true;
    for (unsigned i = 0; i <= 6 && all; ++i) all = port_free(p + i);
    if (all) return p;
  }
  FAIL("no seven free ports in a row");
  return 0;
}

// Each call is its own conversation (a new prompt), so session affinity does not keep one on
// the deployment that answered the last.
std::string chat(const std::string& model) {
  static int n = 0;
  return json{{"model", model},
              {"messages", {{{"role", "user"}, {"content", "Hello " + std::to_string(++n)}}}}}
      .dump();
}

}  // namespace

TEST_CASE("demo: auto, a quality route, a residency-bound key, fallbacks from a flaky server, "
          "savings") {
  temp_dir work;
  const unsigned port = free_run();
  process demo({MERIDIAN_BIN, "demo", "--port", std::to_string(port)}, {}, work.path());
  REQUIRE(demo.wait_line("Ctrl-C stops", 20s));
  const auto p = static_cast<std::uint16_t>(port);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = http_call(p, "GET", "/healthz").status == 200;
    if (!up) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(up);

  // auto: the cheapest adequate model is the free local one, but the local server fails its
  // first 3 of every 8 requests: each failure is answered by a fallback, and the third opens
  // the model's circuit (health.failure_threshold), so the next requests skip it.
  std::vector<std::string> routes;
  for (int i = 0; i < 5; ++i) {
    auto r = http_call(p, "POST", "/v1/chat/completions", chat("auto"));
    REQUIRE(r.status == 200);
    routes.push_back(r.headers["x-meridian-route"]);
    INFO(routes.back());
    CHECK(routes.back().find("route=auto policy=cost") != std::string::npos);
    CHECK(r.headers["x-meridian-provider"] != "local");
  }
  for (int i = 0; i < 3; ++i)
    CHECK(routes[static_cast<std::size_t>(i)].find("failed=local/qwen2.5:7b=http_503") !=
          std::string::npos);
  // Open: the router leaves it out of the plan (one candidate fewer), no attempt waits on it.
  CHECK(routes[3].find("local/") == std::string::npos);
  CHECK(routes[4].find("local/") == std::string::npos);
  const std::string metrics = http_call(p, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_fallbacks_total{from=\"local/qwen2.5:7b\"") != std::string::npos);

  // Per provider: who answered after the local server failed, and how fast.
  const json providers =
      json::parse(http_call(p, "GET", "/v1/stats/share?window=1h&by=provider").body)["rows"];
  std::uint64_t rescued = 0;
  for (const auto& r : providers) {
    rescued += r["answered_after_fallback"].get<std::uint64_t>();
    if (r["key"] == "local") CHECK(r["errors"].get<int>() == 3);
    if (r["answered_after_fallback"].get<int>() > 0) CHECK(r["latency_ms_mean"].get<double>() > 0);
  }
  CHECK(rescued == 3);

  // best: the highest quality among the frontier providers.
  auto best = http_call(p, "POST", "/v1/chat/completions", chat("best"));
  REQUIRE(best.status == 200);
  CHECK(best.headers["x-meridian-route"].find("policy=quality") != std::string::npos);

  // The key may not reach China, whatever it names; auto stays in the US and local for it.
  const std::map<std::string, std::string> key = {{"authorization", "Bearer sk-demo-us-only"}};
  auto cn = http_call(p, "POST", "/v1/chat/completions", chat("deepseek/deepseek-chat"), key);
  CHECK(cn.status == 404);
  CHECK(json::parse(cn.body)["error"]["message"].get<std::string>().find("key.regions") !=
        std::string::npos);
  for (int i = 0; i < 4; ++i) {
    auto r = http_call(p, "POST", "/v1/chat/completions", chat("auto"), key);
    REQUIRE(r.status == 200);
    const std::string provider = r.headers["x-meridian-provider"];
    CHECK((provider == "local" || provider == "openai"));
  }

  // cn-first: China's cheapest first, by tier; for the us-only key the US tier leads.
  auto tiered =
      http_call(p, "POST", "/v1/chat/completions", chat("cn-first"), {{"x-title", "My App"}});
  REQUIRE(tiered.status == 200);
  CHECK(tiered.headers["x-meridian-route"].find("route=cn-first policy=cost chose=") == 0);
  CHECK(tiered.headers["x-meridian-route"].find(" tier=1 ") != std::string::npos);
  auto tiered_us = http_call(p, "POST", "/v1/chat/completions", chat("cn-first"), key);
  REQUIRE(tiered_us.status == 200);
  CHECK(tiered_us.headers["x-meridian-route"].find("policy=quality") != std::string::npos);
  CHECK(tiered_us.headers["x-meridian-route"].find(" tier=2 ") != std::string::npos);

  // Savings against the gpt-4o baseline.
  auto share = http_call(p, "GET", "/v1/stats/share?window=1h");
  REQUIRE(share.status == 200);
  const json s = json::parse(share.body);
  REQUIRE(s["savings"].is_object());
  CHECK(s["savings"]["baseline"] == "openai/gpt-4o");
  CHECK(s["savings"]["saved_usd"].get<double>() > 0);

  // The app ranking: the request that named itself with X-Title.
  CHECK(eventually([&] {
    return http_call(p, "GET", "/v1/stats/share?window=1h&by=app").body.find("\"My App\"") !=
           std::string::npos;
  }));
  CHECK(http_call(p, "GET", "/dashboard").body.find("data-testid=\"share-app-My App\"") !=
        std::string::npos);

  demo.signal(SIGTERM);
  CHECK(demo.wait_exit(15s).has_value());
}

TEST_CASE("demo: --port is checked") {
  process bad({MERIDIAN_BIN, "demo", "--port", "70000"});
  CHECK(bad.wait_exit(10s) == 2);
}
