// meridian-sim: OpenAI-dialect chat, models and stats endpoints with scripted faults.
#include "tools/sim/sim.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <variant>

#include <yaml-cpp/yaml.h>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace meridian::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::size_t k_body_limit = 8 * 1024 * 1024;
constexpr auto k_idle_timeout = 60s;
constexpr auto k_write_timeout = 30s;
constexpr auto k_handshake_timeout = 10s;
constexpr auto k_shutdown_timeout = 5s;
constexpr int k_echo_words = 8;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------
// Parsing helpers

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int parse_int(std::string_view key, std::string_view value) {
  int out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc{} || ptr != value.data() + value.size() || out < 0) {
    throw std::invalid_argument("fault key '" + std::string(key) +
                                "' needs a non-negative integer");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Provider state shared by every session of one provider.

struct provider_state {
  provider_config config;
  fault default_fault;
  std::unique_ptr<ssl::context> tls;
  std::optional<tcp::acceptor> acceptor;

  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> streams_completed{0};
  std::atomic<std::uint64_t> streams_cancelled{0};
  std::atomic<std::uint64_t> streams_cut{0};
  std::atomic<std::int64_t> active_streams{0};

  std::mutex last_mutex;  // guards last_request; never held across co_await
  json last_request = nullptr;

  bool has_model(std::string_view m) const {
    return std::find(config.models.begin(), config.models.end(), m) != config.models.end();
  }
};

std::atomic<std::uint64_t> g_completion_counter{0};

// What the session does after a request has been handled.
enum class after { keep_alive, close, cut, reset };

using request = http::request<http::string_body>;

std::string error_body(std::string_view message, std::string_view type, const json& param,
                       const json& code) {
  json j = {{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}};
  return j.dump();
}

json usage_json(int prompt, int completion) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", 0}}}};
}

std::string fault_error_type(int status) {
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

// Waits until `deadline`; returns true if the peer disconnected meanwhile. Watching the socket
// for readability lets a stalled stream notice a client that went away. If the peer sends data
// instead (pipelining, a TLS alert), watching stops and only the timer is awaited.
asio::awaitable<bool> wait_until(tcp::socket& sock,
                                 std::chrono::steady_clock::time_point deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (bool watch = true;;) {
    timer.expires_at(deadline);
    if (!watch) {
      co_await timer.async_wait(k_tuple);
      co_return false;
    }
    auto r =
        co_await (timer.async_wait(k_tuple) || sock.async_wait(tcp::socket::wait_read, k_tuple));
    if (r.index() == 0) co_return false;
    if (std::get<0>(std::get<1>(r))) co_return true;  // socket error or closed locally
    char c = 0;
    auto n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) co_return true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) co_return true;
    watch = n < 0;  // spurious wake-up: keep watching; data pending: stop watching
  }
}

asio::awaitable<bool> wait_for(tcp::socket& sock, std::chrono::milliseconds d) {
  if (d <= 0ms) co_return false;
  co_return co_await wait_until(sock, std::chrono::steady_clock::now() + d);
}

// One provider's request handling over a plain or TLS stream.
template <class Stream>
class handler {
 public:
  handler(provider_state& p, Stream& stream) : p_(p), stream_(stream) {}

  asio::awaitable<after> serve() {
    beast::flat_buffer buffer;
    for (;;) {
      lowest().expires_after(k_idle_timeout);
      http::request_parser<http::string_body> parser;
      parser.body_limit(k_body_limit);
      auto [ec, n] = co_await http::async_read(stream_, buffer, parser, k_tuple);
      if (ec == http::error::body_limit) {
        request dummy{http::verb::post, "/", 11};
        dummy.keep_alive(false);
        auto res = error(dummy, http::status::payload_too_large, "Request body exceeds 8 MiB.",
                         nullptr, nullptr);
        co_await send(std::move(res));
        co_return after::close;
      }
      if (ec) co_return after::close;  // closed, idle timeout or unparsable request
      request req = parser.release();
      after next = after::close;
      try {
        next = co_await handle(req);
      } catch (const std::exception& e) {
        std::cerr << "meridian-sim: " << p_.config.name << ": " << e.what() << "\n";
        next = after::close;
      }
      if (next != after::keep_alive) co_return next;
      if (!req.keep_alive()) co_return after::close;
    }
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket() { return lowest().socket(); }

  asio::awaitable<after> handle(request& req) {
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    if (req.method() == http::verb::post && target == "/v1/chat/completions") {
      co_return co_await chat(req);
    }
    if (req.method() == http::verb::get && target == "/v1/models") {
      if (!authorized(req)) co_return co_await unauthorized(req);
      json data = json::array();
      for (const auto& m : p_.config.models) {
        data.push_back(
            {{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", p_.config.name}});
      }
      auto res = make(req, http::status::ok, json{{"object", "list"}, {"data", data}}.dump());
      co_return co_await send(std::move(res));
    }
    if (req.method() == http::verb::get && target == "/sim/stats") {
      auto res = make(req, http::status::ok, stats_body());
      co_return co_await send(std::move(res));
    }
    auto res = error(
        req, http::status::not_found,
        "Unknown request URL: " + std::string(req.method_string()) + " " + std::string(target),
        nullptr, "unknown_url");
    co_return co_await send(std::move(res));
  }

  std::string stats_body() {
    json j = {{"requests", p_.requests.load()},
              {"streams_completed", p_.streams_completed.load()},
              {"streams_cancelled", p_.streams_cancelled.load()},
              {"streams_cut", p_.streams_cut.load()},
              {"active_streams", p_.active_streams.load()}};
    std::lock_guard lock(p_.last_mutex);
    j["last_request"] = p_.last_request;
    return j.dump();
  }

  void record(const request& req) {
    json headers = json::object();
    for (const auto& f : req) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      auto value = std::string(f.value());
      auto it = headers.find(name);
      if (it == headers.end()) {
        headers[name] = value;
      } else {
        *it = it->template get<std::string>() + ", " + value;
      }
    }
    json last = {{"method", std::string(req.method_string())},
                 {"target", std::string(req.target())},
                 {"body", json(req.body())},
                 {"headers", std::move(headers)}};
    std::lock_guard lock(p_.last_mutex);
    p_.last_request = std::move(last);
  }

  bool authorized(const request& req) const {
    if (p_.config.api_key.empty()) return true;
    auto it = req.find(http::field::authorization);
    return it != req.end() && it->value() == "Bearer " + p_.config.api_key;
  }

  asio::awaitable<after> unauthorized(const request& req) {
    auto res = error(req, http::status::unauthorized, "Incorrect API key provided.", nullptr,
                     "invalid_api_key");
    co_return co_await send(std::move(res));
  }

  asio::awaitable<after> chat(request& req) {
    ++p_.requests;
    record(req);
    if (!authorized(req)) co_return co_await unauthorized(req);

    json body = json::parse(req.body(), nullptr, false);
    const bool valid = !body.is_discarded() && body.is_object();

    fault f;
    std::string fault_problem;
    try {
      if (auto it = req.find("x-sim-fault"); it != req.end()) {
        f = parse_fault(it->value());
      } else if (auto sf = valid ? body.find("sim_fault") : body.end();
                 valid && sf != body.end() && sf->is_string()) {
        f = parse_fault(sf->template get<std::string>());
      } else {
        f = p_.default_fault;
      }
    } catch (const std::invalid_argument& e) {
      fault_problem = std::string("invalid sim fault: ") + e.what();
    }
    if (!fault_problem.empty()) {
      auto res = error(req, http::status::bad_request, fault_problem, "sim_fault", nullptr);
      co_return co_await send(std::move(res));
    }

    if (co_await wait_for(socket(), f.delay)) co_return after::reset;
    if (f.reset) co_return after::reset;
    if (f.status) {
      auto res =
          make(req, static_cast<http::status>(*f.status),
               error_body("simulated fault", fault_error_type(*f.status), nullptr, "sim_fault"));
      if (f.retry_after) res.set(http::field::retry_after, std::to_string(*f.retry_after));
      co_return co_await send(std::move(res));
    }
    if (f.malformed) {
      auto res = make(req, http::status::ok,
                      R"({"id":"chatcmpl-sim-malformed","object":"chat.completion","choices":[{)");
      co_return co_await send(std::move(res));
    }

    if (!valid) {
      auto res = error(req, http::status::bad_request,
                       "We could not parse the JSON body of your request. (HINT: This likely "
                       "means you aren't using your HTTP library correctly.)",
                       nullptr, nullptr);
      co_return co_await send(std::move(res));
    }
    auto model_it = body.find("model");
    if (model_it == body.end() || !model_it->is_string()) {
      auto res = error(req, http::status::bad_request, "you must provide a model parameter",
                       "model", nullptr);
      co_return co_await send(std::move(res));
    }
    auto messages_it = body.find("messages");
    if (messages_it == body.end() || !messages_it->is_array()) {
      auto res =
          error(req, http::status::bad_request, "'messages' must be an array", "messages", nullptr);
      co_return co_await send(std::move(res));
    }
    const std::string model = model_it->template get<std::string>();
    if (!p_.has_model(model)) {
      auto res = error(req, http::status::not_found,
                       "The model `" + model + "` does not exist or you do not have access to it.",
                       "model", "model_not_found");
      co_return co_await send(std::move(res));
    }

    int count = std::max(0, p_.config.reply_tokens);
    bool capped = false;
    for (const char* key : {"max_completion_tokens", "max_tokens"}) {
      auto it = body.find(key);
      if (it != body.end() && it->is_number_integer()) {
        auto cap = it->template get<std::int64_t>();
        if (cap >= 0 && cap < count) {
          count = static_cast<int>(cap);
          capped = true;
        }
      }
    }
    std::string last_user;
    for (auto it = messages_it->rbegin(); it != messages_it->rend(); ++it) {
      if (it->is_object() && it->value("role", "") == "user" && it->contains("content")) {
        last_user = content_text((*it)["content"]);
        break;
      }
    }
    reply r{model,
            reply_tokens(p_.config.name, model, last_user, count),
            capped ? "length" : "stop",
            count_prompt_tokens(*messages_it),
            "chatcmpl-sim-" + std::to_string(++g_completion_counter),
            static_cast<std::int64_t>(std::time(nullptr))};

    auto stream_it = body.find("stream");
    if (stream_it != body.end() && stream_it->is_boolean() && stream_it->template get<bool>()) {
      bool include_usage = false;
      if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
        auto iu = so->find("include_usage");
        include_usage = iu != so->end() && iu->is_boolean() && iu->template get<bool>();
      }
      co_return co_await stream(req, r, f, include_usage);
    }

    if (co_await wait_for(socket(), p_.config.ttft)) co_return after::reset;
    std::string content;
    for (const auto& t : r.tokens) content += t;
    json out = {
        {"id", r.id},
        {"object", "chat.completion"},
        {"created", r.created},
        {"model", r.model},
        {"choices", json::array({{{"index", 0},
                                  {"message", {{"role", "assistant"}, {"content", content}}},
                                  {"logprobs", nullptr},
                                  {"finish_reason", r.finish_reason}}})},
        {"usage", usage_json(r.prompt_tokens, static_cast<int>(r.tokens.size()))}};
    auto res = make(req, http::status::ok, out.dump());
    co_return co_await send(std::move(res));
  }

  struct reply {
    std::string model;
    std::vector<std::string> tokens;
    std::string finish_reason;
    int prompt_tokens;
    std::string id;
    std::int64_t created;
  };

  // Decrements active_streams however the stream ends.
  struct active_guard {
    std::atomic<std::int64_t>& n;
    explicit active_guard(std::atomic<std::int64_t>& c) : n(c) { ++n; }
    ~active_guard() { --n; }
    active_guard(const active_guard&) = delete;
    active_guard& operator=(const active_guard&) = delete;
  };

  asio::awaitable<after> stream(const request& req, const reply& r, const fault& f,
                                bool include_usage) {
    active_guard guard(p_.active_streams);
    auto cancelled = [&] {
      ++p_.streams_cancelled;
      return after::reset;
    };
    if (co_await wait_for(socket(), p_.config.ttft)) co_return cancelled();

    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "meridian-sim");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    lowest().expires_after(k_write_timeout);
    if (auto [ec, n] = co_await http::async_write_header(stream_, sr, k_tuple); ec) {
      co_return cancelled();
    }

    const json model_json = r.model;
    const std::string head =
        R"(data: {"id":")" + r.id + R"(","object":"chat.completion.chunk","created":)" +
        std::to_string(r.created) + R"(,"model":)" + model_json.dump() + R"(,"choices":[)";
    std::string event;

    using clock = std::chrono::steady_clock;
    const bool paced = p_.config.tokens_per_second > 0;
    const auto interval =
        paced ? std::chrono::duration_cast<clock::duration>(
                    std::chrono::duration<double>(1.0 / p_.config.tokens_per_second))
              : clock::duration::zero();
    auto deadline = clock::now();
    const int total = static_cast<int>(r.tokens.size());
    for (int i = 0; i < total; ++i) {
      if (f.cut_after && i == *f.cut_after) break;
      if (f.stall_after && i == *f.stall_after) {
        if (co_await wait_for(socket(), f.stall)) co_return cancelled();
        deadline = clock::now();
      } else if (paced && i > 0) {
        deadline += interval;
        if (deadline > clock::now() && co_await wait_until(socket(), deadline)) {
          co_return cancelled();
        }
      }
      event = head + R"({"index":0,"delta":{)" + (i == 0 ? R"("role":"assistant",)" : "") +
              R"("content":)" + json(r.tokens[i]).dump() +
              R"(},"logprobs":null,"finish_reason":null}]})" + "\n\n";
      if (!co_await write_chunk(event)) co_return cancelled();
    }
    if (f.cut_after) {
      ++p_.streams_cut;
      co_return after::cut;
    }

    event = head + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":")" + r.finish_reason +
            R"("}]})" + "\n\n";
    if (!co_await write_chunk(event)) co_return cancelled();
    if (include_usage) {
      event = head + "]," + R"("usage":)" + usage_json(r.prompt_tokens, total).dump() + "}\n\n";
      if (!co_await write_chunk(event)) co_return cancelled();
    }
    event = "data: [DONE]\n\n";
    if (!co_await write_chunk(event)) co_return cancelled();
    lowest().expires_after(k_write_timeout);
    if (auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk_last(), k_tuple); ec) {
      co_return cancelled();
    }
    ++p_.streams_completed;
    co_return req.keep_alive() ? after::keep_alive : after::close;
  }

  using response = http::response<http::string_body>;

  static response make(const request& req, http::status status, std::string body) {
    response res{status, req.version()};
    res.set(http::field::server, "meridian-sim");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  static response error(const request& req, http::status status, const std::string& message,
                        const json& param, const json& code) {
    return make(req, status, error_body(message, "invalid_request_error", param, code));
  }

  asio::awaitable<after> send(response res) {
    const bool keep_alive = res.keep_alive();
    lowest().expires_after(k_write_timeout);
    auto [ec, n] = co_await http::async_write(stream_, res, k_tuple);
    if (ec) co_return after::reset;
    co_return keep_alive ? after::keep_alive : after::close;
  }

  asio::awaitable<bool> write_chunk(const std::string& event) {
    lowest().expires_after(k_write_timeout);
    auto [ec, n] =
        co_await asio::async_write(stream_, http::make_chunk(asio::buffer(event)), k_tuple);
    co_return !ec;
  }

  provider_state& p_;
  Stream& stream_;
};

void abort_socket(tcp::socket& sock, bool reset) {
  beast::error_code ec;
  if (reset) sock.set_option(asio::socket_base::linger(true, 0), ec);
  sock.close(ec);
}

asio::awaitable<void> plain_session(provider_state& p, tcp::socket sock) {
  beast::tcp_stream stream(std::move(sock));
  after a = co_await handler<beast::tcp_stream>(p, stream).serve();
  if (a == after::close) {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }
  abort_socket(stream.socket(), a == after::reset);
}

asio::awaitable<void> tls_session(provider_state& p, tcp::socket sock) {
  beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), *p.tls);
  beast::get_lowest_layer(stream).expires_after(k_handshake_timeout);
  auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, k_tuple);
  if (hec) co_return;
  after a = co_await handler<beast::ssl_stream<beast::tcp_stream>>(p, stream).serve();
  if (a == after::close) {
    beast::get_lowest_layer(stream).expires_after(k_shutdown_timeout);
    co_await stream.async_shutdown(k_tuple);
  }
  abort_socket(beast::get_lowest_layer(stream).socket(), a == after::reset);
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::cerr << "meridian-sim: session error: " << x.what() << "\n";
  }
}

asio::awaitable<void> accept_loop(asio::io_context& ioc, provider_state& p) {
  for (;;) {
    tcp::socket sock(asio::make_strand(ioc));
    auto [ec] = co_await p.acceptor->async_accept(sock, k_tuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or similar: back off briefly rather than spin.
      asio::steady_timer t(ioc, 50ms);
      co_await t.async_wait(k_tuple);
      continue;
    }
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    auto ex = sock.get_executor();
    if (p.tls) {
      asio::co_spawn(ex, tls_session(p, std::move(sock)), log_exception);
    } else {
      asio::co_spawn(ex, plain_session(p, std::move(sock)), log_exception);
    }
  }
}

// YAML helpers -----------------------------------------------------------------------------

[[noreturn]] void config_fail(const std::string& path, const std::string& message) {
  throw config_error(path + ": " + message);
}

std::string scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) config_fail(path, "expected a scalar");
  return n.Scalar();
}

template <class T>
T number(const YAML::Node& n, const std::string& path) {
  try {
    if (!n.IsScalar()) config_fail(path, "expected a number");
    return n.as<T>();
  } catch (const YAML::Exception&) {
    config_fail(path, "expected a number, got '" + n.Scalar() + "'");
  }
}

provider_config parse_provider(const std::string& name, const YAML::Node& node) {
  const std::string base = "providers." + name;
  if (!node.IsMap()) config_fail(base, "expected a mapping");
  provider_config p;
  p.name = name;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = base + "." + key;
    const YAML::Node& v = kv.second;
    if (key == "port") {
      auto port = number<int>(v, path);
      if (port < 0 || port > 65535) config_fail(path, "port out of range");
      p.port = static_cast<std::uint16_t>(port);
    } else if (key == "models") {
      if (!v.IsSequence() || v.size() == 0) config_fail(path, "expected a non-empty list");
      for (std::size_t i = 0; i < v.size(); ++i) {
        p.models.push_back(scalar(v[i], path + "[" + std::to_string(i) + "]"));
      }
    } else if (key == "ttft") {
      try {
        p.ttft = parse_duration(scalar(v, path));
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
    } else if (key == "tokens_per_second") {
      p.tokens_per_second = number<double>(v, path);
      if (p.tokens_per_second < 0) config_fail(path, "must not be negative");
    } else if (key == "reply_tokens") {
      p.reply_tokens = number<int>(v, path);
      if (p.reply_tokens < 0) config_fail(path, "must not be negative");
    } else if (key == "api_key") {
      p.api_key = scalar(v, path);
    } else if (key == "tls") {
      if (!v.IsMap()) config_fail(path, "expected a mapping with cert and key");
      tls_files t;
      for (const auto& tkv : v) {
        const std::string tkey = tkv.first.as<std::string>();
        if (tkey == "cert") {
          t.cert = scalar(tkv.second, path + ".cert");
        } else if (tkey == "key") {
          t.key = scalar(tkv.second, path + ".key");
        } else {
          config_fail(path + "." + tkey, "unknown key");
        }
      }
      if (t.cert.empty() || t.key.empty()) config_fail(path, "needs both cert and key");
      p.tls = std::move(t);
    } else if (key == "fault") {
      p.fault = scalar(v, path);
      try {
        parse_fault(p.fault);
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
    } else {
      config_fail(path, "unknown key");
    }
  }
  if (p.models.empty()) config_fail(base + ".models", "at least one model is required");
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pure functions

std::chrono::milliseconds parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  double value = 0;
  std::size_t i = 0;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
  if (i == 0) throw std::invalid_argument("invalid duration '" + std::string(text) + "'");
  try {
    value = std::stod(std::string(s.substr(0, i)));
  } catch (const std::exception&) {
    throw std::invalid_argument("invalid duration '" + std::string(text) + "'");
  }
  std::string_view unit = trim(s.substr(i));
  double ms = 0;
  if (unit.empty() || unit == "ms") {
    ms = value;
  } else if (unit == "s") {
    ms = value * 1000;
  } else if (unit == "m") {
    ms = value * 60'000;
  } else {
    throw std::invalid_argument("invalid duration unit in '" + std::string(text) +
                                "' (use ms, s or m)");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

fault parse_fault(std::string_view text) {
  fault f;
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view item = trim(text.substr(0, semi));
    text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view key = trim(item.substr(0, eq));
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : trim(item.substr(eq + 1));
    const bool flag = eq == std::string_view::npos;
    if (key == "reset" && flag) {
      f.reset = true;
    } else if (key == "malformed" && flag) {
      f.malformed = true;
    } else if (flag) {
      throw std::invalid_argument("unknown fault flag '" + std::string(key) + "'");
    } else if (key == "status") {
      int s = parse_int(key, value);
      if (s < 100 || s > 599) throw std::invalid_argument("fault status must be 100..599");
      f.status = s;
    } else if (key == "retry_after") {
      f.retry_after = parse_int(key, value);
    } else if (key == "delay") {
      f.delay = std::chrono::milliseconds(parse_int(key, value));
    } else if (key == "cut_after") {
      f.cut_after = parse_int(key, value);
    } else if (key == "stall_after") {
      f.stall_after = parse_int(key, value);
    } else if (key == "stall") {
      f.stall = std::chrono::milliseconds(parse_int(key, value));
    } else {
      throw std::invalid_argument("unknown fault key '" + std::string(key) + "'");
    }
  }
  return f;
}

sim_config parse_config(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw config_error(std::string("invalid YAML: ") + e.what());
  }
  if (!root.IsMap()) throw config_error("top level: expected a mapping with 'providers'");
  sim_config cfg;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key != "providers") config_fail(key, "unknown key");
    if (!kv.second.IsMap() || kv.second.size() == 0) {
      config_fail("providers", "expected a non-empty mapping of provider name to settings");
    }
    for (const auto& pkv : kv.second) {
      cfg.providers.push_back(parse_provider(pkv.first.as<std::string>(), pkv.second));
    }
  }
  if (cfg.providers.empty()) throw config_error("providers: at least one provider is required");
  return cfg;
}

sim_config load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw config_error(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str());
}

std::vector<std::string> reply_tokens(std::string_view provider, std::string_view model,
                                      std::string_view last_user_text, int count) {
  static constexpr std::string_view k_lorem[] = {
      "lorem",  "ipsum", "dolor",  "sit",     "amet,",  "consectetur", "adipiscing",
      "elit,",  "sed",   "do",     "eiusmod", "tempor", "incididunt",  "ut",
      "labore", "et",    "dolore", "magna",   "aliqua."};
  std::vector<std::string> out;
  if (count <= 0) return out;
  out.reserve(static_cast<std::size_t>(count));
  auto push = [&](std::string_view w) {
    if (static_cast<int>(out.size()) < count) out.push_back(std::string(w) + " ");
  };
  push("Hello");
  push("from");
  push(model);
  push("via");
  push(provider);
  push("(sim).");
  push("You");
  push("said:");
  int echoed = 0;
  std::size_t pos = 0;
  while (echoed < k_echo_words && pos < last_user_text.size()) {
    auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    while (pos < last_user_text.size() && is_space(last_user_text[pos])) ++pos;
    auto end = pos;
    while (end < last_user_text.size() && !is_space(last_user_text[end])) ++end;
    if (end > pos) {
      push(last_user_text.substr(pos, end - pos));
      ++echoed;
    }
    pos = end;
  }
  for (std::size_t i = 0; static_cast<int>(out.size()) < count; ++i) {
    push(k_lorem[i % std::size(k_lorem)]);
  }
  return out;
}

std::string content_text(const nlohmann::json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (!part.is_object()) continue;
      auto it = part.find("text");
      if (it != part.end() && it->is_string()) {
        if (!out.empty()) out += ' ';
        out += it->get<std::string>();
      }
    }
  }
  return out;
}

int count_prompt_tokens(const nlohmann::json& messages) {
  if (!messages.is_array()) return 0;
  std::size_t total = 0;
  for (const auto& m : messages) {
    std::size_t bytes = 0;
    if (m.is_object()) {
      auto it = m.find("content");
      if (it != m.end()) {
        if (it->is_string()) {
          bytes = it->get_ref<const std::string&>().size();
        } else if (it->is_array()) {
          for (const auto& part : *it) {
            if (!part.is_object()) continue;
            auto t = part.find("text");
            if (t != part.end() && t->is_string()) bytes += t->get_ref<const std::string&>().size();
          }
        }
      }
    }
    total += 4 + (bytes + 3) / 4;
  }
  return static_cast<int>(total);
}

// ---------------------------------------------------------------------------------------------
// Server

void run(const sim_config& config, const run_options& options, std::ostream& out) {
  const int threads = std::max(1, options.threads);
  asio::io_context ioc(threads);
  const auto address = asio::ip::make_address(options.host);

  std::vector<std::unique_ptr<provider_state>> providers;
  for (const auto& pc : config.providers) {
    auto p = std::make_unique<provider_state>();
    p->config = pc;
    p->default_fault = parse_fault(pc.fault);
    if (pc.tls) {
      p->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
      p->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1);
      try {
        p->tls->use_certificate_chain_file(pc.tls->cert);
        p->tls->use_private_key_file(pc.tls->key, ssl::context::pem);
      } catch (const std::exception& e) {
        throw std::runtime_error("provider " + pc.name + ": cannot load TLS cert/key: " + e.what());
      }
    }
    try {
      tcp::endpoint ep(address, pc.port);
      p->acceptor.emplace(ioc);
      p->acceptor->open(ep.protocol());
      p->acceptor->set_option(asio::socket_base::reuse_address(true));
      p->acceptor->bind(ep);
      p->acceptor->listen(asio::socket_base::max_listen_connections);
    } catch (const std::exception& e) {
      throw std::runtime_error("provider " + pc.name + ": cannot listen on " + options.host + ":" +
                               std::to_string(pc.port) + ": " + e.what());
    }
    providers.push_back(std::move(p));
  }

  std::string url_host = options.host;
  if (address.is_v6()) url_host = "[" + url_host + "]";
  for (const auto& p : providers) {
    const auto port = p->acceptor->local_endpoint().port();
    nlohmann::ordered_json line = {{"event", "listening"},
                                   {"provider", p->config.name},
                                   {"port", port},
                                   {"url", std::string(p->tls ? "https" : "http") + "://" +
                                               url_host + ":" + std::to_string(port) + "/v1"}};
    out << line.dump() << std::endl;
    asio::co_spawn(ioc, accept_loop(ioc, *p), log_exception);
  }

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code&, int) { ioc.stop(); });
  out << R"({"event":"ready"})" << std::endl;

  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
}

}  // namespace meridian::sim
