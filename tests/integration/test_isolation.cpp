// Nothing crosses between requests: hostile upstreams on raw sockets send interim responses,
// responses nobody asked for and bytes beyond an answer, and every request through a pooled
// connection still receives its own answer and no byte meant for another.
#include <doctest/doctest.h>

#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// The marker a request carries as its message; the upstreams below answer with it.
std::string marker_of(const std::string& body) {
  const std::string key = R"("content":")";
  auto at = body.find(key);
  if (at == std::string::npos) return "?";
  at += key.size();
  return body.substr(at, body.find('"', at) - at);
}

std::string gateway_yaml(std::uint16_t port) {
  // One thread: every request goes through the same pool, so a dirty connection would be reused.
  return "server:\n  listen: 127.0.0.1:0\n  threads: 1\n"
         "  timeouts: { connect: 1s, first_byte: 2s, idle_chunk: 2s, total: 5s }\n"
         "providers:\n  raw: { base_url: \"http://127.0.0.1:" +
         std::to_string(port) + "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n";
}

std::string request_for(const std::string& marker, bool stream = false) {
  return R"({"model":"raw/m","messages":[{"role":"user","content":")" + marker + "\"}]" +
         (stream ? R"(,"stream":true)" : "") + "}";
}

// Sends `count` requests one after another (pausing `gap` between them) and checks that each
// answer is the request's own.
void each_gets_its_own(const gateway& g, int count, std::chrono::milliseconds gap = 0ms) {
  for (int i = 0; i < count; ++i) {
    const std::string marker = "marker-" + std::to_string(i);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", request_for(marker), {}, 5s);
    INFO("request " << i << ": " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    CHECK(r.body.find("LEAKED") == std::string::npos);
    auto j = json::parse(r.body);
    CHECK(j["choices"][0]["message"]["content"] == marker);
    if (gap.count()) std::this_thread::sleep_for(gap);
  }
}

}  // namespace

TEST_CASE("isolation: interim 1xx responses are skipped and the pool stays clean") {
  raw_upstream up([](const std::string& body, const raw_upstream::writer& write) {
    return write("HTTP/1.1 100 Continue\r\n\r\n") &&
           write("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n") &&
           write(http_200(chat_completion_json(marker_of(body))));
  });
  gateway g(gateway_yaml(up.port));
  each_gets_its_own(g, 6);
  CHECK(up.requests() == 6);
  CHECK(up.connections() == 1);  // the connection was clean each time, so it was reused
}

TEST_CASE("isolation: interim 1xx responses before a stream are skipped") {
  {
    raw_upstream sse([](const std::string& body, const raw_upstream::writer& write) {
      const std::string chunk =
          R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":")" +
          marker_of(body) + R"("},"finish_reason":null}]})";
      return write("HTTP/1.1 100 Continue\r\n\r\n") &&
             write(http_200("data: " + chunk + "\n\ndata: [DONE]\n\n", "text/event-stream"));
    });
    gateway gs(gateway_yaml(sse.port));
    for (int i = 0; i < 3; ++i) {
      const std::string marker = "stream-" + std::to_string(i);
      auto r = http_call(gs.port, "POST", "/v1/chat/completions", request_for(marker, true), {}, 5s);
      REQUIRE(r.status == 200);
      CHECK(r.body.find(marker) != std::string::npos);
      CHECK(r.body.find("data: [DONE]") != std::string::npos);
    }
  }
}

TEST_CASE("isolation: a second response sent with the first never reaches the next request") {
  raw_upstream up([](const std::string& body, const raw_upstream::writer& write) {
    const std::string m = marker_of(body);
    return write(http_200(chat_completion_json(m)) +
                 http_200(chat_completion_json("LEAKED-after-" + m)));
  });
  gateway g(gateway_yaml(up.port));
  each_gets_its_own(g, 5);
  CHECK(up.requests() == 5);
  CHECK(up.connections() == 5);  // each dirty connection was closed, never pooled
}

TEST_CASE("isolation: a body longer than its Content-Length never reaches the next request") {
  raw_upstream up([](const std::string& body, const raw_upstream::writer& write) {
    return write(http_200(chat_completion_json(marker_of(body))) +
                 "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"LEAKED\":true}");
  });
  gateway g(gateway_yaml(up.port));
  each_gets_its_own(g, 5);
  CHECK(up.connections() == 5);
}

TEST_CASE("isolation: bytes that arrive on an idle pooled connection close it") {
  // The extra response comes after the gateway has released the connection to its pool.
  raw_upstream up([](const std::string& body, const raw_upstream::writer& write) {
    const std::string m = marker_of(body);
    if (!write(http_200(chat_completion_json(m)))) return false;
    std::this_thread::sleep_for(100ms);
    return write(http_200(chat_completion_json("LEAKED-late-" + m)));
  });
  gateway g(gateway_yaml(up.port));
  each_gets_its_own(g, 4, 300ms);
  CHECK(up.requests() == 4);
  CHECK(up.connections() == 4);
}

TEST_CASE("isolation: an upstream that says Connection: close is never pooled") {
  raw_upstream up([](const std::string& body, const raw_upstream::writer& write) {
    // It says close but keeps the socket open and would answer again.
    return write(http_200(chat_completion_json(marker_of(body)), "application/json",
                          "Connection: close\r\n"));
  });
  gateway g(gateway_yaml(up.port));
  each_gets_its_own(g, 3);
  CHECK(up.connections() == 3);
}

TEST_CASE("isolation: endless interim responses are a clear 502, not a hang") {
  raw_upstream up([](const std::string&, const raw_upstream::writer& write) {
    for (int i = 0; i < 50; ++i)
      if (!write("HTTP/1.1 100 Continue\r\n\r\n")) return false;
    return true;
  });
  gateway g(gateway_yaml(up.port));
  auto r = http_call(g.port, "POST", "/v1/chat/completions", request_for("x"), {}, 5s);
  CHECK(r.status == 502);
  CHECK(r.body.find("interim") != std::string::npos);
}
