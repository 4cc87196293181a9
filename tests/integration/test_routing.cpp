// Routing through the real binary: fallbacks on each upstream fault, no silent retry once a
// stream has started, circuit breaking, the route header, and hot reload under load.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const char* k_sim = R"(
providers:
  good:    { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5 }
  good2:   { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 6 }
  bad500:  { port: 0, models: [m], fault: "status=500" }
  badreset: { port: 0, models: [m], fault: "reset" }
  badstall: { port: 0, models: [m], fault: "delay=5000" }
  bad429:  { port: 0, models: [m], fault: "status=429;retry_after=1" }
  cut:     { port: 0, models: [m], ttft: 0ms, tokens_per_second: 100, reply_tokens: 10, fault: "cut_after=2" }
)";

std::string providers_yaml(sim& s) {
  std::string out = "providers:\n";
  for (const auto& [name, port] : s.ports)
    out += "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(port) +
           "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n";
  return out;
}

std::string gateway_yaml(sim& s, const std::string& routes) {
  return "server: { listen: 127.0.0.1:0, threads: 1, timeouts: { first_byte: 300ms, idle_chunk: "
         "300ms } }\n" +
         providers_yaml(s) + "routes:\n" + routes;
}

std::string ordered(const std::string& name, const std::vector<std::string>& providers) {
  std::string c;
  for (const auto& p : providers) c += (c.empty() ? "" : ", ") + p + "/m";
  return "  - { match: " + name + ", policy: ordered, candidates: [" + c + "], retries: 3 }\n";
}

std::string body(const std::string& model, bool stream = false) {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}])" +
         (stream ? R"(,"stream":true)" : "") + "}";
}

int sim_requests(sim& s, const std::string& provider) {
  return json::parse(s.stats(provider))["requests"].get<int>();
}

}  // namespace

TEST_CASE("routing: each upstream fault falls back to the next candidate") {
  sim s(k_sim);
  gateway g(
      gateway_yaml(
          s, ordered("r500", {"bad500", "good"}) + ordered("rreset", {"badreset", "good"}) +
                 ordered("rstall", {"badstall", "good"}) + ordered("r429", {"bad429", "good"})),
      {});
  for (std::string route : {"r500", "rreset", "rstall", "r429"}) {
    INFO(route);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", body(route));
    CHECK(r.status == 200);
    CHECK(r.headers["x-meridian-provider"] == "good");
    CHECK(r.headers["x-meridian-route"].find("ordered") != std::string::npos);
    // chose= is the router's first choice; served= the attempt that answered, after the failed.
    CHECK(r.headers["x-meridian-route"].find(" served=good/m failed=bad") != std::string::npos);
    auto j = json::parse(r.body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["usage"]["completion_tokens"] == 5);
    // A streamed request falls back the same way while nothing has reached the client.
    stream_client c(g.port, body(route, true));
    CHECK(c.status() == 200);
    CHECK(c.headers().at("x-meridian-provider") == "good");
    CHECK(c.headers().at("x-meridian-route").find(" served=good/m failed=bad") !=
          std::string::npos);
    CHECK(c.rest(5s).find("[DONE]") != std::string::npos);
  }
  auto metrics = http_call(g.port, "GET", "/metrics").body;
  CHECK(metrics.find(
            "meridian_fallbacks_total{from=\"bad500/m\",to=\"good/m\",reason=\"http_500\"}") !=
        std::string::npos);
  CHECK(metrics.find(
            "meridian_fallbacks_total{from=\"badstall/m\",to=\"good/m\",reason=\"timeout\"}") !=
        std::string::npos);
  REQUIRE(g.proc->wait_line("\"route\":\"r429\"", 2s));
  auto line = json::parse(*g.proc->wait_line("\"route\":\"r429\"", 0ms));
  CHECK(line["fallback_index"] == 1);
  CHECK(line["provider"] == "good");
}

TEST_CASE("routing: OpenRouter's models without model: the first is the model, the rest fallbacks") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, ordered("unused", {"good"})), {});
  auto r = http_call(g.port, "POST", "/v1/chat/completions",
                     R"({"models":["bad500/m","good/m"],"messages":[{"role":"user","content":"hi"}]})");
  REQUIRE(r.status == 200);
  CHECK(r.headers["x-meridian-provider"] == "good");
  CHECK(r.headers["x-meridian-route"].find("failed=bad500/m=http_500") != std::string::npos);
  // What went upstream names the model and carries neither models nor provider.
  auto sent = json::parse(json::parse(s.stats("good"))["last_request"]["body"].get<std::string>());
  CHECK(sent["model"] == "m");
  CHECK_FALSE(sent.contains("models"));
  auto empty = http_call(g.port, "POST", "/v1/chat/completions",
                         R"({"models":[],"messages":[{"role":"user","content":"hi"}]})");
  CHECK(empty.status == 400);
  CHECK(json::parse(empty.body)["error"]["param"] == "models");
}

TEST_CASE("routing: a stream cut after its first byte ends with an error event, not a retry") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, ordered("rcut", {"cut", "good"})), {});
  stream_client c(g.port, body("rcut", true));
  REQUIRE(c.status() == 200);
  CHECK(c.headers().at("x-meridian-provider") == "cut");
  std::string rest = c.rest(5s);
  CHECK(rest.find("\"error\"") != std::string::npos);
  CHECK(rest.find("[DONE]") == std::string::npos);
  CHECK(sim_requests(s, "good") == 0);
}

TEST_CASE("routing: a failing provider's circuit opens and traffic stops going there") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, ordered("r", {"bad500", "good"})), {});
  for (int i = 0; i < 8; ++i)
    CHECK(http_call(g.port, "POST", "/v1/chat/completions", body("r")).status == 200);
  CHECK(sim_requests(s, "bad500") == 3);  // the failure threshold, then the circuit is open
  CHECK(sim_requests(s, "good") == 8);
  auto metrics = http_call(g.port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_provider_up{provider=\"bad500\"} 0") != std::string::npos);
  CHECK(metrics.find("meridian_provider_up{provider=\"good\"} 1") != std::string::npos);
}

TEST_CASE("routing: a non-retryable error is not retried elsewhere") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, ordered("r", {"good", "good2"})), {});
  auto r = http_call(
      g.port, "POST", "/v1/chat/completions",
      R"({"model":"r","messages":[{"role":"user","content":"hi"}],"sim_fault":"status=400"})");
  CHECK(r.status == 400);
  CHECK(sim_requests(s, "good2") == 0);
}

TEST_CASE("routing: constraints that empty the candidate set give a clear error") {
  sim s(k_sim);
  gateway g(
      gateway_yaml(s, "  - { match: picky, candidates: [good/m], require: { regions: [us] } }\n"),
      {});
  auto r = http_call(g.port, "POST", "/v1/chat/completions", body("picky"));
  CHECK(r.status == 404);
  auto e = json::parse(r.body)["error"];
  CHECK(e["message"].get<std::string>().find("route.require.regions") != std::string::npos);
}

TEST_CASE("routing: the config reloads under load without failing a request") {
  sim s(k_sim);
  temp_dir d;
  const std::string valid_a = gateway_yaml(s, ordered("auto", {"good"}));
  const std::string valid_b = gateway_yaml(s, ordered("auto", {"good2"}));
  const std::string path = d.write("meridian.yaml", valid_a);
  process gw({MERIDIAN_BIN, "serve", "-c", path, "--log-level", "warn"}, {}, d.path());
  auto listening = gw.wait_line("\"listening\"", 10s);
  REQUIRE(listening);
  const auto port = json::parse(*listening)["port"].get<std::uint16_t>();

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int> last_tokens{0};
  std::thread client([&] {
    while (!stop) {
      auto r = http_call(port, "POST", "/v1/chat/completions", body("auto"));
      if (r.status == 200) {
        ++ok;
        last_tokens = json::parse(r.body)["usage"]["completion_tokens"].get<int>();
      } else {
        ++failed;
      }
    }
  });
  auto rewrite = [&](const std::string& text) {
    // Write then rename, as editors and ConfigMap updates do.
    std::ofstream(path + ".tmp") << text;
    std::rename((path + ".tmp").c_str(), path.c_str());
  };
  for (int i = 0; i < 20; ++i) {
    if (i % 2 == 1) {
      rewrite("routes: [ {{{ this is not yaml");
      std::this_thread::sleep_for(150ms);
      continue;
    }
    const bool to_b = (i / 2) % 2 == 0;
    rewrite(to_b ? valid_b : valid_a);
    INFO("rewrite " << i);
    // good serves 5 completion tokens, good2 serves 6: the answers follow the file.
    CHECK(eventually([&] { return last_tokens == (to_b ? 6 : 5); }, 5s));
  }
  stop = true;
  client.join();
  CHECK(failed == 0);
  CHECK(ok > 20);
  auto metrics = http_call(port, "GET", "/metrics").body;
  CHECK(metrics.find("meridian_config_reloads_total{result=\"failure\"}") != std::string::npos);
  CHECK(metrics.find("meridian_config_reloads_total{result=\"success\"}") != std::string::npos);
}

TEST_CASE(
    "routing: SIGHUP and POST /admin/reload apply a changed file, and admin stays on its own "
    "port") {
  sim s(k_sim);
  temp_dir d;
  auto yaml = [&](const std::string& who) {
    return "server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, threads: 1 }\n" +
           providers_yaml(s) + "routes:\n" + ordered("auto", {who});
  };
  // The file lives in a directory we rename into, so the watcher does not race the signal.
  const std::string path = d.write("m.yaml", yaml("good"));
  process gw({MERIDIAN_BIN, "serve", "-c", path}, {}, d.path());
  auto listening = gw.wait_line("\"listening\"", 10s);
  auto admin_line = gw.wait_line("\"admin_listening\"", 1s);
  REQUIRE(listening);
  REQUIRE(admin_line);
  const auto port = json::parse(*listening)["port"].get<std::uint16_t>();
  const auto admin = json::parse(*admin_line)["port"].get<std::uint16_t>();
  auto served_by = [&] {
    return http_call(port, "POST", "/v1/chat/completions", body("auto"))
        .headers["x-meridian-provider"];
  };
  CHECK(served_by() == "good");
  CHECK(http_call(port, "POST", "/admin/reload").status == 404);  // not on the public port
  std::ofstream(path) << yaml("good2");
  gw.signal(SIGHUP);
  CHECK(eventually([&] { return served_by() == "good2"; }, 5s));
  std::ofstream(path) << "providers: [ nope";
  auto bad = http_call(admin, "POST", "/admin/reload");
  CHECK(bad.status == 422);
  CHECK(json::parse(bad.body)["error"]["code"] == "invalid_config");
  CHECK(served_by() == "good2");
  std::ofstream(path) << yaml("good");
  CHECK(http_call(admin, "POST", "/admin/reload").status == 200);
  CHECK(served_by() == "good");
  auto cfg = json::parse(http_call(admin, "GET", "/admin/config").body);
  CHECK(cfg["routes"][0]["match"] == "auto");
  CHECK(cfg["providers"].size() == s.ports.size());
}

TEST_CASE(
    "routing: an open circuit lets one probe through after the cooldown and closes on success") {
  sim s(k_sim);
  temp_dir d;
  auto yaml = [&](const std::string& flaky_target) {
    return "server: { listen: 127.0.0.1:0, threads: 1 }\n"
           "health: { failure_threshold: 2, cooldown: 400ms }\n"
           "providers:\n"
           "  flaky: { base_url: \"http://127.0.0.1:" +
           std::to_string(s.ports.at(flaky_target)) +
           "/v1\", region: cn, models: { m: {} } }\n"
           "  good: { base_url: \"http://127.0.0.1:" +
           std::to_string(s.ports.at("good")) +
           "/v1\", region: cn, models: { m: {} } }\n"
           "routes:\n" +
           ordered("auto", {"flaky", "good"});
  };
  const std::string path = d.write("m.yaml", yaml("bad500"));
  process gw({MERIDIAN_BIN, "serve", "-c", path, "--log-level", "warn"}, {}, d.path());
  auto listening = gw.wait_line("\"listening\"", 10s);
  REQUIRE(listening);
  const auto port = json::parse(*listening)["port"].get<std::uint16_t>();
  auto served_by = [&] {
    return http_call(port, "POST", "/v1/chat/completions", body("auto"))
        .headers["x-meridian-provider"];
  };
  for (int i = 0; i < 4; ++i) CHECK(served_by() == "good");
  CHECK(sim_requests(s, "bad500") == 2);  // then open: no more traffic there
  // The operator mends the provider; the health book survives the reload.
  std::ofstream(path) << yaml("good2");
  gw.signal(SIGHUP);
  CHECK(served_by() == "good");  // still open: the cooldown has not passed
  std::this_thread::sleep_for(500ms);
  CHECK(served_by() == "flaky");  // the half-open probe succeeded and closed the circuit
  CHECK(served_by() == "flaky");
  CHECK(
      http_call(port, "GET", "/metrics").body.find("meridian_provider_up{provider=\"flaky\"} 1") !=
      std::string::npos);
}

TEST_CASE("routing: a Kubernetes-style ConfigMap swap of the ..data symlink reloads the config") {
  namespace fs = std::filesystem;
  sim s(k_sim);
  temp_dir d;
  auto version = [&](const std::string& dir, const std::string& who) {
    fs::create_directory(d.path() + "/" + dir);
    std::ofstream(d.path() + "/" + dir + "/meridian.yaml")
        << "server: { listen: 127.0.0.1:0, threads: 1 }\n" + providers_yaml(s) + "routes:\n" +
               ordered("auto", {who});
  };
  // The layout kubelet makes: meridian.yaml -> ..data/meridian.yaml, ..data -> ..v1
  version("..v1", "good");
  fs::create_directory_symlink("..v1", d.path() + "/..data");
  fs::create_symlink("..data/meridian.yaml", d.path() + "/meridian.yaml");
  process gw({MERIDIAN_BIN, "serve", "-c", d.path() + "/meridian.yaml", "--log-level", "warn"}, {},
             d.path());
  auto listening = gw.wait_line("\"listening\"", 10s);
  REQUIRE(listening);
  const auto port = json::parse(*listening)["port"].get<std::uint16_t>();
  auto served_by = [&] {
    return http_call(port, "POST", "/v1/chat/completions", body("auto"))
        .headers["x-meridian-provider"];
  };
  CHECK(served_by() == "good");
  version("..v2", "good2");
  fs::create_directory_symlink("..v2", d.path() + "/..data_tmp");
  fs::rename(d.path() + "/..data_tmp", d.path() + "/..data");  // the atomic swap
  CHECK(eventually([&] { return served_by() == "good2"; }, 5s));
}

TEST_CASE("routing: a reload never applies an empty or cut-off file, and says what it changed") {
  sim s(k_sim);
  const std::string secret = "sk-team-reload-test";
  const std::string full = "server: { listen: 127.0.0.1:0, threads: 1 }\n" + providers_yaml(s) +
                           "routes:\n" + ordered("auto", {"good"}) + "keys:\n  - { name: team, key_sha256: \"" +
                           sha256_hex(secret) + "\" }\nauth: { required: true }\n";
  gateway g(full, {}, {"--log-level", "info"}, true);
  const std::string path = g.dir.path() + "/meridian.yaml";
  auto status = [&](bool with_key) {
    std::map<std::string, std::string> h;
    if (with_key) h["authorization"] = "Bearer " + secret;
    return http_call(g.port, "POST", "/v1/chat/completions", body("auto"), h).status;
  };
  auto failures = [&] {
    auto m = http_call(g.port, "GET", "/metrics", "", {{"authorization", "Bearer " + secret}}).body;
    const std::string needle = "meridian_config_reloads_total{result=\"failure\"} ";
    auto at = m.find(needle);
    return at == std::string::npos ? 0 : std::stoi(m.substr(at + needle.size()));
  };
  REQUIRE(status(false) == 401);
  REQUIRE(status(true) == 200);

  // An editor truncating before it writes: `: > meridian.yaml`.
  std::ofstream(path, std::ios::trunc).close();
  CHECK(eventually([&] { return failures() == 1; }));
  CHECK(status(false) == 401);
  CHECK(status(true) == 200);  // every provider is still there

  // A write cut before the auth section: applied, it would switch authentication off.
  std::ofstream(path, std::ios::trunc) << full.substr(0, full.find("keys:"));
  CHECK(eventually([&] { return failures() == 2; }));
  CHECK(status(false) == 401);
  CHECK(eventually([&] {
    return g.stderr_text().find("would switch authentication off") != std::string::npos;
  }));

  // Said on purpose, it is applied, and the log names what changed; so is a health change.
  std::ofstream(path, std::ios::trunc)
      << full.substr(0, full.find("keys:")) +
             "auth: { required: false }\nhealth: { failure_threshold: 9 }\n";
  CHECK(eventually([&] { return status(false) == 200; }));
  const std::string log = g.stderr_text();
  CHECK(log.find("config reload changes protection: auth.required switched off") !=
        std::string::npos);
  CHECK(log.find("keys removed: team") != std::string::npos);
  CHECK(log.find("health options applied") != std::string::npos);
  CHECK(failures() == 2);
}
