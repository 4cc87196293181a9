// The fault matrix of docs/reliability.md through the real binaries: every upstream fault ends in
// a retry, a fallback or a clear error within its deadline, and leaves no request in flight, no
// connection open at the sim and no attempt missing from the ledger.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

// The gateway's deadlines in every case below; bounds allow for slow CI machines.
constexpr auto k_phase = 500ms;  // connect, first_byte and idle_chunk
constexpr auto k_slack = 1500ms;
constexpr auto k_stall = 4000ms;  // a sim stall: far beyond every deadline, short enough to end

const char* k_good =
    "  good: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, "
    "reply_tokens: 5 }\n";

// `bad` as a simulated provider with a default fault.
std::string bad_sim(const std::string& fault, const std::string& extra = "") {
  return "  bad: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5, "
         "fault: \"" +
         fault + "\"" + extra + " }\n";
}

// A self-signed certificate made at test time; `name` is its only subject name.
void make_cert(const std::string& dir, const std::string& name) {
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir + "/key.pem -out " +
                    dir + "/cert.pem -days 1 -subj /CN=" + name +
                    " -addext subjectAltName=DNS:" + name + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

struct timed_result {
  http_result r;
  clock_type::duration took;
};

struct stream_result {
  unsigned status = 0;
  std::string provider;
  std::string body;
  clock_type::duration took;
};

json error_of(const http_result& r) {
  auto j = json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  return j["error"];
}

// A sim (provider `good`, and `bad` when simulated) and a gateway with two routes: `solo` tries
// only bad/m, `fallback` tries bad/m and then good/m. The ledger flushes every 100 ms.
class rig {
 public:
  // `bad_url` replaces the simulated bad provider's base URL ("{port}" becomes its port);
  // `bad_extra` adds provider keys.
  explicit rig(const std::string& bad_sim_yaml, const std::string& bad_url = "",
               const std::string& bad_extra = "", const std::string& stats_yaml = "")
      : s(std::string("providers:\n") + k_good + bad_sim_yaml) {
    std::string bad = !bad_url.empty() ? bad_url : "http://127.0.0.1:{port}/v1";
    if (auto at = bad.find("{port}"); at != std::string::npos)
      bad.replace(at, 6, std::to_string(s.ports.at("bad")));
    std::string yaml =
        "server:\n  listen: 127.0.0.1:0\n  threads: 1\n"
        "  timeouts: { connect: 500ms, first_byte: 500ms, idle_chunk: 500ms, total: 10s }\n"
        "providers:\n"
        "  good: { base_url: \"http://127.0.0.1:" +
        std::to_string(s.ports.at("good")) +
        "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n"
        "  bad:\n    base_url: \"" +
        bad + "\"\n    region: cn\n    models: { m: { input: 1, output: 2 } }\n" + bad_extra +
        "routes:\n"
        "  - { match: solo, policy: ordered, candidates: [bad/m] }\n"
        "  - { match: fallback, policy: ordered, candidates: [bad/m, good/m], retries: 1 }\n"
        // The breaker would turn later faults into circuit_open answers; each row wants its own.
        "health: { failure_threshold: 1000 }\n" +
        (stats_yaml.empty() ? "stats: { ledger: \"sqlite:l.db\", flush_interval: 100ms }\n"
                            : stats_yaml);
    g = std::make_unique<gateway>(yaml);
  }

  timed_result call(const std::string& model) {
    auto t0 = clock_type::now();
    auto r = http_call(g->port, "POST", "/v1/chat/completions", body(model, false), {}, 15s);
    return {std::move(r), clock_type::now() - t0};
  }

  stream_result stream(const std::string& model) {
    auto t0 = clock_type::now();
    stream_client c(g->port, body(model, true));
    stream_result out;
    out.status = c.status();
    if (auto it = c.headers().find("x-meridian-provider"); it != c.headers().end())
      out.provider = it->second;
    out.body = c.rest(15s);
    out.took = clock_type::now() - t0;
    return out;
  }

  // A gauge or counter without labels, from /metrics; -1 when absent.
  double metric(const std::string& name) {
    auto text = http_call(g->port, "GET", "/metrics").body;
    auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + name.size() + 2));
  }

  long ledger_requests() {
    auto j = json::parse(http_call(g->port, "GET", "/v1/stats/share?window=1h&by=provider").body,
                         nullptr, false);
    if (!j.is_object() || !j.contains("total")) return -1;
    return j["total"].value("requests", -1L);
  }

  // After the row's requests: nothing in flight but the scrape asking, at most `max_idle`
  // pooled connections, no stream left open at the sim, and every attempt in the ledger.
  void expect_clean(long attempts, int max_idle) {
    // The scrape is itself a request in flight, so an idle gateway reports 1.
    CHECK(eventually([&] { return metric("meridian_inflight_requests") == 1; }));
    const double idle = metric("meridian_upstream_idle_connections");
    CHECK(idle >= 0);
    CHECK(idle <= max_idle);
    for (const auto& [name, port] : s.ports) {
      if (name == "bad" && tls_bad) continue;  // the harness speaks plain HTTP only
      INFO("sim provider " << name);
      CHECK(eventually([&] { return json::parse(s.stats(name))["active_streams"] == 0; }));
    }
    long seen = -1;
    CHECK(eventually(
        [&] {
          seen = ledger_requests();
          return seen == attempts;
        },
        5s));
    CHECK(seen == attempts);
  }

  static std::string body(const std::string& model, bool stream) {
    return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}])" +
           (stream ? R"(,"stream":true)" : "") + "}";
  }

  sim s;
  std::unique_ptr<gateway> g;
  bool tls_bad = false;
};

// A fault the gateway sees before any byte reached the client: alone it is a clear error, with
// a fallback the next candidate answers, streamed or not (`streamed` false for faults that only
// whole answers have). Each fallback costs an attempt on bad and one on good.
void expect_error_then_fallback(rig& x, unsigned status, const std::string& code,
                                clock_type::duration bound, bool streamed = true) {
  auto solo = x.call("solo");
  CHECK(solo.r.status == status);
  CHECK(error_of(solo.r)["code"] == code);
  CHECK(solo.took < bound);
  auto fb = x.call("fallback");
  CHECK(fb.r.status == 200);
  CHECK(fb.r.headers["x-meridian-provider"] == "good");
  CHECK(fb.took < bound);
  if (streamed) {
    auto st = x.stream("fallback");
    CHECK(st.status == 200);
    CHECK(st.provider == "good");
    CHECK(st.body.find("[DONE]") != std::string::npos);
    CHECK(st.took < bound);
  }
  x.expect_clean(streamed ? 5 : 3, 2);
  // Each attempt reached a simulated bad provider exactly once: a failed exchange is not
  // silently repeated on the same provider.
  if (x.s.ports.count("bad") && !x.tls_bad)
    CHECK(json::parse(x.s.stats("bad"))["requests"] == (streamed ? 3 : 2));
}

// A fault after the stream's first byte: the client gets a 200, some events and then an error
// event with `code`, never [DONE], and the fallback is not tried. One attempt each time. Returns
// what the client received the last time.
std::string expect_stream_error(rig& x, const std::string& code, clock_type::duration bound) {
  std::string last;
  for (std::string route : {"solo", "fallback"}) {
    INFO(route);
    auto st = x.stream(route);
    CHECK(st.status == 200);
    CHECK(st.provider == "bad");
    CHECK(st.body.find("\"error\"") != std::string::npos);
    CHECK(st.body.find("\"code\":\"" + code + "\"") != std::string::npos);
    CHECK(st.body.find("[DONE]") == std::string::npos);
    CHECK(st.took < bound);
    last = st.body;
  }
  CHECK(json::parse(x.s.stats("good"))["requests"] == 0);
  x.expect_clean(2, 2);
  return last;
}

}  // namespace

TEST_CASE("fault: upstream connection refused") {
  rig x("", "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1");
  expect_error_then_fallback(x, 502, "upstream_unreachable", k_phase + k_slack);
  CHECK(error_of(x.call("solo").r)["message"].get<std::string>().find("connect") !=
        std::string::npos);
  x.expect_clean(6, 1);
}

TEST_CASE("fault: DNS failure") {
  // .invalid never resolves (RFC 6761), so nothing leaves this machine for it.
  rig x("", "http://nonexistent.invalid/v1");
  auto solo = x.call("solo");
  // A resolver that answers at once says "dns"; one that never answers hits the connect deadline.
  CHECK((solo.r.status == 502 || solo.r.status == 504));
  CHECK(error_of(solo.r)["message"].get<std::string>().find("resolv") != std::string::npos);
  CHECK(solo.took < k_phase + k_slack);
  auto fb = x.call("fallback");
  CHECK(fb.r.status == 200);
  CHECK(fb.r.headers["x-meridian-provider"] == "good");
  CHECK(fb.took < k_phase + k_slack);
  x.expect_clean(3, 1);
}

TEST_CASE("fault: TLS certificate mismatch") {
  temp_dir d;
  make_cert(d.path(), "other.example");
  // The sim serves a certificate for other.example; the gateway trusts it but dials localhost.
  rig x(bad_sim("", ", tls: { cert: " + d.path() + "/cert.pem, key: " + d.path() + "/key.pem }"),
        "https://localhost:{port}/v1", "    tls: { ca_file: " + d.path() + "/cert.pem }\n");
  x.tls_bad = true;
  expect_error_then_fallback(x, 502, "upstream_unreachable", k_phase + k_slack);
  CHECK(error_of(x.call("solo").r)["message"].get<std::string>().find("tls") != std::string::npos);
  x.expect_clean(6, 1);
}

TEST_CASE("fault: reset before the response header") {
  rig x(bad_sim("reset"));
  expect_error_then_fallback(x, 502, "upstream_unreachable", k_phase + k_slack);
}

TEST_CASE("fault: reset in the middle of a whole answer") {
  rig x(bad_sim("cut_body=20"));
  expect_error_then_fallback(x, 502, "upstream_unreachable", k_phase + k_slack, false);
  CHECK(error_of(x.call("solo").r)["message"].get<std::string>().find("mid-answer") !=
        std::string::npos);
  x.expect_clean(4, 1);
}

TEST_CASE("fault: reset in the middle of a stream") {
  rig x(bad_sim("cut_after=2"));
  expect_stream_error(x, "upstream_error", k_phase + k_slack);
}

TEST_CASE("fault: stall before the first byte") {
  rig x(bad_sim("delay=" + std::to_string(k_stall.count())));
  // Bounded by first_byte, not by the sim's stall.
  expect_error_then_fallback(x, 504, "upstream_timeout", k_phase + k_slack);
  // One first_byte deadline, not two: expect_clean's request count shows the stalled provider
  // got each request once (a wall-clock bound at 2 x first_byte would be flaky on busy CI).
  auto solo = x.call("solo");
  CHECK(solo.r.status == 504);
  CHECK(solo.took >= k_phase);
  CHECK(solo.took < k_phase + k_slack);
  x.expect_clean(6, 2);
}

TEST_CASE("fault: stall between stream chunks") {
  rig x(bad_sim("stall_after=2;stall=" + std::to_string(k_stall.count())));
  // Bounded by idle_chunk, not by the sim's stall.
  expect_stream_error(x, "upstream_timeout", k_phase + k_slack);
}

TEST_CASE("fault: 429 with Retry-After") {
  rig x(bad_sim("status=429;retry_after=7"));
  auto solo = x.call("solo");
  CHECK(solo.r.status == 429);
  CHECK(solo.r.headers["retry-after"] == "7");
  CHECK(error_of(solo.r)["code"] == "rate_limit_exceeded");
  // Another provider does not wait for bad's Retry-After.
  auto fb = x.call("fallback");
  CHECK(fb.r.status == 200);
  CHECK(fb.r.headers["x-meridian-provider"] == "good");
  CHECK(fb.r.headers.count("retry-after") == 0);
  CHECK(fb.took < k_slack);
  x.expect_clean(3, 2);
}

TEST_CASE("fault: 429 without Retry-After") {
  rig x(bad_sim("status=429"));
  expect_error_then_fallback(x, 429, "rate_limit_exceeded", k_slack);
  CHECK(x.call("solo").r.headers.count("retry-after") == 0);
  x.expect_clean(6, 2);
}

TEST_CASE("fault: 500, 502 and 503 from the provider") {
  for (int status : {500, 502, 503}) {
    INFO(status);
    rig x(bad_sim("status=" + std::to_string(status)));
    expect_error_then_fallback(x, 502, "upstream_error", k_slack);
    CHECK(error_of(x.call("solo").r)["message"].get<std::string>().find(
              "HTTP " + std::to_string(status)) != std::string::npos);
  }
}

TEST_CASE("fault: malformed JSON answer") {
  rig x(bad_sim("malformed"));
  expect_error_then_fallback(x, 502, "upstream_malformed", k_slack);
}

TEST_CASE("fault: truncated SSE stream") {
  rig x(bad_sim("truncate_sse"));
  expect_stream_error(x, "upstream_error", k_slack);
}

TEST_CASE("fault: SSE error event after a 200") {
  rig x(bad_sim("sse_error"));
  // The provider's own message reaches the client.
  CHECK(expect_stream_error(x, "upstream_error", k_slack).find("simulated stream error") !=
        std::string::npos);
}

TEST_CASE("fault: wrong content-type") {
  SUBCASE("a whole answer labelled text/plain is still decoded") {
    rig x(bad_sim("content_type=text/plain"));
    auto r = x.call("solo");
    CHECK(r.r.status == 200);
    CHECK(r.r.headers["content-type"] == "application/json");
    CHECK(json::parse(r.r.body)["usage"]["completion_tokens"] == 5);
    x.expect_clean(1, 1);
  }
  SUBCASE("an HTML page instead of JSON is malformed") {
    rig x(bad_sim("content_type=text/html;malformed"));
    expect_error_then_fallback(x, 502, "upstream_malformed", k_slack);
  }
  SUBCASE("a stream request answered as application/json") {
    rig x(bad_sim("content_type=application/json"));
    auto st = x.stream("solo");
    CHECK(st.status == 502);
    CHECK(st.body.find("upstream_malformed") != std::string::npos);
    auto fb = x.stream("fallback");
    CHECK(fb.status == 200);
    CHECK(fb.provider == "good");
    CHECK(fb.body.find("[DONE]") != std::string::npos);
    x.expect_clean(3, 2);
  }
}

TEST_CASE("fault: oversized upstream answer") {
  // 33 MiB of valid JSON, past the gateway's 32 MiB limit for a whole answer.
  rig x(bad_sim("oversize=" + std::to_string(33u << 20)));
  expect_error_then_fallback(x, 502, "upstream_too_large", 5s, false);
}

TEST_CASE("fault: an unwritable ledger does not stop routing") {
  // A path under a regular file cannot be created, even by root.
  temp_dir d;
  d.write("file.txt", "not a directory");
  rig x("", "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1", "",
        "stats: { ledger: \"sqlite:" + d.path() +
            "/file.txt/l.db\", flush_interval: 100ms, max_queue: 4 }\n");
  for (int i = 0; i < 10; ++i) {
    auto r = x.call("good/m");
    CHECK(r.r.status == 200);
  }
  CHECK(eventually([&] { return x.metric("meridian_ledger_write_errors_total") > 0; }));
  // Four events wait for the next write; the other six were dropped and counted.
  CHECK(eventually([&] { return x.metric("meridian_ledger_dropped_events_total") == 6; }));
  CHECK(x.call("good/m").r.status == 200);
  auto stats = http_call(x.g->port, "GET", "/v1/stats/share?window=1h&by=provider");
  CHECK(stats.status >= 500);
  CHECK(eventually([&] { return x.metric("meridian_inflight_requests") == 1; }));
}

TEST_CASE("fault: upstream 5xx answers and the circuit's opening and closing are logged") {
  // 503 for the first 2 of every 4 requests: two failures open the circuit (threshold 2); after
  // the cooldown a probe is answered and closes it.
  sim s(std::string("providers:\n") + k_good + bad_sim("status=503;fails=2/4"));
  gateway g("server: { listen: 127.0.0.1:0, threads: 1 }\n"
            "providers:\n"
            "  good: { base_url: \"http://127.0.0.1:" +
                std::to_string(s.ports.at("good")) +
                "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n"
                "  bad: { base_url: \"http://127.0.0.1:" +
                std::to_string(s.ports.at("bad")) +
                "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n"
                "routes:\n"
                "  - { match: fallback, policy: ordered, candidates: [bad/m, good/m], retries: 1 }\n"
                "health: { failure_threshold: 2, cooldown: 300ms }\n",
            {}, {}, true);
  for (int i = 0; i < 2; ++i)
    CHECK(http_call(g.port, "POST", "/v1/chat/completions", rig::body("fallback", false)).status == 200);
  std::this_thread::sleep_for(400ms);  // past the cooldown: the next request is the probe
  CHECK(http_call(g.port, "POST", "/v1/chat/completions", rig::body("fallback", false)).status == 200);
  REQUIRE(eventually([&] { return g.stderr_text().find("circuit closed") != std::string::npos; }));
  const std::string log = g.stderr_text();
  INFO(log);
  std::size_t server_errors = 0;
  for (auto at = log.find("upstream answered a server error"); at != std::string::npos;
       at = log.find("upstream answered a server error", at + 1))
    ++server_errors;
  CHECK(server_errors == 2);
  CHECK(log.find("\"provider\":\"bad\",\"model\":\"m\",\"status\":503") != std::string::npos);
  const auto opened = log.find("circuit opened");
  REQUIRE(opened != std::string::npos);
  CHECK(log.find("\"after\":\"http_503\"", opened) != std::string::npos);
  CHECK(log.find("circuit closed") > opened);
}
