// Hostile clients against the real binary: each gets a clear 4xx or a closed connection, and a
// normal request on a fresh connection is still answered promptly afterwards.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// `fast` answers at once; `bulk` streams a reply of many megabytes as fast as it can, enough to
// fill every socket buffer between the sim and a client that never reads.
const char* k_sim = R"(
providers:
  fast: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 8 }
  bulk: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 300000 }
)";

std::string gateway_yaml(sim& s, const std::string& server_extra = "", int threads = 2) {
  std::string out = "server:\n  listen: 127.0.0.1:0\n  threads: " + std::to_string(threads) + "\n" +
                    server_extra + "providers:\n";
  for (const auto& [name, port] : s.ports)
    out += "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(port) +
           "/v1\", region: cn, models: { m: { input: 1, output: 2 } } }\n";
  return out;
}

const std::string k_limits =
    "  limits: { max_body_bytes: 1MiB, max_header_bytes: 4KiB }\n"
    "  timeouts: { header: 1s, idle_chunk: 1s }\n";

std::string chat_body(const std::string& model = "fast/m", const std::string& extra = "") {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}])" + extra + "}";
}

// The error object of a JSON error body; the body must be valid JSON (and so valid UTF-8).
json error_of(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  return j["error"];
}

// A normal request on a fresh connection still gets its 200 (within the client's 5 s socket
// deadline: a bound generous enough for loaded CI machines, short of any hang).
void still_serves(const gateway& g) {
  auto r = http_call(g.port, "POST", "/v1/chat/completions", chat_body(), {}, 5s);
  CHECK(r.status == 200);
}

std::string post_raw(const std::string& headers, const std::string& body) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         headers + "\r\n" + body;
}

std::size_t count_of(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("hostile: malformed JSON bodies get a 400") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  const std::vector<std::string> bodies = {
      "{",
      "not json at all",
      R"({"model":"fast/m","messages":[})",
      R"({"model":"fast/m","messages":[{"role":"user","content":"hi"}]} trailing)",
      R"({"model":"fast/m","messages":[{"role":"user","content":"hi"}],})",
      std::string("{\"model\":\"fast/m\",\0\"messages\":[]}", 31),
      "[]",
      "\"just a string\"",
  };
  for (const auto& b : bodies) {
    INFO(b);
    auto r = http_call(g.port, "POST", "/v1/chat/completions", b);
    CHECK(r.status == 400);
    CHECK(error_of(r.body)["type"] == "invalid_request_error");
  }
  // An empty body is refused the same way.
  auto empty = http_call(g.port, "POST", "/v1/chat/completions", "", {{"content-length", "0"}});
  CHECK(empty.status == 400);
  still_serves(g);
}

TEST_CASE("hostile: deeply nested JSON is refused before any DOM is built") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  const std::size_t deep = 100000;
  const std::string arrays = std::string(deep, '[') + std::string(deep, ']');
  std::string objects;
  for (std::size_t i = 0; i < deep; ++i) objects += "{\"a\":";
  objects += "1" + std::string(deep, '}');
  struct attack {
    std::string target, body;
  };
  const std::vector<attack> attacks = {
      {"/v1/chat/completions", std::string(deep, '[')},
      {"/v1/chat/completions", arrays},
      {"/v1/chat/completions", chat_body("fast/m", ",\"x\":" + arrays)},
      {"/v1/chat/completions", chat_body("fast/m", ",\"x\":" + objects)},
      {"/v1/messages", R"({"model":"fast/m","max_tokens":5,"messages":[{"role":"user","content":)" +
                           arrays + "}]}"},
      {"/v1/messages/count_tokens", R"({"model":"fast/m","messages":)" + arrays + "}"},
      {"/v1/embeddings", R"({"model":"fast/m","input":)" + arrays + "}"},
  };
  for (const auto& a : attacks) {
    INFO(a.target << " " << a.body.substr(0, 60));
    auto r = http_call(g.port, "POST", a.target, a.body);
    CHECK(r.status == 400);
    CHECK(r.body.find("nesting too deep") != std::string::npos);
  }
  // Brackets inside strings are text, and moderate nesting is served.
  auto in_string = http_call(g.port, "POST", "/v1/chat/completions",
                             chat_body("fast/m", ",\"x\":\"" + std::string(deep, '[') + "\""));
  CHECK(in_string.status == 200);
  auto moderate =
      http_call(g.port, "POST", "/v1/chat/completions",
                chat_body("fast/m", ",\"x\":" + std::string(64, '[') + std::string(64, ']')));
  CHECK(moderate.status == 200);
  still_serves(g);
}

// Decision: a request whose JSON strings are not valid UTF-8 is refused with a 400, since
// providers would refuse or mangle it; the error body itself stays valid UTF-8 JSON.
TEST_CASE("hostile: invalid UTF-8 in a JSON string gets a 400 with a valid error body") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  const std::vector<std::string> texts = {
      "caf\xC3",          // truncated sequence
      "\xFF\xFE oops",    // bytes never valid in UTF-8
      "\xC0\xAF",         // overlong encoding of '/'
      "\xED\xA0\x80",     // an encoded surrogate
      "\\ud800 alone",    // a lone surrogate escape
      "\xF4\x90\x80\x80"  // above U+10FFFF
  };
  for (const auto& t : texts) {
    INFO(t);
    auto r = http_call(g.port, "POST", "/v1/chat/completions",
                       R"({"model":"fast/m","messages":[{"role":"user","content":")" + t + "\"}]}");
    CHECK(r.status == 400);
    CHECK(error_of(r.body)["type"] == "invalid_request_error");
    auto in_model = http_call(g.port, "POST", "/v1/chat/completions", chat_body("fast/" + t));
    CHECK(in_model.status == 400);
    error_of(in_model.body);
  }
  still_serves(g);
}

TEST_CASE("hostile: bodies and headers over the limits get a 413 and a 431") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  auto big_header = http_call(g.port, "GET", "/healthz", "", {{"x-pad", std::string(8192, 'a')}});
  CHECK(big_header.status == 431);
  CHECK(error_of(big_header.body)["code"] == "headers_too_large");
  std::map<std::string, std::string> many;
  for (int i = 0; i < 1000; ++i) many["x-h" + std::to_string(i)] = "v";
  CHECK(http_call(g.port, "GET", "/healthz", "", many).status == 431);
  // A chunked body declares no length, so the limit is enforced while it arrives.
  raw_client c(g.port);
  c.send(post_raw("Transfer-Encoding: chunked\r\n", ""));
  const std::string chunk(64 * 1024, 'x');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  for (int i = 0; i < 20; ++i)
    if (!c.send(size_line + chunk + "\r\n")) break;
  auto r = c.read_response(3s);
  CHECK(r.status == 413);
  CHECK(c.closed_within(2s));
  still_serves(g);
}

TEST_CASE("hostile: slowloris headers are cut at the header deadline, not per byte") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));  // header deadline 1 s
  raw_client c(g.port);
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
  auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  for (std::size_t i = 0; i < request.size() && !closed; ++i) {
    if (!c.send(request.substr(i, 1))) break;
    closed = c.closed_within(100ms);
    if (i == 3) still_serves(g);  // others are served while the trickle goes on
  }
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(closed);
  CHECK(took >= 900ms);
  CHECK(took < 2500ms);  // 200+ bytes at 100 ms each would take 20 s
  CHECK(c.received().find("HTTP/1.1 200") == std::string::npos);
  still_serves(g);
}

TEST_CASE("hostile: a client that stops reading a stream is cut and the upstream closed") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));  // per-write deadline (idle_chunk) 1 s
  auto sim_stats = [&] { return json::parse(s.stats("bulk")); };
  auto inflight_zero = [&] {
    // The scrape itself is the one request in flight.
    return http_call(g.port, "GET", "/metrics").body.find("meridian_inflight_requests 1\n") !=
           std::string::npos;
  };
  auto t0 = std::chrono::steady_clock::now();
  {
    raw_client c(g.port, 4096);
    REQUIRE(c.send(post_raw(
        "Content-Length: " + std::to_string(chat_body("bulk/m", ",\"stream\":true").size()) +
            "\r\n",
        chat_body("bulk/m", ",\"stream\":true"))));
    CHECK(eventually([&] { return sim_stats()["active_streams"] == 1; }, 5s));
    // The client never reads; the gateway's write deadline ends the exchange on its own.
    CHECK(eventually([&] { return sim_stats()["active_streams"] == 0; }, 15s));
    CHECK(sim_stats()["streams_completed"] == 0);
    CHECK(eventually(inflight_zero, 5s));
    CHECK(c.closed_within(10s));
  }
  MESSAGE("slow reader cut after " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - t0)
                                          .count()
                                   << " ms");
  still_serves(g);
}

TEST_CASE("hostile: request smuggling attempts get a 400 and a closed connection") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  const std::string body = chat_body();
  const std::string len = std::to_string(body.size());
  // Whatever follows the first request must never be answered as a second one.
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::vector<std::string> attacks = {
      post_raw("Content-Length: " + len + "\r\nTransfer-Encoding: chunked\r\n",
               "0\r\n\r\n" + smuggled),
      post_raw("Transfer-Encoding: chunked\r\nContent-Length: " + len + "\r\n",
               "0\r\n\r\n" + smuggled),
      post_raw("Content-Length: " + len + "\r\nContent-Length: 5\r\n", body + smuggled),
      post_raw("Content-Length: " + len + "\r\nContent-Length: " + len + "\r\n", body + smuggled),
      post_raw("Content-Length: " + len + ", " + len + "\r\n", body + smuggled),
      post_raw("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
               "0\r\n\r\n" + smuggled),
      post_raw("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n" + smuggled),
      post_raw("Content-Length: +" + len + "\r\n", body + smuggled),
      post_raw("Content-Length: " + len + "\r\n Transfer-Encoding: chunked\r\n", body + smuggled),
  };
  for (const auto& a : attacks) {
    INFO(a.substr(0, a.find("\r\n\r\n")));
    raw_client c(g.port);
    c.send(a);
    auto r = c.read_response(3s);
    CHECK(r.status == 400);
    CHECK(c.closed_within(2s));
    CHECK(count_of(c.received(), "HTTP/1.1 ") == 1);
  }
  still_serves(g);
}

TEST_CASE("hostile: CR, LF and junk in x-request-id are never echoed") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  for (const std::string& junk :
       {std::string("<script>alert(1)</script>"), std::string("a b"), std::string(200, 'x'),
        std::string("id\x01\x7f"), std::string("caf\xC3\xA9"), std::string("a\"b")}) {
    INFO(junk);
    // Control characters are refused by the parser (400); the rest are answered with a fresh id.
    auto r = http_call(g.port, "GET", "/healthz", "", {{"x-request-id", junk}});
    CHECK((r.status == 200 || r.status == 400));
    CHECK(r.headers["x-request-id"].rfind("req_", 0) == 0);
  }
  // Raw bytes a client library would never send: bare CR, bare LF, obs-fold continuation.
  const std::vector<std::string> heads = {
      "x-request-id: abc\rInjected: 1\r\n",
      "x-request-id: abc\nInjected: 1\r\n",
      "x-request-id: abc\r\n Injected: 1\r\n",
      "x-request-id: abc\r\n\tInjected: 1\r\n",
  };
  for (const auto& h : heads) {
    INFO(h);
    raw_client c(g.port);
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n" + h + "Connection: close\r\n\r\n");
    auto r = c.read_response(3s);
    CHECK((r.status == 200 || r.status == 400));
    const std::string& raw = c.received();
    const std::string head = raw.substr(0, raw.find("\r\n\r\n") + 2);
    CHECK(head.find("Injected") == std::string::npos);
    // Every header line ends in CRLF and holds no other CR or LF.
    for (std::size_t at = 0; at < head.size();) {
      auto end = head.find("\r\n", at);
      REQUIRE(end != std::string::npos);
      const std::string line = head.substr(at, end - at);
      CHECK(line.find('\r') == std::string::npos);
      CHECK(line.find('\n') == std::string::npos);
      at = end + 2;
    }
  }
  still_serves(g);
}

TEST_CASE("hostile: thousands of idle connections cost a fresh client nothing") {
  // Every idle socket is a descriptor here and one in the gateway, which inherits this limit.
  rlimit lim{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &lim) == 0);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  getrlimit(RLIMIT_NOFILE, &lim);
  const std::size_t wanted =
      std::min<std::size_t>(10000, lim.rlim_cur > 400 ? lim.rlim_cur - 300 : 100);
  sim s(k_sim);
  gateway g(gateway_yaml(s, "  limits: { max_connections: " + std::to_string(wanted + 100) +
                                " }\n  timeouts: { header: 20s }\n"));
  std::vector<std::unique_ptr<raw_client>> idle;
  idle.reserve(wanted);
  for (std::size_t i = 0; i < wanted; ++i) {
    try {
      idle.push_back(std::make_unique<raw_client>(g.port));
      if (i % 2) idle.back()->send("GET /he");  // half of them started a request
    } catch (const std::exception&) {
      break;
    }
  }
  MESSAGE("idle connections held open: " << idle.size() << " (file limit " << lim.rlim_cur << ")");
  CHECK(idle.size() == wanted);
  for (int i = 0; i < 3; ++i) still_serves(g);
  // An idle one can still finish its request.
  idle.front()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(idle.front()->read_response(3s).status == 200);
  idle.clear();
  still_serves(g);
}

TEST_CASE("hostile: connections over server.limits.max_connections are closed") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, "  limits: { max_connections: 50 }\n", 1));
  std::vector<std::unique_ptr<raw_client>> held;
  for (int i = 0; i < 50; ++i) held.push_back(std::make_unique<raw_client>(g.port));
  // The 50 are accepted in order on the single listener before the 51st.
  std::this_thread::sleep_for(200ms);
  raw_client extra(g.port);
  extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(extra.closed_within(2s));
  CHECK(extra.received().empty());
  // Those already in keep working, one request after another.
  for (int i = 0; i < 3; ++i) {
    auto& c = *held[static_cast<std::size_t>(i) * 10];
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read_response(3s).status == 200);
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read_response(3s).status == 200);
  }
  held.clear();
  // Their slots come back as soon as the gateway sees them close.
  CHECK(eventually(
      [&] {
        return http_call(g.port, "POST", "/v1/chat/completions", chat_body(), {}, 1s).status == 200;
      },
      3s));
  still_serves(g);
}

TEST_CASE("hostile: path traversal on the dashboard gets a 404 and never a file") {
  sim s(k_sim);
  gateway g(gateway_yaml(s, k_limits));
  for (const std::string target :
       {"/dashboard/../../etc/passwd", "/dashboard/..%2F..%2Fetc%2Fpasswd",
        "/dashboard%2F..%2F..%2Fetc%2Fpasswd", "/dashboard/%2e%2e/%2e%2e/etc/passwd",
        "/../../etc/passwd", "/dashboard/", "/dashboard/index.html", "//etc/passwd",
        "/dashboard/..%252F..%252Fetc%252Fpasswd", "/dashboard/..\\..\\etc\\passwd"}) {
    INFO(target);
    auto r = http_call(g.port, "GET", target);
    CHECK((r.status == 404 || r.status == 400));
    CHECK(r.body.find("root:") == std::string::npos);
    CHECK(r.headers["content-type"].find("text/html") == std::string::npos);
  }
  // A traversal in the query is just an unknown parameter of the real page.
  auto q = http_call(g.port, "GET", "/dashboard?file=../../etc/passwd");
  CHECK(q.body.find("root:") == std::string::npos);
  still_serves(g);
}

TEST_CASE("hostile: a flood on the public port never locks the operator out of admin") {
  sim s(k_sim);
  std::string yaml = gateway_yaml(s, "  limits: { max_connections: 20 }\n", 1);
  yaml.replace(yaml.find("server:\n"), 8, "server:\n  admin_listen: 127.0.0.1:0\n");
  gateway g(yaml);
  REQUIRE(g.admin_port != 0);
  std::vector<std::unique_ptr<raw_client>> held;
  for (int i = 0; i < 40; ++i) held.push_back(std::make_unique<raw_client>(g.port));
  std::this_thread::sleep_for(200ms);
  // The public listener is full; the admin listener counts its own connections.
  auto admin = http_call(g.admin_port, "GET", "/healthz", "", {}, 2s);
  CHECK(admin.status == 200);
  auto metrics = http_call(g.admin_port, "GET", "/metrics", "", {}, 2s);
  CHECK(metrics.status == 200);
}

TEST_CASE("hostile: out of descriptors, the acceptor backs off instead of spinning") {
  sim s(k_sim);
  temp_dir d;
  const std::string cfg = d.write("m.yaml", gateway_yaml(s, "", 1));
  const std::string err = d.path() + "/stderr.log";
  // 64 descriptors in all (soft and hard, so the gateway cannot raise them): a flood of 150
  // connections exhausts them.
  process gw({"/bin/sh", "-c", "ulimit -n 64 && exec '" + std::string(MERIDIAN_BIN) +
                                   "' serve -c '" + cfg + "'"},
             {}, d.path(), err);
  auto line = gw.wait_line("\"listening\"", 10s);
  REQUIRE(line);
  const auto port = nlohmann::json::parse(*line)["port"].get<std::uint16_t>();
  auto cpu_seconds = [&] {
    std::ifstream stat("/proc/" + std::to_string(gw.pid()) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string f;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i == 14) utime = std::stoul(f);
      if (i == 15) stime = std::stoul(f);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  };
  std::vector<std::unique_ptr<raw_client>> flood;
  for (int i = 0; i < 150; ++i) flood.push_back(std::make_unique<raw_client>(port));
  std::this_thread::sleep_for(300ms);
  const double before = cpu_seconds();
  std::this_thread::sleep_for(2s);
  const double spent = cpu_seconds() - before;
  // A spinning acceptor burns a whole core (2 s here); backing off costs next to nothing.
  CHECK(spent < 0.5);
  flood.clear();
  // Once descriptors are free again, service resumes and the failures are counted.
  std::string metrics;
  CHECK(eventually(
      [&] {
        auto r = http_call(port, "GET", "/metrics", "", {}, 1s);
        metrics = r.body;
        return r.status == 200;
      },
      5s));
  CHECK(metrics.find("meridian_accept_errors_total{listener=\"public\",reason=\"emfile\"}") !=
        std::string::npos);
  std::ifstream log(err);
  std::string text((std::istreambuf_iterator<char>(log)), {});
  std::size_t lines = 0;
  for (auto at = text.find("accept failed"); at != std::string::npos;
       at = text.find("accept failed", at + 1))
    ++lines;
  CHECK(lines >= 1);
  CHECK(lines <= 3);  // once per 5 s, with a count, not once per failure
  gw.signal(SIGTERM);
  gw.wait_exit(10s);
}
