// OpenTelemetry tracing through the real binary: the client's traceparent continues into the
// request's SERVER span and each attempt's CLIENT span, the upstream receives the attempt as its
// parent, and the spans reach an OTLP/HTTP receiver (run here) with the GenAI attributes; a
// collector that is down costs requests nothing.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// A minimal OTLP/HTTP receiver: accepts POST /v1/traces, keeps each JSON body, answers 200.
class otlp_receiver {
 public:
  otlp_receiver() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~otlp_receiver() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  // Every span received so far.
  std::vector<json> spans() {
    std::lock_guard lock(mu_);
    std::vector<json> out;
    for (const auto& body : bodies_)
      for (const auto& rs : body["resourceSpans"])
        for (const auto& ss : rs["scopeSpans"])
          for (const auto& s : ss["spans"]) out.push_back(s);
    return out;
  }
  std::vector<json> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::vector<std::string> targets() {
    std::lock_guard lock(mu_);
    return targets_;
  }
  std::uint16_t port = 0;

 private:
  void run() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string in;
      char buf[8192];
      std::size_t need = std::string::npos;
      while (need == std::string::npos || in.size() < need) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        auto end = in.find("\r\n\r\n");
        if (need == std::string::npos && end != std::string::npos) {
          auto cl = in.find("Content-Length: ");
          need = end + 4 + std::stoul(in.substr(cl + 16));
        }
      }
      if (need != std::string::npos && in.size() >= need) {
        std::lock_guard lock(mu_);
        targets_.push_back(in.substr(0, in.find("\r\n")));
        bodies_.push_back(json::parse(in.substr(in.find("\r\n\r\n") + 4), nullptr, false));
      }
      const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
      ::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<json> bodies_;
  std::vector<std::string> targets_;
};

std::string attr(const json& span, const std::string& key) {
  for (const auto& a : span["attributes"])
    if (a["key"] == key) {
      const json& v = a["value"];
      if (v.contains("stringValue")) return v["stringValue"];
      if (v.contains("intValue")) return v["intValue"];
      if (v.contains("boolValue")) return v["boolValue"].get<bool>() ? "true" : "false";
      return v.dump();
    }
  return "<absent>";
}

const char* k_sim = R"(
providers:
  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 5 }
  bad: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, fault: "status=503" }
)";

std::string yaml(sim& s, const std::string& endpoint) {
  return "server: { listen: 127.0.0.1:0, threads: 1 }\n"
         "providers:\n"
         "  p: { base_url: \"http://127.0.0.1:" +
         std::to_string(s.ports.at("p")) +
         "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n"
         "  bad: { base_url: \"http://127.0.0.1:" +
         std::to_string(s.ports.at("bad")) +
         "/v1\", region: us, models: { m: { input: 1, output: 2 } } }\n"
         "routes:\n"
         "  - { match: auto, policy: ordered, candidates: [bad/m, p/m], retries: 1 }\n"
         "tracing: { endpoint: \"" +
         endpoint + "\", service_name: gw-test, flush_interval: 50ms }\n";
}

}  // namespace

TEST_CASE("tracing: spans per request and attempt, in the client's trace, exported as OTLP") {
  otlp_receiver collector;
  sim s(k_sim);
  gateway g(yaml(s, "http://127.0.0.1:" + std::to_string(collector.port)));
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736", parent = "00f067aa0ba902b7";
  auto r = http_call(g.port, "POST", "/v1/chat/completions",
                     R"({"model":"auto","messages":[{"role":"user","content":"hi"}]})",
                     {{"traceparent", "00-" + trace + "-" + parent + "-01"}});
  REQUIRE(r.status == 200);
  const json usage = json::parse(r.body)["usage"];
  REQUIRE(eventually([&] { return collector.spans().size() >= 3; }));
  const auto spans = collector.spans();
  CHECK(collector.targets().front() == "POST /v1/traces HTTP/1.1");
  CHECK(collector.bodies().front()["resourceSpans"][0]["resource"]["attributes"][0] ==
        json::parse(R"({"key":"service.name","value":{"stringValue":"gw-test"}})"));
  json server, failed, served;
  for (const auto& sp : spans) {
    CHECK(sp["traceId"] == trace);
    if (sp["kind"] == 2) server = sp;
    if (sp["kind"] == 3 && attr(sp, "gen_ai.provider.name") == "bad") failed = sp;
    if (sp["kind"] == 3 && attr(sp, "gen_ai.provider.name") == "p") served = sp;
  }
  REQUIRE(server.is_object());
  REQUIRE(failed.is_object());
  REQUIRE(served.is_object());
  CHECK(server["parentSpanId"] == parent);
  CHECK(server["name"] == "POST /v1/chat/completions");
  CHECK(attr(server, "http.response.status_code") == "200");
  CHECK(attr(server, "gen_ai.request.model") == "auto");
  CHECK(attr(server, "meridian.route") == "auto");
  CHECK(failed["parentSpanId"] == server["spanId"]);
  CHECK(served["parentSpanId"] == server["spanId"]);
  CHECK(failed["status"]["code"] == 2);
  CHECK(attr(failed, "http.response.status_code") == "502");
  CHECK(attr(served, "gen_ai.system") == "openai");
  CHECK(attr(served, "gen_ai.request.model") == "auto");
  CHECK(attr(served, "gen_ai.response.model") == "m");
  CHECK(attr(served, "gen_ai.operation.name") == "chat");
  CHECK(attr(served, "gen_ai.usage.input_tokens") == std::to_string(usage["prompt_tokens"].get<int>()));
  CHECK(attr(served, "gen_ai.usage.output_tokens") ==
        std::to_string(usage["completion_tokens"].get<int>()));
  CHECK(std::stoll(served["startTimeUnixNano"].get<std::string>()) <=
        std::stoll(served["endTimeUnixNano"].get<std::string>()));
  // The provider saw the attempt as its parent, in the same trace.
  const json up = json::parse(s.stats("p"))["last_request"]["headers"];
  CHECK(up["traceparent"] == "00-" + trace + "-" + served["spanId"].get<std::string>() + "-01");

  // Without a valid traceparent a new trace starts; the bad one is not copied upstream.
  auto fresh = http_call(g.port, "POST", "/v1/chat/completions",
                         R"({"model":"p/m","messages":[{"role":"user","content":"hi"}]})",
                         {{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}});
  REQUIRE(fresh.status == 200);
  const std::string sent = json::parse(s.stats("p"))["last_request"]["headers"]["traceparent"];
  CHECK(sent.substr(3, 32) != std::string(32, '0'));
  CHECK(sent.size() == 55);
}

TEST_CASE("tracing: a collector that is down costs requests nothing") {
  // A port nothing listens on: the exporter fails in the background and drops its batches.
  sim s(k_sim);
  gateway g(yaml(s, "http://127.0.0.1:" + std::to_string(closed_port())));
  for (int i = 0; i < 5; ++i)
    CHECK(http_call(g.port, "POST", "/v1/chat/completions",
                    R"({"model":"p/m","messages":[{"role":"user","content":"hi"}]})")
              .status == 200);
  // What could not be exported is counted, not kept.
  CHECK(eventually([&] {
    return http_call(g.port, "GET", "/metrics").body.find("meridian_trace_spans{result=\"dropped\"} 10") !=
           std::string::npos;
  }));
}
