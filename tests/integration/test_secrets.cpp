// Secrets: a full mixed session through the real binary, then every byte the gateway produced
// (HTTP answers, stdout, stderr, ledger files) is searched for upstream keys and client keys.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

const std::string k_sim_key = "sk-sim-UPSTREAM-secret-7f3a9c";
const std::string k_locked_key = "sk-locked-UPSTREAM-secret-1b2c3d";
const std::string k_echo_key = "sk-echo-UPSTREAM-secret-9e8d7c";
const std::string k_client_key = "sk-client-VIRTUAL-secret-4a5b6c";

// An OpenAI-shaped upstream that quotes the Authorization header it received in every answer,
// as real providers do in their 401 messages ("Incorrect API key provided: sk-...").
class echo_upstream {
 public:
  echo_upstream() : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~echo_upstream() {
    stop_ = true;
    try {  // wake the blocking accept
      net::io_context ioc;
      tcp::socket s(ioc);
      s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    } catch (const std::exception&) {
    }
    thread_.join();
  }
  std::uint16_t port = 0;
  std::atomic<int> requests{0};

 private:
  void serve() {
    while (!stop_) {
      tcp::socket s(ioc_);
      beast::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) continue;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) continue;
      ++requests;
      const std::string auth(req[http::field::authorization]);
      const std::string& body = req.body();
      http::response<http::string_body> res;
      res.version(11);
      res.set("x-upstream-echo", auth);
      if (body.find("\"stream\":true") != std::string::npos) {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/event-stream");
        res.body() = "data: {\"error\":{\"message\":\"Incorrect API key provided: " + auth +
                     "\",\"type\":\"invalid_request_error\"}}\n\n";
      } else {
        std::string message = "Incorrect API key provided: ";
        // echo_long puts the key across the 512-byte cut the gateway applies to messages.
        if (body.find("echo_long") != std::string::npos) message += std::string(457, 'p');
        message += auth;
        const bool fail_500 = body.find("echo_500") != std::string::npos ||
                              body.find("echo_long") != std::string::npos;
        res.result(fail_500 ? http::status::internal_server_error : http::status::unauthorized);
        res.set(http::field::content_type, "application/json");
        json j = {{"error",
                   {{"message", message},
                    {"type", "invalid_request_error"},
                    {"param", nullptr},
                    {"code", "invalid_api_key"}}}};
        res.body() = j.dump();
      }
      res.keep_alive(false);  // one connection at a time: this server is sequential
      res.prepare_payload();
      http::write(s, res, ec);
      s.shutdown(tcp::socket::shutdown_both, ec);
    }
  }
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

std::string chat_body(const std::string& model, bool stream = false,
                      const std::string& extra = "") {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"keep my secrets"}])" +
         (stream ? R"(,"stream":true)" : "") + extra + "}";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("secrets: no key appears in any output of a full mixed session") {
  sim s(
      "providers:\n"
      "  fast: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 6, "
      "api_key: " +
      k_sim_key +
      " }\n"
      "  locked: { port: 0, models: [m], ttft: 0ms, api_key: sk-sim-expects-another }\n");
  echo_upstream echo;
  auto provider = [](const std::string& name, std::uint16_t port, const std::string& env) {
    return "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(port) +
           "/v1\", region: cn, api_key_env: " + env +
           ", models: { m: { input: 1, output: 2 } } }\n";
  };
  const std::string yaml =
      "server:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  threads: 1\n"
      "  timeouts: { first_byte: 2s, idle_chunk: 2s }\n"
      "providers:\n" +
      provider("fast", s.ports.at("fast"), "FAST_KEY") +
      provider("locked", s.ports.at("locked"), "LOCKED_KEY") +
      provider("echo", echo.port, "ECHO_KEY") +
      "routes:\n"
      "  - { match: mixed, policy: ordered, candidates: [echo/m, locked/m, fast/m], retries: 3 }\n"
      "  - { match: tail, policy: ordered, candidates: [echo/m, fast/m], retries: 3 }\n";
  gateway g(yaml, {{"FAST_KEY", k_sim_key}, {"LOCKED_KEY", k_locked_key}, {"ECHO_KEY", k_echo_key}},
            {"--log-level", "debug"}, true);
  REQUIRE(g.admin_port != 0);

  // Every client request carries the client's own bearer key in both usual headers.
  const std::map<std::string, std::string> client = {{"authorization", "Bearer " + k_client_key},
                                                     {"x-api-key", k_client_key}};
  std::string seen;  // everything the gateway sent back over HTTP
  auto call = [&](std::uint16_t port, const std::string& method, const std::string& target,
                  const std::string& body = {}) {
    auto r = http_call(port, method, target, body, client);
    seen += std::to_string(r.status) + "\n";
    for (const auto& [k, v] : r.headers) seen += k + ": " + v + "\n";
    seen += r.body + "\n" + r.error + "\n";
    return r;
  };
  auto stream = [&](const std::string& target, const std::string& body) {
    raw_client c(g.port);
    c.send("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
           "Authorization: Bearer " + k_client_key + "\r\nx-api-key: " + k_client_key +
           "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           body);
    c.closed_within(10s);
    seen += c.received() + "\n";
    return c.received();
  };

  auto ok = call(g.port, "POST", "/v1/chat/completions", chat_body("fast/m"));
  CHECK(ok.status == 200);
  CHECK(stream("/v1/chat/completions", chat_body("fast/m", true)).find("[DONE]") !=
        std::string::npos);
  // The upstream answers 401 and quotes the key it was sent.
  auto echoed = call(g.port, "POST", "/v1/chat/completions", chat_body("echo/m"));
  CHECK(echoed.status == 502);
  auto echoed_500 = call(g.port, "POST", "/v1/chat/completions",
                         chat_body("echo/m", false, ",\"x\":\"echo_500\""));
  CHECK(echoed_500.status == 502);
  CHECK(echoed_500.body.find("[redacted]") != std::string::npos);
  call(g.port, "POST", "/v1/chat/completions", chat_body("echo/m", false, ",\"x\":\"echo_long\""));
  stream("/v1/chat/completions", chat_body("echo/m", true));
  // The sim refuses a wrong key (no echo), and routes fall back past the failures.
  CHECK(call(g.port, "POST", "/v1/chat/completions", chat_body("locked/m")).status == 502);
  auto fell_back =
      call(g.port, "POST", "/v1/chat/completions", chat_body("tail", false, ",\"x\":\"echo_500\""));
  CHECK(fell_back.status == 200);
  CHECK(fell_back.headers["x-meridian-provider"] == "fast");
  call(g.port, "POST", "/v1/chat/completions", chat_body("mixed"));
  call(g.port, "POST", "/v1/chat/completions", chat_body("mixed", false, ",\"x\":\"echo_500\""));
  stream("/v1/chat/completions", chat_body("tail", true, ",\"x\":\"echo_500\""));
  // The other endpoints, public and admin.
  call(g.port, "POST", "/v1/messages",
       R"({"model":"fast/m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  call(g.port, "POST", "/v1/messages",
       R"({"model":"echo/m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  call(g.port, "POST", "/v1/messages/count_tokens",
       R"({"model":"fast/m","messages":[{"role":"user","content":"hi"}]})");
  call(g.port, "POST", "/v1/embeddings", R"({"model":"fast/m","input":"hi"})");
  call(g.port, "POST", "/v1/embeddings", R"({"model":"echo/m","input":"hi"})");
  call(g.port, "GET", "/v1/models");
  call(g.port, "GET", "/v1/stats/share");
  call(g.port, "GET", "/v1/stats/daily");
  auto ok_json = json::parse(ok.body, nullptr, false);
  if (ok_json.is_object() && ok_json.contains("id"))
    call(g.port, "GET", "/v1/generation?id=" + ok_json["id"].get<std::string>());
  call(g.port, "GET", "/dashboard");
  call(g.port, "GET", "/healthz");
  call(g.port, "GET", "/readyz");
  auto metrics = call(g.port, "GET", "/metrics");
  CHECK(metrics.body.find("meridian_upstream_errors_total") != std::string::npos);
  auto config = call(g.admin_port, "GET", "/admin/config");
  CHECK(config.status == 200);
  call(g.admin_port, "GET", "/metrics");
  call(g.admin_port, "POST", "/admin/reload");

  // The keys really were in play: the sim accepted one, the echo server was sent another.
  CHECK(json::parse(s.stats("fast"))["last_request"]["headers"]["authorization"] ==
        "Bearer " + k_sim_key);
  CHECK(echo.requests > 0);

  // A clean stop flushes the ledger, then every output is complete.
  g.proc->signal(SIGTERM);
  REQUIRE(g.proc->wait_exit(10s));
  std::string stdout_text;
  for (const auto& l : g.proc->lines()) stdout_text += l + "\n";
  const std::string stderr_text = g.stderr_text();
  std::string ledger;
  for (const auto& e : std::filesystem::directory_iterator(g.dir.path()))
    if (e.path().filename().string().rfind("meridian-ledger", 0) == 0)
      ledger += read_file(e.path());
  CHECK(stdout_text.find("\"type\":\"access\"") != std::string::npos);
  CHECK(!stderr_text.empty());
  CHECK(!ledger.empty());

  const std::map<std::string, const std::string*> outputs = {
      {"http", &seen}, {"stdout", &stdout_text}, {"stderr", &stderr_text}, {"ledger", &ledger}};
  for (const auto& key : {k_sim_key, k_locked_key, k_echo_key, k_client_key}) {
    // Halves too: a message cut in the middle of a key must not leak its first part.
    const std::string first = key.substr(0, key.size() / 2);
    const std::string second = key.substr(key.size() / 2);
    for (const auto& [name, text] : outputs) {
      INFO(name << " must not contain " << key);
      CHECK(text->find(key) == std::string::npos);
      CHECK(text->find(first) == std::string::npos);
      CHECK(text->find(second) == std::string::npos);
    }
  }
}

TEST_CASE("secrets: a serving gateway never writes a core dump that could hold its keys") {
  sim s(R"(
providers:
  p: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 2 }
)");
  gateway g(
      "server: { listen: 127.0.0.1:0, threads: 1 }\nstats: { ledger: none }\nproviders:\n"
      "  p: { base_url: \"http://127.0.0.1:" +
      std::to_string(s.ports.at("p")) + "/v1\", models: { m: {} } }\n");
  std::ifstream limits("/proc/" + std::to_string(g.proc->pid()) + "/limits");
  std::string line, core;
  while (std::getline(limits, line))
    if (line.rfind("Max core file size", 0) == 0) core = line;
  INFO(core);
  REQUIRE_FALSE(core.empty());
  std::istringstream fields(core.substr(std::string("Max core file size").size()));
  std::string soft, hard;
  fields >> soft >> hard;
  CHECK(soft == "0");
  CHECK(hard == "0");
}
