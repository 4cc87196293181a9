// Token accounting end to end: after mixed traffic through the real binary, /metrics, the share
// API and the ledger agree exactly with the usage the simulator reported, and survive restarts.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const char* k_sim = R"(
providers:
  fast:  { port: 0, models: [m-fast], ttft: 0ms, tokens_per_second: 0, reply_tokens: 8 }
  bad:   { port: 0, models: [m-fast], fault: "status=500" }
  claude:
    dialect: anthropic
    port: 0
    models: [claude-sonnet-4-5]
    ttft: 0ms
    tokens_per_second: 500
    reply_tokens: 6
  gem:
    dialect: gemini
    port: 0
    models: [gemini-2.5-pro]
    ttft: 0ms
    tokens_per_second: 500
    reply_tokens: 7
)";

struct prices {
  double in, out;
};
const std::map<std::string, prices> k_prices = {
    {"fast", {0.5, 1.0}}, {"claude", {3, 15}}, {"gem", {1.25, 10}}};

std::string gateway_yaml(sim& s, const std::string& ledger) {
  auto port = [&](const char* p) { return std::to_string(s.ports.at(p)); };
  return "server: { listen: 127.0.0.1:0, threads: 2 }\n"
         "stats: { ledger: \"sqlite:" +
         ledger +
         "\", flush_interval: 100ms, baseline: claude/claude-sonnet-4-5 }\n"
         "providers:\n"
         "  fast: { base_url: \"http://127.0.0.1:" +
         port("fast") +
         "/v1\", region: cn, models: { m-fast: { input: 0.5, output: 1 } } }\n"
         "  bad: { base_url: \"http://127.0.0.1:" +
         port("bad") +
         "/v1\", region: cn, models: { m-fast: { input: 0.5, output: 1 } } }\n"
         "  claude: { dialect: anthropic, base_url: \"http://127.0.0.1:" +
         port("claude") +
         "/v1\", region: us,"
         " models: { claude-sonnet-4-5: { input: 3, output: 15, cache_read: 0.3 } } }\n"
         "  gem: { dialect: gemini, base_url: \"http://127.0.0.1:" +
         port("gem") +
         "/v1beta\", region: us,"
         " models: { gemini-2.5-pro: { input: 1.25, output: 10 } } }\n"
         "routes:\n"
         "  - { match: fb, policy: ordered, candidates: [bad/m-fast, fast/m-fast] }\n";
}

std::string body(const std::string& model, bool stream) {
  return R"({"model":")" + model +
         R"(","messages":[{"role":"user","content":"Count my tokens exactly"}])" +
         (stream ? R"(,"stream":true,"stream_options":{"include_usage":true})" : "") + "}";
}

struct totals {
  std::uint64_t tokens = 0;
  double cost = 0;
  std::map<std::string, std::uint64_t> by_region;
};

// Sums of every sample of a metric family, optionally only those whose labels contain `filter`.
double metric_sum(const std::string& text, const std::string& name,
                  const std::string& filter = "") {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    if (!filter.empty() && line.find(filter) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

json share(std::uint16_t port, const std::string& by) {
  auto r = http_call(port, "GET", "/v1/stats/share?window=24h&by=" + by);
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

}  // namespace

TEST_CASE("accounting: metrics, share API and ledger equal the simulator's usage exactly") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/ledger.db";
  totals expected;
  std::vector<std::string> ids;
  {
    gateway g(gateway_yaml(s, ledger));
    auto count = [&](const json& usage, const std::string& provider, const std::string& region) {
      std::uint64_t t = usage["prompt_tokens"].get<std::uint64_t>() +
                        usage["completion_tokens"].get<std::uint64_t>();
      expected.tokens += t;
      expected.by_region[region] += t;
      const auto& p = k_prices.at(provider);
      double c = (usage["prompt_tokens"].get<double>() * p.in +
                  usage["completion_tokens"].get<double>() * p.out) /
                 1e6;
      CHECK(usage["cost"].get<double>() == doctest::Approx(c));
      expected.cost += c;
    };
    const std::vector<std::tuple<std::string, std::string, std::string>> calls = {
        {"fast/m-fast", "fast", "cn"},
        {"claude/claude-sonnet-4-5", "claude", "us"},
        {"gem/gemini-2.5-pro", "gem", "us"},
        {"fb", "fast", "cn"}};
    for (const auto& [model, provider, region] : calls) {
      auto r = http_call(g.port, "POST", "/v1/chat/completions", body(model, false));
      REQUIRE(r.status == 200);
      CHECK(r.headers["x-meridian-provider"] == provider);
      ids.push_back(r.headers["x-request-id"]);
      count(json::parse(r.body)["usage"], provider, region);
      stream_client c(g.port, body(model, true));
      REQUIRE(c.status() == 200);
      json usage;
      while (auto ev = c.next_event()) {
        if (*ev == "[DONE]") break;
        auto j = json::parse(*ev);
        if (j.contains("usage") && j["usage"].is_object()) usage = j["usage"];
      }
      REQUIRE(usage.is_object());
      count(usage, provider, region);
    }
    // Every figure below is read after the answers: allow a flush interval.
    CHECK(eventually([&] { return share(g.port, "region")["total"]["tokens"] == expected.tokens; },
                     3s));
    auto by_region = share(g.port, "region");
    MESSAGE("simulator usage: " << expected.tokens << " tokens, $" << expected.cost
                                << "; share API: " << by_region["total"]["tokens"] << " tokens, $"
                                << by_region["total"]["cost_usd"]);
    CHECK(by_region["total"]["cost_usd"].get<double>() == doctest::Approx(expected.cost));
    double sum_shares = 0;
    for (const auto& row : by_region["rows"]) {
      CHECK(row["tokens"] == expected.by_region[row["key"].get<std::string>()]);
      sum_shares += row["share"].get<double>();
    }
    CHECK(sum_shares == doctest::Approx(1.0));
    // Attempts, including the failed one the fallback route made.
    CHECK(by_region["total"]["requests"] == 10);
    auto by_provider = share(g.port, "provider");
    bool saw_bad = false;
    for (const auto& row : by_provider["rows"]) saw_bad |= row["key"] == "bad";
    CHECK(saw_bad);
    REQUIRE(by_region["savings"].is_object());
    CHECK(by_region["savings"]["actual_cost_usd"].get<double>() == doctest::Approx(expected.cost));
    CHECK(by_region["savings"]["baseline_cost_usd"].get<double>() > expected.cost);

    auto metrics = http_call(g.port, "GET", "/metrics").body;
    CHECK(metric_sum(metrics, "meridian_tokens_total") == static_cast<double>(expected.tokens));
    CHECK(metric_sum(metrics, "meridian_cost_usd_total") == doctest::Approx(expected.cost));
    CHECK(metric_sum(metrics, "meridian_energy_kwh_total") ==
          doctest::Approx(static_cast<double>(expected.tokens) / 1e6));  // 1 kWh per Mtok default
    CHECK(metric_sum(metrics, "meridian_electricity_usd_total", "region=\"cn\"") ==
          doctest::Approx(static_cast<double>(expected.by_region["cn"]) / 1e6 * 0.076));

    auto gen = http_call(g.port, "GET", "/v1/generation?id=" + ids[0]);
    REQUIRE(gen.status == 200);
    auto gj = json::parse(gen.body);
    CHECK(gj["provider"] == "fast");
    CHECK(gj["tokens"]["output"] == 8);
    CHECK(http_call(g.port, "GET", "/v1/generation?id=nope").status == 404);
    CHECK(http_call(g.port, "GET", "/v1/stats/share?window=5y").status == 400);

    auto daily =
        json::parse(http_call(g.port, "GET", "/v1/stats/daily?days=2&top=1&by=provider").body);
    REQUIRE(daily["series"].size() == 2);
    std::uint64_t daily_total = 0;
    for (const auto& row : daily["series"][1]["rows"])
      daily_total += row["tokens"].get<std::uint64_t>();
    CHECK(daily_total == expected.tokens);
    CHECK(daily["series"][1]["rows"].back()["key"] == "other");

    auto page = http_call(g.port, "GET", "/dashboard");
    CHECK(page.status == 200);
    CHECK(page.headers["content-type"].find("text/html") == 0);
    CHECK(page.body.find("data-testid=\"share-region-cn\"") != std::string::npos);

    // The exposition passes the real promtool.
    std::string scrape = d.write("scrape.txt", metrics);
    CHECK(std::system(("promtool check metrics < " + scrape + " >/dev/null 2>&1").c_str()) == 0);

    g.proc->signal(SIGTERM);
    REQUIRE(g.proc->wait_exit(10s) == 0);
  }
  // A restart on the same ledger keeps the shares.
  gateway again(gateway_yaml(s, ledger));
  CHECK(share(again.port, "region")["total"]["tokens"] == expected.tokens);
}

TEST_CASE("accounting: kill -9 after a flush loses nothing that was flushed") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/ledger.db";
  std::uint64_t tokens = 0;
  {
    gateway g(gateway_yaml(s, ledger));
    for (int i = 0; i < 5; ++i) {
      auto r = http_call(g.port, "POST", "/v1/chat/completions", body("fast/m-fast", false));
      REQUIRE(r.status == 200);
      auto u = json::parse(r.body)["usage"];
      tokens +=
          u["prompt_tokens"].get<std::uint64_t>() + u["completion_tokens"].get<std::uint64_t>();
    }
    CHECK(eventually([&] { return share(g.port, "region")["total"]["tokens"] == tokens; }, 3s));
    g.proc->signal(SIGKILL);
    g.proc->wait_exit(5s);
  }
  gateway again(gateway_yaml(s, ledger));
  CHECK(share(again.port, "region")["total"]["tokens"] == tokens);
}

TEST_CASE("accounting: meridian stats prints the share table from the ledger") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/ledger.db";
  const std::string cfg = d.write("m.yaml", gateway_yaml(s, ledger));
  {
    gateway g(gateway_yaml(s, ledger));
    for (const char* model : {"fast/m-fast", "claude/claude-sonnet-4-5"})
      REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", body(model, false)).status == 200);
    g.proc->signal(SIGTERM);
    REQUIRE(g.proc->wait_exit(10s) == 0);
  }
  process p({MERIDIAN_BIN, "stats", "-c", cfg, "--window", "24h", "--by", "provider"});
  REQUIRE(p.wait_exit(10s) == 0);
  const std::string out = p.output();
  INFO(out);
  CHECK(out.find("fast") != std::string::npos);
  CHECK(out.find("claude") != std::string::npos);
  CHECK(out.find("%") != std::string::npos);
  process bad({MERIDIAN_BIN, "stats", "-c", cfg, "--window", "5y"});
  CHECK(bad.wait_exit(10s) == 2);
}

TEST_CASE("accounting: the dashboard in headless Chromium shows the API's figures") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/ledger.db"));
  for (const char* model :
       {"fast/m-fast", "fast/m-fast", "claude/claude-sonnet-4-5", "gem/gemini-2.5-pro"})
    REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", body(model, false)).status == 200);
  json api;
  REQUIRE(eventually(
      [&] {
        api = json::parse(http_call(g.port, "GET", "/v1/stats/share?window=7d&by=region").body);
        return api["total"]["requests"] == 4;
      },
      3s));
  // The screenshot and the DOM are kept next to the test binary as artifacts.
  const std::string out = std::string(MERIDIAN_ARTIFACT_DIR) + "/dashboard";
  const std::string cmd =
      std::string(MERIDIAN_SOURCE_DIR) +
      "/tests/browser/check_dashboard.sh http://127.0.0.1:" + std::to_string(g.port) + " " + out +
      " >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);  // loaded, no console error (77 would mean Chromium is missing)
  std::ifstream dom_file(out + "/dom.html");
  std::stringstream dom;
  dom << dom_file.rdbuf();
  REQUIRE_FALSE(dom.str().empty());
  for (const auto& row : api["rows"]) {
    char expected[32];
    std::snprintf(expected, sizeof expected, "%.1f %%", row["share"].get<double>() * 100);
    const std::string cell =
        "data-testid=\"share-region-" + row["key"].get<std::string>() + "\">" + expected + "<";
    INFO(cell);
    CHECK(dom.str().find(cell) != std::string::npos);
  }
  CHECK(std::filesystem::file_size(out + "/dashboard.png") > 10000);
  // The script's refresh colours every name as the server did: one colour per name.
  const std::string served = http_call(g.port, "GET", "/dashboard").body;
  for (const char* key : {"fast/m-fast", "claude/claude-sonnet-4-5", "gem/gemini-2.5-pro"}) {
    const std::string tail = std::string("\"></i>") + key + "</td>";
    const auto a = served.find(tail), b = dom.str().find(tail);
    REQUIRE_MESSAGE(a != std::string::npos, key);
    REQUIRE_MESSAGE(b != std::string::npos, key);
    CHECK_MESSAGE(served.substr(a - 7, 7) == dom.str().substr(b - 7, 7), key);
  }
  // The short windows too, screenshots kept: the charts follow the window (hourly buckets).
  for (const char* window : {"1h", "24h"}) {
    const std::string dir = out + "-" + window;
    const std::string shot =
        std::string(MERIDIAN_SOURCE_DIR) +
        "/tests/browser/check_dashboard.sh 'http://127.0.0.1:" + std::to_string(g.port) +
        "/dashboard?window=" + window + "' " + dir + " >/dev/null 2>&1";
    const int code = std::system(shot.c_str());
    REQUIRE(WIFEXITED(code));
    CHECK_MESSAGE(WEXITSTATUS(code) == 0, window);
    std::ifstream f(dir + "/dom.html");
    std::stringstream page;
    page << f.rdbuf();
    CHECK_MESSAGE(page.str().find("data-testid=\"tokens-model\"") != std::string::npos, window);
    CHECK_MESSAGE(
        page.str().find("data-active=\"" + std::string(window) + "\"") != std::string::npos,
        window);
    CHECK(std::filesystem::file_size(dir + "/dashboard.png") > 10000);
  }
}

namespace {

// Sends requests in a loop until told to stop or the gateway stops answering; remembers when
// each 200 finished and how many tokens it carried.
struct load_loop {
  struct served {
    std::chrono::steady_clock::time_point at;
    std::uint64_t tokens;
  };
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<served> done;
  std::thread t;
  explicit load_loop(std::uint16_t port) {
    t = std::thread([this, port] {
      while (!stop) {
        auto r =
            http_call(port, "POST", "/v1/chat/completions", body("fast/m-fast", false), {}, 2s);
        if (r.status != 200) {
          if (r.status == 0) std::this_thread::sleep_for(5ms);  // refused: the gateway is gone
          continue;
        }
        auto u = json::parse(r.body)["usage"];
        std::lock_guard lock(mu);
        done.push_back(
            {std::chrono::steady_clock::now(), u["prompt_tokens"].get<std::uint64_t>() +
                                                   u["completion_tokens"].get<std::uint64_t>()});
      }
    });
  }
  ~load_loop() { finish(); }
  void finish() {
    stop = true;
    if (t.joinable()) t.join();
  }
  std::uint64_t tokens_until(std::chrono::steady_clock::time_point until) {
    std::lock_guard lock(mu);
    std::uint64_t sum = 0;
    for (const auto& s : done) sum += s.at <= until ? s.tokens : 0;
    return sum;
  }
};

std::string durable_yaml(sim& s, const std::string& ledger, const std::string& flush) {
  std::string y = gateway_yaml(s, ledger);
  auto at = y.find("flush_interval: 100ms");
  return y.replace(at, 21, "flush_interval: " + flush);
}

}  // namespace

TEST_CASE("accounting: SIGTERM under load loses no usage event") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/ledger.db";
  std::uint64_t served = 0;
  {
    gateway g(durable_yaml(s, ledger, "5s"));  // nothing is flushed before the signal
    load_loop load(g.port);
    std::this_thread::sleep_for(700ms);
    g.proc->signal(SIGTERM);
    REQUIRE(g.proc->wait_exit(15s) == 0);
    load.finish();
    served = load.tokens_until(std::chrono::steady_clock::now());
  }
  REQUIRE(served > 0);
  gateway again(durable_yaml(s, ledger, "5s"));
  CHECK(share(again.port, "region")["total"]["tokens"] == served);
}

TEST_CASE("accounting: kill -9 under load loses at most one flush interval") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/ledger.db";
  constexpr auto flush = 300ms;
  std::uint64_t old_enough = 0, all = 0;
  {
    gateway g(durable_yaml(s, ledger, "300ms"));
    load_loop load(g.port);
    std::this_thread::sleep_for(1500ms);
    const auto killed = std::chrono::steady_clock::now();
    g.proc->signal(SIGKILL);
    g.proc->wait_exit(5s);
    load.finish();
    // Everything answered more than one flush interval (plus the flush's own time) before the
    // kill was written; what came later may be lost.
    old_enough = load.tokens_until(killed - flush - 200ms);
    all = load.tokens_until(killed);
  }
  REQUIRE(old_enough > 0);
  gateway again(durable_yaml(s, ledger, "300ms"));
  const auto kept = share(again.port, "region")["total"]["tokens"].get<std::uint64_t>();
  MESSAGE("kill -9: answered " << all << " tokens, ledger kept " << kept << ", required at least "
                               << old_enough);
  CHECK(kept >= old_enough);
  CHECK(kept <= all);
}

TEST_CASE("accounting: /v1/stats/series gives absolute tokens per hour over the window") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/ledger.db"));
  for (const char* model : {"fast/m-fast", "claude/claude-sonnet-4-5"})
    REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", body(model, false)).status == 200);
  json share;
  REQUIRE(eventually([&] {
    share = json::parse(http_call(g.port, "GET", "/v1/stats/share?window=24h&by=model").body);
    return share["total"]["requests"] == 2;
  }));
  auto r = http_call(g.port, "GET", "/v1/stats/series?window=24h");
  REQUIRE(r.status == 200);
  const json j = json::parse(r.body);
  CHECK(j["bucket"] == "hour");
  CHECK(j["by"] == "model");  // the default for a series
  REQUIRE(j["series"].size() == 24);
  std::uint64_t tokens = 0;
  for (const auto& b : j["series"])
    for (const auto& row : b["rows"]) tokens += row["tokens"].get<std::uint64_t>();
  CHECK(tokens == share["total"]["tokens"].get<std::uint64_t>());
  CHECK(json::parse(http_call(g.port, "GET", "/v1/stats/series?window=7d&by=region").body)["bucket"] ==
        "day");
  auto bad = http_call(g.port, "GET", "/v1/stats/series?window=90m");
  CHECK(bad.status == 400);
  CHECK(json::parse(bad.body)["error"]["param"] == "window");
  // The dashboard's tokens chart follows its window, by the dimension asked for.
  const std::string page = http_call(g.port, "GET", "/dashboard?window=24h").body;
  CHECK(page.find("data-testid=\"tokens-model\"") != std::string::npos);
  const std::string by_provider =
      http_call(g.port, "GET", "/dashboard?window=24h&chart=provider").body;
  CHECK(by_provider.find("aria-label=\"tokens by provider over the window\"") != std::string::npos);
  CHECK(by_provider.find("<title>claude 20") != std::string::npos);  // a provider's stack
}
