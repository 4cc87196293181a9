// The proxy hop end to end: meridian serve in front of meridian-sim, on ports picked at run time.
#include <doctest/doctest.h>

#include <signal.h>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// A sim with one provider, `fast` (quick replies) and `slow` (streams 10 tokens at 20/s).
std::string sim_yaml(const std::string& extra = "") {
  return R"(
providers:
  fast:
    port: 0
    models: [m-fast, shared]
    ttft: 0ms
    tokens_per_second: 0
    reply_tokens: 8
    api_key: sk-sim-upstream-secret
  slow:
    port: 0
    models: [m-slow, shared]
    ttft: 50ms
    tokens_per_second: 20
    reply_tokens: 10
)" + extra;
}

std::string gateway_yaml(sim& s, const std::string& server_extra = "", const std::string& tls = "",
                         const std::string& scheme = "http",
                         const std::string& host = "127.0.0.1") {
  return "server:\n  listen: 127.0.0.1:0\n  threads: 2\n" + server_extra +
         "providers:\n"
         "  fast:\n    base_url: http://127.0.0.1:" +
         std::to_string(s.ports.at("fast")) +
         "/v1\n    region: cn\n    api_key_env: SIM_KEY\n"
         "    models: { m-fast: { input: 0.5, output: 1 }, shared: {} }\n"
         "  slow:\n    base_url: " +
         scheme + "://" + host + ":" + std::to_string(s.ports.at("slow")) +
         "/v1\n    region: us\n" + tls + "    models: { m-slow: {}, shared: {} }\n";
}

const std::map<std::string, std::string> k_env = {{"SIM_KEY", "sk-sim-upstream-secret"}};

std::string chat_body(const std::string& model, bool stream = false,
                      const std::string& extra = "") {
  return R"({"model":")" + model +
         R"(","messages":[{"role":"user","content":"Hello there, gateway"}])" +
         (stream ? R"(,"stream":true)" : "") + extra + "}";
}

json error_of(const http_result& r) {
  auto j = json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  CHECK(j["error"].contains("message"));
  CHECK(j["error"].contains("type"));
  CHECK(j["error"].contains("param"));
  CHECK(j["error"].contains("code"));
  return j["error"];
}

}  // namespace

TEST_CASE("proxy: non-streamed chat is relayed with provider headers and usage") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  auto r =
      http_call(g.port, "POST", "/v1/chat/completions", chat_body("fast/m-fast"),
                {{"x-request-id", "client-chosen-id"}, {"authorization", "Bearer client-own-key"}});
  REQUIRE(r.status == 200);
  CHECK(r.headers["x-request-id"] == "client-chosen-id");
  CHECK(r.headers["x-meridian-provider"] == "fast");
  CHECK(r.headers["x-meridian-model"] == "m-fast");
  auto j = json::parse(r.body);
  CHECK(j["provider"] == "fast");
  CHECK(j["model"] == "m-fast");
  CHECK(j["choices"][0]["message"]["content"].get<std::string>().size() > 0);
  CHECK(j["usage"]["completion_tokens"] == 8);
  // The provider's key went upstream; the client's never did.
  auto st = json::parse(s.stats("fast"));
  CHECK(st["last_request"]["headers"]["authorization"] == "Bearer sk-sim-upstream-secret");
  // A bare model name served by one provider works too, and a fresh id is generated.
  auto bare = http_call(g.port, "POST", "/v1/chat/completions", chat_body("m-slow"));
  CHECK(bare.status == 200);
  CHECK(bare.headers["x-meridian-provider"] == "slow");
  CHECK(bare.headers["x-request-id"].rfind("req_", 0) == 0);
  // The access log has one line per request, with tokens.
  REQUIRE(g.proc->wait_line("client-chosen-id", 2s));
  auto line = json::parse(*g.proc->wait_line("client-chosen-id", 0ms));
  CHECK(line["status"] == 200);
  CHECK(line["provider"] == "fast");
  CHECK(line["output_tokens"] == 8);
  CHECK(line["input_tokens"].get<int>() > 0);
  // ... and its cost, the one the answer's usage.cost and the ledger carry.
  REQUIRE(line["cost_usd"].is_number());
  CHECK(line["cost_usd"].get<double>() ==
        doctest::Approx(json::parse(r.body)["usage"]["cost"].get<double>()));
}

TEST_CASE("proxy: probes are not access-logged unless they fail or log_probes says so") {
  sim s(sim_yaml());
  {
    gateway g(gateway_yaml(s), k_env);
    for (int i = 0; i < 3; ++i) CHECK(http_call(g.port, "GET", "/healthz").status == 200);
    CHECK(http_call(g.port, "GET", "/readyz").status == 200);
    CHECK(http_call(g.port, "GET", "/v1/models").status == 200);  // logged: the marker
    REQUIRE(g.proc->wait_line("\"path\":\"/v1/models\"", 2s));
    CHECK_FALSE(g.proc->wait_line("\"path\":\"/healthz\"", 0ms));
    CHECK_FALSE(g.proc->wait_line("\"path\":\"/readyz\"", 0ms));
  }
  gateway g(gateway_yaml(s, "  log_probes: true\n"), k_env);
  CHECK(http_call(g.port, "GET", "/healthz").status == 200);
  CHECK(g.proc->wait_line("\"path\":\"/healthz\"", 2s));
}

TEST_CASE("proxy: unknown fields reach the upstream byte-identical with only model rewritten") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  const std::string body =
      "{\"model\" :  \"fast/m-fast\",\n \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 "
      "\\\"q\\\"\"}],"
      " \"x_vendor_thing\": {\"keep\": [1, 2.50, \"order\"]}, \"reasoning_content\": \"abc\", "
      "\"temperature\": 0.70}";
  auto r = http_call(g.port, "POST", "/v1/chat/completions", body);
  REQUIRE(r.status == 200);
  auto st = json::parse(s.stats("fast"));
  std::string expected = body;
  expected.replace(expected.find("\"fast/m-fast\""), 13, "\"m-fast\"");
  CHECK(st["last_request"]["body"].get<std::string>() == expected);
}

TEST_CASE("proxy: streamed chat relays every event, and the usage chunk only when asked") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  stream_client c(g.port, chat_body("slow/m-slow", true));
  REQUIRE(c.status() == 200);
  CHECK(c.headers().at("content-type").find("text/event-stream") != std::string::npos);
  CHECK(c.headers().at("x-meridian-provider") == "slow");
  // Proof of no buffering: when the first event arrives, the sim is still streaming.
  auto first = c.next_event();
  REQUIRE(first);
  auto st = json::parse(s.stats("slow"));
  CHECK(st["active_streams"] == 1);
  CHECK(st["streams_completed"] == 0);
  std::string content;
  std::vector<std::string> events{*first};
  while (auto ev = c.next_event()) events.push_back(*ev);
  REQUIRE(events.size() >= 12);
  CHECK(events.back() == "[DONE]");
  int usage_chunks = 0;
  for (const auto& e : events) {
    if (e == "[DONE]") continue;
    auto j = json::parse(e);
    if (j.contains("usage") && j["usage"].is_object()) {
      ++usage_chunks;
      CHECK(j["usage"]["completion_tokens"] == 10);
    }
    if (!j["choices"].empty() && j["choices"][0]["delta"].contains("content"))
      content += j["choices"][0]["delta"]["content"].get<std::string>();
  }
  // The gateway asked for it for its own accounting; the client did not, so code doing
  // choices[0] on every chunk never meets a chunk without choices.
  CHECK(usage_chunks == 0);
  CHECK(content.size() > 10);
  // The sim saw include_usage forced on.
  auto last = json::parse(json::parse(s.stats("slow"))["last_request"]["body"].get<std::string>());
  CHECK(last["stream_options"]["include_usage"] == true);
  REQUIRE(g.proc->wait_line("\"stream\":true", 2s));
  auto line = json::parse(*g.proc->wait_line("\"stream\":true", 0ms));
  CHECK(line["output_tokens"] == 10);
  CHECK(line["ttft_ms"].is_number());
}

TEST_CASE("proxy: the usage chunk reaches a client that asked, or every client when configured") {
  sim s(sim_yaml());
  auto usage_chunks = [](std::uint16_t port, const std::string& body) {
    stream_client c(port, body);
    REQUIRE(c.status() == 200);
    int n = 0;
    while (auto ev = c.next_event()) {
      if (*ev == "[DONE]") continue;
      auto j = json::parse(*ev);
      if (j.contains("usage") && j["usage"].is_object()) {
        ++n;
        CHECK(j["choices"].empty());
        CHECK(j["usage"]["completion_tokens"] == 8);
        CHECK(j["usage"]["cost"].is_number());
      }
    }
    return n;
  };
  json asked = json::parse(chat_body("fast/m-fast", true));
  asked["stream_options"] = {{"include_usage", true}};
  {
    gateway g(gateway_yaml(s), k_env);
    CHECK(usage_chunks(g.port, asked.dump()) == 1);
    asked["stream_options"]["include_usage"] = false;
    CHECK(usage_chunks(g.port, asked.dump()) == 0);
  }
  gateway g(gateway_yaml(s, "  always_stream_usage: true\n"), k_env);
  CHECK(usage_chunks(g.port, chat_body("fast/m-fast", true)) == 1);
}

TEST_CASE("proxy: client errors come back in OpenAI's shape") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s, "  limits: { max_body_bytes: 2KiB }\n"), k_env);
  auto bad = http_call(g.port, "POST", "/v1/chat/completions", "{\"model\": \"fast/m-fast\", ");
  CHECK(bad.status == 400);
  CHECK(error_of(bad)["type"] == "invalid_request_error");
  auto missing = http_call(g.port, "POST", "/v1/chat/completions", R"({"model":"fast/m-fast"})");
  CHECK(missing.status == 400);
  CHECK(error_of(missing)["param"] == "messages");
  auto big =
      http_call(g.port, "POST", "/v1/chat/completions",
                chat_body("fast/m-fast", false, ",\"pad\":\"" + std::string(4096, 'x') + "\""));
  CHECK(big.status == 413);
  CHECK(error_of(big)["code"] == "request_too_large");
  auto unknown = http_call(g.port, "POST", "/v1/chat/completions", chat_body("nosuch-model"));
  CHECK(unknown.status == 404);
  CHECK(error_of(unknown)["code"] == "model_not_found");
  auto ambiguous = http_call(g.port, "POST", "/v1/chat/completions", chat_body("shared"));
  CHECK(ambiguous.status == 400);
  auto e = error_of(ambiguous);
  CHECK(e["code"] == "ambiguous_model");
  CHECK(e["message"].get<std::string>().find("fast/shared, slow/shared") != std::string::npos);
  auto path = http_call(g.port, "GET", "/v1/nothing");
  CHECK(path.status == 404);
  error_of(path);
  auto method = http_call(g.port, "GET", "/v1/chat/completions");
  CHECK(method.status == 405);
  error_of(method);
  // The connection limits do not affect the health endpoints.
  CHECK(http_call(g.port, "GET", "/healthz").status == 200);
  CHECK(http_call(g.port, "GET", "/readyz").status == 200);
}

TEST_CASE("proxy: /v1/models and /metrics") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  auto models = json::parse(http_call(g.port, "GET", "/v1/models").body);
  CHECK(models["object"] == "list");
  bool found = false;
  for (const auto& m : models["data"])
    if (m["id"] == "fast/m-fast") {
      found = true;
      CHECK(m["region"] == "cn");
      CHECK(m["pricing"]["input"] == 0.5);
    }
  CHECK(found);
  REQUIRE(http_call(g.port, "POST", "/v1/chat/completions", chat_body("fast/m-fast")).status ==
          200);
  // Counters are updated once the answer has been written, so a scrape may run a moment ahead.
  http_result metrics;
  CHECK(eventually([&] {
    metrics = http_call(g.port, "GET", "/metrics");
    return metrics.body.find(
               "meridian_requests_total{route=\"\",provider=\"fast\",model=\"m-fast\",region="
               "\"cn\",status=\"200\"} 1") != std::string::npos;
  }));
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("meridian_tokens_total{provider=\"fast\",model=\"m-fast\",author="
                          "\"unknown\",region=\"cn\",type=\"output\"} 8") != std::string::npos);
  CHECK(metrics.body.find("meridian_build_info{version=\"0.1.0\"} 1") != std::string::npos);
}

TEST_CASE("proxy: upstream failures map to clear gateway errors") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s, "  timeouts: { first_byte: 400ms, idle_chunk: 400ms }\n"), k_env);
  auto fault = [&](const std::string& f, bool stream = false) {
    return http_call(g.port, "POST", "/v1/chat/completions",
                     chat_body("fast/m-fast", stream, ",\"sim_fault\":\"" + f + "\""));
  };
  // A success between faults keeps the circuit breaker (3 failures in a row) closed.
  auto ok = [&] {
    CHECK(http_call(g.port, "POST", "/v1/chat/completions", chat_body("fast/m-fast")).status ==
          200);
  };
  auto r500 = fault("status=500");
  CHECK(r500.status == 502);
  CHECK(error_of(r500)["code"] == "upstream_error");
  ok();
  auto r429 = fault("status=429;retry_after=7");
  CHECK(r429.status == 429);
  CHECK(r429.headers["retry-after"] == "7");
  ok();
  auto malformed = fault("malformed");
  CHECK(malformed.status == 502);
  CHECK(error_of(malformed)["code"] == "upstream_malformed");
  ok();
  auto reset = fault("reset");
  CHECK(reset.status == 502);
  ok();
  auto t0 = std::chrono::steady_clock::now();
  auto stall = fault("delay=5000");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(stall.status == 504);
  CHECK(error_of(stall)["code"] == "upstream_timeout");
  CHECK(took < 3s);  // the 400 ms first_byte deadline, not the sim's 5 s stall
  ok();
  // No answer ever quotes the provider's key.
  for (const auto* r : {&r500, &r429, &malformed, &reset, &stall})
    CHECK(r->body.find("sk-sim-upstream-secret") == std::string::npos);
  // A stream stalled mid-way ends with an error event, not a hang.
  stream_client c(g.port,
                  chat_body("fast/m-fast", true, ",\"sim_fault\":\"stall_after=2;stall=5000\""));
  REQUIRE(c.status() == 200);
  std::string rest = c.rest(5s);
  CHECK(rest.find("upstream_timeout") != std::string::npos);
  // The gateway is still healthy afterwards.
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", chat_body("fast/m-fast")).status == 200);
}

TEST_CASE("proxy: a client leaving mid-stream cancels the upstream stream") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  {
    stream_client c(g.port, chat_body("slow/m-slow", true));
    REQUIRE(c.status() == 200);
    REQUIRE(c.next_event());
    c.close();
  }
  CHECK(eventually([&] { return json::parse(s.stats("slow"))["streams_cancelled"] == 1; }, 5s));
  CHECK(json::parse(s.stats("slow"))["streams_completed"] == 0);
}

TEST_CASE("proxy: SIGTERM drains an in-flight stream, then exits 0") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s), k_env);
  stream_client c(g.port, chat_body("slow/m-slow", true));
  REQUIRE(c.status() == 200);
  REQUIRE(c.next_event());
  g.proc->signal(SIGTERM);
  std::string rest = c.rest(10s);
  CHECK(rest.find("[DONE]") != std::string::npos);
  auto code = g.proc->wait_exit(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(json::parse(s.stats("slow"))["streams_completed"] == 1);
}

TEST_CASE("proxy: HTTPS upstream verified against a CA made at test time") {
  temp_dir d;
  std::string key = d.path() + "/key.pem", cert = d.path() + "/cert.pem";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                    " -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
                    " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  sim s(sim_yaml() + "    tls: { cert: " + cert + ", key: " + key + " }\n");
  SUBCASE("trusted through tls.ca_file") {
    gateway g(gateway_yaml(s, "", "    tls: { ca_file: " + cert + " }\n", "https", "localhost"),
              k_env);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", chat_body("slow/m-slow"));
    CHECK(r.status == 200);
    stream_client c(g.port, chat_body("slow/m-slow", true));
    CHECK(c.status() == 200);
    CHECK(c.rest(10s).find("[DONE]") != std::string::npos);
  }
  SUBCASE("refused without it") {
    gateway g(gateway_yaml(s, "", "", "https", "localhost"), k_env);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", chat_body("slow/m-slow"));
    CHECK(r.status == 502);
    CHECK(error_of(r)["message"].get<std::string>().find("tls") != std::string::npos);
  }
  SUBCASE("refused when the name does not match") {
    temp_dir d2;
    std::string k2 = d2.path() + "/k.pem", c2 = d2.path() + "/c.pem";
    std::string cmd2 = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + k2 + " -out " + c2 +
                       " -days 1 -subj /CN=other.example -addext subjectAltName=DNS:other.example"
                       " >/dev/null 2>&1";
    REQUIRE(std::system(cmd2.c_str()) == 0);
    sim s2(sim_yaml() + "    tls: { cert: " + c2 + ", key: " + k2 + " }\n");
    gateway g(gateway_yaml(s2, "", "    tls: { ca_file: " + c2 + " }\n", "https", "localhost"),
              k_env);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", chat_body("slow/m-slow"));
    CHECK(r.status == 502);
  }
}

TEST_CASE("proxy: a client that never finishes its headers is closed at the header deadline") {
  sim s(sim_yaml());
  gateway g(gateway_yaml(s, "  timeouts: { header: 300ms }\n"), k_env);
  auto t0 = std::chrono::steady_clock::now();
  auto r = http_call(g.port, "GET", "/healthz", "", {}, 100ms);  // sanity: the server answers
  CHECK(r.status == 200);
  // Open a connection and send half a request line, then wait for the server to hang up.
  raw_client probe(g.port);
  REQUIRE(probe.send("GET /heal"));
  CHECK(probe.closed_within(3s));
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(http_call(g.port, "GET", "/healthz").status == 200);
}
