// No ceiling may be missing on a request's time, output or memory: an endless stream ends at
// timeouts.total, an upstream that ignores max_tokens is cut near the allowance and billed for
// what was relayed, and whole answers held at once stay under server.limits.max_buffered_bytes.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

// An upstream that streams `words` in every event, as fast as it can, for as long as anyone
// reads (bounded, so a broken gateway cannot keep the test alive for ever). It never sends usage.
raw_upstream::script endless_stream(const std::string& words) {
  return [words](const std::string&, const raw_upstream::writer& write) {
    if (!write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"))
      return false;
    const std::string event =
        R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":")" +
        words + "\"},\"finish_reason\":null}]}\n\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", event.size());
    const std::string chunk = size + event + "\r\n";
    const auto until = clock_type::now() + 30s;
    for (int i = 0; i < 5'000'000 && clock_type::now() < until; ++i)
      if (!write(chunk)) return false;
    return false;
  };
}

std::string raw_gateway(std::uint16_t port, const std::string& timeouts,
                        const std::string& extra = "") {
  return "server:\n  listen: 127.0.0.1:0\n  threads: 1\n  timeouts: " + timeouts + "\n" + extra +
         "providers:\n  raw: { base_url: \"http://127.0.0.1:" + std::to_string(port) +
         "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n";
}

struct stream_end {
  int content_events = 0;
  std::string last;  // the last event's data
  bool done = false;
};

stream_end read_to_end(stream_client& c, std::chrono::milliseconds limit) {
  stream_end out;
  const auto until = clock_type::now() + limit;
  while (clock_type::now() < until) {
    auto ev = c.next_event(5s);
    if (!ev) break;
    if (*ev == "[DONE]") out.done = true;
    if (ev->find("\"content\"") != std::string::npos) ++out.content_events;
    out.last = *ev;
  }
  return out;
}

}  // namespace

TEST_CASE("ceilings: a fast endless stream ends at timeouts.total with an error event") {
  raw_upstream up(endless_stream("lorem ipsum "));
  gateway g(raw_gateway(up.port, "{ first_byte: 2s, idle_chunk: 2s, total: 1s }"));
  const auto start = clock_type::now();
  stream_client c(g.port,
                  R"({"model":"raw/m","stream":true,"messages":[{"role":"user","content":"go"}]})");
  REQUIRE(c.status() == 200);
  auto end = read_to_end(c, 20s);
  const auto took = clock_type::now() - start;
  CHECK(took < 6s);  // the 1 s deadline plus slack for a loaded machine; never the 30 s stream
  CHECK_FALSE(end.done);
  CHECK(end.content_events > 0);
  auto err = json::parse(end.last);
  CHECK(err["error"]["code"] == "total_deadline_exceeded");
  CHECK(err["error"]["message"].get<std::string>().find("timeouts.total") != std::string::npos);
  // The gateway is still healthy and serving afterwards.
  CHECK(http_call(g.port, "GET", "/healthz").status == 200);
}

TEST_CASE("ceilings: an upstream that ignores max_tokens is cut and billed for what was relayed") {
  raw_upstream up(endless_stream("lorem ipsum dolor "));  // 18 characters: 4.5 tokens an event
  gateway g(raw_gateway(up.port, "{ first_byte: 2s, idle_chunk: 2s, total: 20s }"));
  stream_client c(
      g.port,
      R"({"model":"raw/m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"go"}]})");
  REQUIRE(c.status() == 200);
  const std::string id = c.headers().at("x-request-id");
  auto end = read_to_end(c, 15s);
  CHECK_FALSE(end.done);
  auto err = json::parse(end.last);
  CHECK(err["error"]["code"] == "output_limit_exceeded");
  // The ceiling is 2 x 20 + 256 = 296 estimated tokens: about 66 events, never thousands.
  CHECK(end.content_events >= 60);
  CHECK(end.content_events <= 70);
  auto gen = http_call(g.port, "GET", "/v1/generation?id=" + id);
  REQUIRE(gen.status == 200);
  auto record = json::parse(gen.body);
  INFO(gen.body);
  const auto output = record["tokens"]["output"].get<std::uint64_t>();
  CHECK(output > 296);
  CHECK(output <= 296 + 5);  // the event that crossed the ceiling is the last one billed
  CHECK(record["estimated"] == true);
}

TEST_CASE("ceilings: a whole answer trickling past timeouts.total is a 504") {
  raw_upstream up([](const std::string&, const raw_upstream::writer& write) {
    if (!write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"))
      return false;
    for (int i = 0; i < 300; ++i) {  // a byte every 100 ms: never idle long enough to time out
      if (!write(" ")) return false;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  });
  gateway g(raw_gateway(up.port, "{ first_byte: 2s, idle_chunk: 2s, total: 1s }"));
  const auto start = clock_type::now();
  auto r = http_call(g.port, "POST", "/v1/chat/completions",
                     R"({"model":"raw/m","messages":[{"role":"user","content":"go"}]})", {}, 15s);
  CHECK(r.status == 504);
  CHECK(clock_type::now() - start < 6s);
}

TEST_CASE("ceilings: whole answers held at once stay under server.limits.max_buffered_bytes") {
  sim s(R"(
providers:
  big:   { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 400000 }
  small: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5 }
)");
  std::string yaml = "server:\n  listen: 127.0.0.1:0\n  threads: 1\n"
                     "  limits: { max_buffered_bytes: 1MiB }\nproviders:\n";
  for (const auto& [name, port] : s.ports)
    yaml += "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(port) +
            "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n";
  gateway g(yaml);
  // Each big answer alone passes the cap: refused, and what it held is given back, so the small
  // answers after it are served every time.
  for (int i = 0; i < 3; ++i) {
    auto big = http_call(g.port, "POST", "/v1/chat/completions",
                         R"({"model":"big/m","messages":[{"role":"user","content":"go"}]})");
    CHECK(big.status == 503);
    CHECK(json::parse(big.body)["error"]["code"] == "gateway_overloaded");
    auto small = http_call(g.port, "POST", "/v1/chat/completions",
                           R"({"model":"small/m","messages":[{"role":"user","content":"go"}]})");
    CHECK(small.status == 200);
  }
}
