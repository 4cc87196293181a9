// meridian-sim: OpenAI, Anthropic and Gemini dialect endpoints plus stats, with scripted faults.
#include "tools/sim/sim.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
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
constexpr int k_default_fault_events = 2;  // content events before a bare sse_error/truncate_sse
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

// The OpenAI chat reply, planned before any byte is sent.
struct openai_reply {
  std::string model;
  std::vector<std::string> tokens;
  std::string finish_reason;
  int prompt_tokens;
  std::string id;
  std::int64_t created;
};

stream_script openai_stream(const openai_reply& r, bool include_usage) {
  const json model_json = r.model;
  const std::string head =
      R"(data: {"id":")" + r.id + R"(","object":"chat.completion.chunk","created":)" +
      std::to_string(r.created) + R"(,"model":)" + model_json.dump() + R"(,"choices":[)";
  stream_script s;
  for (std::size_t i = 0; i < r.tokens.size(); ++i) {
    s.content.push_back(head + R"({"index":0,"delta":{)" +
                        (i == 0 ? R"("role":"assistant",)" : "") + R"("content":)" +
                        json(r.tokens[i]).dump() + R"(},"logprobs":null,"finish_reason":null}]})" +
                        "\n\n");
  }
  s.epilogue.push_back(head + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":")" +
                       r.finish_reason + R"("}]})" + "\n\n");
  if (include_usage) {
    s.epilogue.push_back(head + "]," + R"("usage":)" +
                         usage_json(r.prompt_tokens, static_cast<int>(r.tokens.size())).dump() +
                         "}\n\n");
  }
  s.epilogue.push_back("data: [DONE]\n\n");
  return s;
}

// The value of `name` in the query string of `target`, undecoded.
std::optional<std::string_view> query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = item.find('=');
    if (item.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    }
  }
  return std::nullopt;
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
        auto res = fail(dummy, 413, "Request body exceeds 8 MiB.");
        co_await send(std::move(res));
        co_return after::close;
      }
      if (ec) co_return after::close;  // closed, idle timeout or unparsable request
      request req = parser.release();
      active_ = {};  // a fault applies to the request that asked for it only
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
  using response = http::response<http::string_body>;

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket() { return lowest().socket(); }
  dialect kind() const { return p_.config.dialect; }

  asio::awaitable<after> handle(request& req) {
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    const bool post = req.method() == http::verb::post;
    const bool get = req.method() == http::verb::get;
    if (get && target == "/sim/stats") {
      co_return co_await send(make(req, http::status::ok, stats_body()));
    }
    switch (kind()) {
      case dialect::openai:
        if (post && target == "/v1/chat/completions") co_return co_await chat(req);
        if (post && target == "/v1/embeddings") co_return co_await embeddings(req);
        if (get && target == "/v1/models") co_return co_await openai_models(req);
        break;
      case dialect::anthropic:
        if (post && target == "/v1/messages") co_return co_await messages(req);
        if (post && target == "/v1/messages/count_tokens") co_return co_await count_tokens(req);
        if (get && target == "/v1/models") co_return co_await anthropic_models(req);
        break;
      case dialect::gemini: {
        constexpr std::string_view prefix = "/v1beta/models";
        if (get && target == prefix) co_return co_await gemini_models(req);
        if (post && target.starts_with(prefix) && target.size() > prefix.size() &&
            target[prefix.size()] == '/') {
          std::string_view rest = target.substr(prefix.size() + 1);
          auto colon = rest.rfind(':');
          if (colon != std::string_view::npos) {
            co_return co_await gemini(req, std::string(rest.substr(0, colon)),
                                      rest.substr(colon + 1));
          }
        }
        break;
      }
    }
    co_return co_await send(
        fail(req, 404,
             "Unknown request URL: " + std::string(req.method_string()) + " " + std::string(target),
             nullptr, "unknown_url"));
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

  // The error response in the provider's dialect. `param`, `code` and `openai_type` only exist in
  // OpenAI's shape; the other dialects derive their error type from the status.
  response fail(const request& req, int status, const std::string& message,
                const json& param = nullptr, const json& code = nullptr,
                std::string_view openai_type = "invalid_request_error") const {
    std::string body;
    switch (kind()) {
      case dialect::openai:
        body = error_body(message, openai_type, param, code);
        break;
      case dialect::anthropic:
        body = anthropic_error_body(status, message);
        break;
      case dialect::gemini:
        body = gemini_error_body(status, message);
        break;
    }
    auto res = make(req, static_cast<http::status>(status), std::move(body));
    // Beast knows no phrase for Anthropic's 529 and would send "<unknown-status>".
    if (status == 529) res.reason("Overloaded");
    return res;
  }

  // Checks the dialect's key header; returns the rejection to send, if any.
  std::optional<response> reject_key(const request& req) const {
    const std::string& key = p_.config.api_key;
    if (key.empty()) return std::nullopt;
    switch (kind()) {
      case dialect::openai: {
        auto it = req.find(http::field::authorization);
        if (it != req.end() && it->value() == "Bearer " + key) return std::nullopt;
        return fail(req, 401, "Incorrect API key provided.", nullptr, "invalid_api_key");
      }
      case dialect::anthropic: {
        auto it = req.find("x-api-key");
        if (it != req.end() && it->value() == key) return std::nullopt;
        return fail(req, 401, "invalid x-api-key");
      }
      case dialect::gemini: {
        // Google answers a missing key with 403 and a wrong one with 400, not 401.
        std::optional<std::string_view> given;
        if (auto it = req.find("x-goog-api-key"); it != req.end()) {
          given = it->value();
        } else {
          given = query_param(req.target(), "key");
        }
        if (!given) {
          return fail(req, 403,
                      "Method doesn't allow unregistered callers (callers without established "
                      "identity). Please use API Key or other form of API consumer identity to "
                      "call this API.");
        }
        if (*given == key) return std::nullopt;
        return fail(req, 400, "API key not valid. Please pass a valid API key.");
      }
    }
    return std::nullopt;
  }

  asio::awaitable<after> openai_models(const request& req) {
    if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
    json data = json::array();
    for (const auto& m : p_.config.models) {
      data.push_back(
          {{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", p_.config.name}});
    }
    // Built outside the co_await: GCC rejects braced json temporaries inside await expressions.
    const json out = {{"object", "list"}, {"data", data}};
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  asio::awaitable<after> anthropic_models(const request& req) {
    if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
    json data = json::array();
    for (const auto& m : p_.config.models) {
      data.push_back({{"type", "model"},
                      {"id", m},
                      {"display_name", m},
                      {"created_at", "2025-01-01T00:00:00Z"}});
    }
    json out = {{"data", data},
                {"has_more", false},
                {"first_id", p_.config.models.front()},
                {"last_id", p_.config.models.back()}};
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  asio::awaitable<after> gemini_models(const request& req) {
    if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
    json models = json::array();
    for (const auto& m : p_.config.models) {
      models.push_back({{"name", "models/" + m},
                        {"displayName", m},
                        {"supportedGenerationMethods",
                         {"generateContent", "streamGenerateContent", "countTokens"}}});
    }
    const json out = {{"models", models}};
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  // Shared start of every generation request: counts and records it, checks the key (and
  // Anthropic's version header), picks the fault and applies its delay, reset, status and
  // malformed items. Returns the outcome if the request has been answered; otherwise `f` holds
  // the fault for the streaming items.
  asio::awaitable<std::optional<after>> admit(request& req, const json& body, bool valid, fault& f,
                                              std::string_view malformed_body) {
    ++p_.requests;
    record(req);
    if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
    if (kind() == dialect::anthropic && req.find("anthropic-version") == req.end()) {
      co_return co_await send(fail(req, 400, "anthropic-version: header is required"));
    }

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
      co_return co_await send(fail(req, 400, fault_problem, "sim_fault", nullptr));
    }
    active_ = f;

    if (co_await wait_for(socket(), f.delay)) co_return after::reset;
    if (f.reset) co_return after::reset;
    if (f.status) {
      auto res = fail(req, *f.status, "simulated fault", nullptr, "sim_fault",
                      fault_error_type(*f.status));
      if (f.retry_after) res.set(http::field::retry_after, std::to_string(*f.retry_after));
      co_return co_await send(std::move(res));
    }
    if (f.malformed) {
      co_return co_await send(make(req, http::status::ok, std::string(malformed_body)));
    }
    co_return std::nullopt;
  }

  static json parse_body(const request& req, bool& valid) {
    json body = json::parse(req.body(), nullptr, false);
    valid = !body.is_discarded() && body.is_object();
    return body;
  }

  asio::awaitable<after> chat(request& req) {
    bool valid = false;
    const json body = parse_body(req, valid);
    fault f;
    if (auto done = co_await admit(
            req, body, valid, f,
            R"({"id":"chatcmpl-sim-malformed","object":"chat.completion","choices":[{)")) {
      co_return *done;
    }

    if (!valid) {
      co_return co_await send(fail(req, 400,
                                   "We could not parse the JSON body of your request. (HINT: This "
                                   "likely means you aren't using your HTTP library correctly.)"));
    }
    auto model_it = body.find("model");
    if (model_it == body.end() || !model_it->is_string()) {
      co_return co_await send(fail(req, 400, "you must provide a model parameter", "model"));
    }
    auto messages_it = body.find("messages");
    if (messages_it == body.end() || !messages_it->is_array()) {
      co_return co_await send(fail(req, 400, "'messages' must be an array", "messages"));
    }
    const std::string model = model_it->template get<std::string>();
    if (!p_.has_model(model)) {
      co_return co_await send(fail(
          req, 404, "The model `" + model + "` does not exist or you do not have access to it.",
          "model", "model_not_found"));
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
    openai_reply r{model,
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
      co_return co_await stream(req, openai_stream(r, include_usage && !f.no_usage), f);
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
    if (f.no_usage) out.erase("usage");
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  asio::awaitable<after> embeddings(request& req) {
    bool valid = false;
    const json body = parse_body(req, valid);
    fault f;
    if (auto done = co_await admit(req, body, valid, f, R"({"object":"list","data":[{)")) {
      co_return *done;
    }
    if (!valid) {
      co_return co_await send(fail(req, 400,
                                   "We could not parse the JSON body of your request. (HINT: This "
                                   "likely means you aren't using your HTTP library correctly.)"));
    }
    auto model_it = body.find("model");
    if (model_it == body.end() || !model_it->is_string()) {
      co_return co_await send(fail(req, 400, "you must provide a model parameter", "model"));
    }
    const std::string model = model_it->template get<std::string>();
    if (!p_.has_model(model)) {
      co_return co_await send(fail(
          req, 404, "The model `" + model + "` does not exist or you do not have access to it.",
          "model", "model_not_found"));
    }
    json out;
    std::string problem;  // co_await is not allowed inside a catch block
    try {
      out = embeddings_response(body, model);
    } catch (const request_error& e) {
      problem = e.what();
    }
    if (!problem.empty()) co_return co_await send(fail(req, 400, problem, "input"));
    if (co_await wait_for(socket(), p_.config.ttft)) co_return after::reset;
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  asio::awaitable<after> messages(request& req) {
    bool valid = false;
    const json body = parse_body(req, valid);
    fault f;
    if (auto done = co_await admit(
            req, body, valid, f,
            R"({"id":"msg_sim_malformed","type":"message","role":"assistant","content":[{)")) {
      co_return *done;
    }
    if (!valid) {
      co_return co_await send(
          fail(req, 400, "There was an error parsing the body of your request."));
    }
    anthropic_reply r;
    std::string problem;  // co_await is not allowed inside a catch block
    try {
      r = plan_anthropic_reply(body, p_.config.name, p_.config.reply_tokens,
                               ++g_completion_counter);
    } catch (const request_error& e) {
      problem = e.what();
    }
    if (!problem.empty()) co_return co_await send(fail(req, 400, problem));
    if (!p_.has_model(r.model)) {
      co_return co_await send(fail(req, 404, "model: " + r.model));
    }
    auto stream_it = body.find("stream");
    if (stream_it != body.end() && stream_it->is_boolean() && stream_it->template get<bool>()) {
      co_return co_await stream(req, anthropic_stream(r), f);
    }
    if (co_await wait_for(socket(), p_.config.ttft)) co_return after::reset;
    co_return co_await send(make(req, http::status::ok, anthropic_message(r).dump()));
  }

  // Claude Code and the Anthropic SDK ask for token counts; not a generation, so not counted.
  asio::awaitable<after> count_tokens(request& req) {
    if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
    bool valid = false;
    const json body = parse_body(req, valid);
    if (!valid) {
      co_return co_await send(
          fail(req, 400, "There was an error parsing the body of your request."));
    }
    json out = {{"input_tokens", count_anthropic_prompt_tokens(body)}};
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  asio::awaitable<after> gemini(request& req, const std::string& model, std::string_view method) {
    const bool streamed = method == "streamGenerateContent";
    if (method == "countTokens") {
      if (auto r = reject_key(req)) co_return co_await send(std::move(*r));
      bool valid = false;
      const json body = parse_body(req, valid);
      if (!valid) co_return co_await send(fail(req, 400, "Invalid JSON payload received."));
      json out = {{"totalTokens", count_gemini_prompt_tokens(body)}};
      co_return co_await send(make(req, http::status::ok, out.dump()));
    }
    if (!streamed && method != "generateContent") {
      co_return co_await send(
          fail(req, 404, "Method not found: " + std::string(method) + " on models/" + model));
    }
    bool valid = false;
    const json body = parse_body(req, valid);
    fault f;
    if (auto done = co_await admit(req, body, valid, f,
                                   R"({"candidates":[{"content":{"role":"model","parts":[{)")) {
      co_return *done;
    }
    if (!valid) co_return co_await send(fail(req, 400, "Invalid JSON payload received."));
    if (!p_.has_model(model)) {
      co_return co_await send(fail(req, 404,
                                   "models/" + model +
                                       " is not found for API version v1beta, or is not supported "
                                       "for generateContent."));
    }
    gemini_reply r;
    std::string problem;  // co_await is not allowed inside a catch block
    try {
      r = plan_gemini_reply(body, p_.config.name, model, p_.config.reply_tokens,
                            ++g_completion_counter);
    } catch (const request_error& e) {
      problem = e.what();
    }
    if (!problem.empty()) co_return co_await send(fail(req, 400, problem));
    if (streamed && query_param(req.target(), "alt") == "sse") {
      co_return co_await stream(req, gemini_stream(r), f);
    }
    if (co_await wait_for(socket(), p_.config.ttft)) co_return after::reset;
    const json out = streamed ? gemini_stream_array(r) : gemini_response(r);
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  // Decrements active_streams however the stream ends.
  struct active_guard {
    std::atomic<std::int64_t>& n;
    explicit active_guard(std::atomic<std::int64_t>& c) : n(c) { ++n; }
    ~active_guard() { --n; }
    active_guard(const active_guard&) = delete;
    active_guard& operator=(const active_guard&) = delete;
  };

  asio::awaitable<after> stream(const request& req, const stream_script& s, const fault& f) {
    active_guard guard(p_.active_streams);
    auto cancelled = [&] {
      ++p_.streams_cancelled;
      return after::reset;
    };
    if (co_await wait_for(socket(), p_.config.ttft)) co_return cancelled();

    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "meridian-sim");
    res.set(http::field::content_type,
            f.content_type.empty() ? std::string("text/event-stream") : f.content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    lowest().expires_after(k_write_timeout);
    if (auto [ec, n] = co_await http::async_write_header(stream_, sr, k_tuple); ec) {
      co_return cancelled();
    }
    for (const auto& event : s.prelude) {
      if (!co_await write_chunk(event)) co_return cancelled();
    }

    using clock = std::chrono::steady_clock;
    const bool paced = p_.config.tokens_per_second > 0;
    const auto interval =
        paced ? std::chrono::duration_cast<clock::duration>(
                    std::chrono::duration<double>(1.0 / p_.config.tokens_per_second))
              : clock::duration::zero();
    auto deadline = clock::now();
    const int total = static_cast<int>(s.content.size());
    int sent = 0;
    for (int i = 0; i < total; ++i, sent = i) {
      if (f.cut_after && i == *f.cut_after) break;
      if (f.sse_error && i == *f.sse_error) break;
      if (f.truncate_sse && i == *f.truncate_sse) break;
      if (f.stall_after && i == *f.stall_after) {
        if (co_await wait_for(socket(), f.stall)) co_return cancelled();
        deadline = clock::now();
      } else if (paced && i > 0) {
        deadline += interval;
        if (deadline > clock::now() && co_await wait_until(socket(), deadline)) {
          co_return cancelled();
        }
      }
      if (!co_await write_chunk(s.content[static_cast<std::size_t>(i)])) co_return cancelled();
    }
    if (f.cut_after) {
      ++p_.streams_cut;
      co_return after::cut;
    }
    if (f.sse_error || f.truncate_sse) {
      // Both end the HTTP body cleanly, so only the events themselves tell what went wrong.
      std::string last;
      if (f.sse_error) {
        last = stream_error_event();
      } else {
        const std::string& next = sent < total         ? s.content[static_cast<std::size_t>(sent)]
                                  : s.epilogue.empty() ? std::string("data: {\n\n")
                                                       : s.epilogue.front();
        last = next.substr(0, std::max<std::size_t>(1, next.size() / 2));
      }
      if (!co_await write_chunk(last)) co_return cancelled();
      lowest().expires_after(k_write_timeout);
      if (auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk_last(), k_tuple);
          ec) {
        co_return cancelled();
      }
      ++p_.streams_cut;
      co_return req.keep_alive() ? after::keep_alive : after::close;
    }

    for (const auto& event : s.epilogue) {
      if (!co_await write_chunk(event)) co_return cancelled();
    }
    lowest().expires_after(k_write_timeout);
    if (auto [ec, n] = co_await asio::async_write(stream_, http::make_chunk_last(), k_tuple); ec) {
      co_return cancelled();
    }
    ++p_.streams_completed;
    co_return req.keep_alive() ? after::keep_alive : after::close;
  }

  static response make(const request& req, http::status status, std::string body) {
    response res{status, req.version()};
    res.set(http::field::server, "meridian-sim");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  asio::awaitable<after> send(response res) {
    const bool keep_alive = res.keep_alive();
    if (res.result() == http::status::ok) {
      if (!active_.content_type.empty()) res.set(http::field::content_type, active_.content_type);
      if (active_.oversize && !res.body().empty() && res.body().back() == '}') {
        // Still valid JSON, only too big: the padding is one more member of the object.
        std::string& b = res.body();
        b.pop_back();
        b += R"(,"sim_padding":")";
        b.append(*active_.oversize, 'x');
        b += "\"}";
        res.prepare_payload();
      }
      if (active_.cut_body) {
        // The header promises the whole body; part of it comes, then the connection is reset.
        http::response_serializer<http::string_body> sr{res};
        lowest().expires_after(k_write_timeout);
        if (auto [ec, n] = co_await http::async_write_header(stream_, sr, k_tuple); ec) {
          co_return after::reset;
        }
        const std::size_t len = std::min(*active_.cut_body, res.body().size());
        co_await asio::async_write(stream_, asio::buffer(res.body().data(), len), k_tuple);
        co_return after::reset;
      }
    }
    lowest().expires_after(k_write_timeout);
    auto [ec, n] = co_await http::async_write(stream_, res, k_tuple);
    if (ec) co_return after::reset;
    co_return keep_alive ? after::keep_alive : after::close;
  }

  // An in-band error event in the dialect's shape, as providers send one after a 200.
  std::string stream_error_event() const {
    constexpr std::string_view message = "simulated stream error";
    switch (kind()) {
      case dialect::anthropic:
        return "event: error\ndata: " + anthropic_error_body(529, message) + "\n\n";
      case dialect::gemini:
        return "data: " + gemini_error_body(500, message) + "\r\n\r\n";
      case dialect::openai:
        break;
    }
    return "data: " + error_body(message, "server_error", nullptr, "sim_fault") + "\n\n";
  }

  asio::awaitable<bool> write_chunk(const std::string& event) {
    lowest().expires_after(k_write_timeout);
    auto [ec, n] =
        co_await asio::async_write(stream_, http::make_chunk(asio::buffer(event)), k_tuple);
    co_return !ec;
  }

  provider_state& p_;
  Stream& stream_;
  fault active_;  // the current request's fault; send() applies its whole-answer items
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
    } else if (key == "dialect") {
      try {
        p.dialect = parse_dialect(scalar(v, path));
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
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

namespace {

// UTF-8 bytes of a content value: a string, or the "text" fields of an array of parts/blocks.
std::size_t text_bytes(const json& content) {
  if (content.is_string()) return content.get_ref<const std::string&>().size();
  std::size_t bytes = 0;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (!part.is_object()) continue;
      auto t = part.find("text");
      if (t != part.end() && t->is_string()) bytes += t->get_ref<const std::string&>().size();
    }
  }
  return bytes;
}

// Every message-like item costs 4 tokens of framing plus a token per 4 bytes of text.
int message_tokens(std::size_t bytes) {
  return static_cast<int>(4 + (bytes + 3) / 4);
}

bool has_cache_control(const json& j) {
  if (j.is_object()) {
    if (j.contains("cache_control")) return true;
    for (const auto& [k, v] : j.items()) {
      if (has_cache_control(v)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (has_cache_control(v)) return true;
    }
  }
  return false;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

// Tool input as streamed: the JSON text in three pieces, as Anthropic splits it arbitrarily.
std::vector<std::string> json_fragments(const std::string& text) {
  const std::size_t n = text.size();
  return {text.substr(0, n / 3), text.substr(n / 3, n / 3), text.substr(2 * (n / 3))};
}

std::string anthropic_event(const nlohmann::ordered_json& data) {
  return "event: " + data["type"].get<std::string>() + "\ndata: " + data.dump() + "\n\n";
}

// The Anthropic tool block's position: after the text block when there is one.
bool anthropic_has_text(const anthropic_reply& r) {
  return !r.tokens.empty() || !r.tool;
}

nlohmann::ordered_json anthropic_usage(const anthropic_reply& r, int output_tokens) {
  return {{"input_tokens", r.input_tokens},
          {"cache_creation_input_tokens", r.cache_creation_input_tokens},
          {"cache_read_input_tokens", r.cache_read_input_tokens},
          {"output_tokens", output_tokens}};
}

nlohmann::ordered_json gemini_usage(const gemini_reply& r, int candidates) {
  return {{"promptTokenCount", r.prompt_tokens},
          {"candidatesTokenCount", candidates},
          {"totalTokenCount", r.prompt_tokens + candidates + r.thoughts_tokens()},
          {"thoughtsTokenCount", r.thoughts_tokens()},
          {"cachedContentTokenCount", r.cached_tokens}};
}

nlohmann::ordered_json gemini_chunk(const gemini_reply& r, nlohmann::ordered_json parts,
                                    const std::string* finish_reason, int candidates) {
  nlohmann::ordered_json candidate = {
      {"content", {{"role", "model"}, {"parts", std::move(parts)}}}};
  if (finish_reason) candidate["finishReason"] = *finish_reason;
  candidate["index"] = 0;
  return {{"candidates", nlohmann::ordered_json::array({std::move(candidate)})},
          {"usageMetadata", gemini_usage(r, candidates)},
          {"modelVersion", r.model},
          {"responseId", r.response_id}};
}

nlohmann::ordered_json gemini_function_part(const tool_call& t) {
  return {{"functionCall", {{"name", t.name}, {"args", t.input}}}};
}

nlohmann::ordered_json gemini_thought_part() {
  return {{"text", "thinking..."}, {"thought", true}};
}

// The streamed chunks, split like stream_script: a thought chunk, one chunk per token, then a
// tool call or, for an empty reply, a bare finish.
struct gemini_chunks {
  std::vector<nlohmann::ordered_json> prelude, content, epilogue;
};

gemini_chunks make_gemini_chunks(const gemini_reply& r) {
  using oj = nlohmann::ordered_json;
  gemini_chunks c;
  if (r.thought)
    c.prelude.push_back(gemini_chunk(r, oj::array({gemini_thought_part()}), nullptr, 0));
  const int n = static_cast<int>(r.tokens.size());
  for (int i = 0; i < n; ++i) {
    const bool last = i + 1 == n && !r.tool;
    c.content.push_back(gemini_chunk(r,
                                     oj::array({{{"text", r.tokens[static_cast<std::size_t>(i)]}}}),
                                     last ? &r.finish_reason : nullptr, i + 1));
  }
  if (r.tool) {
    c.epilogue.push_back(gemini_chunk(r, oj::array({gemini_function_part(*r.tool)}),
                                      &r.finish_reason, r.candidates_tokens()));
  } else if (n == 0) {
    c.epilogue.push_back(gemini_chunk(r, oj::array({{{"text", ""}}}), &r.finish_reason, 0));
  }
  return c;
}

// The text of the last user turn; Gemini lets a lone turn omit its role.
std::string last_user_text(const json& turns, const char* content_key, bool missing_role_is_user) {
  if (!turns.is_array()) return {};
  for (auto it = turns.rbegin(); it != turns.rend(); ++it) {
    if (!it->is_object()) continue;
    auto role = it->find("role");
    const bool user = role == it->end() ? missing_role_is_user
                                        : role->is_string() && role->get<std::string>() == "user";
    if (user && it->contains(content_key)) return content_text((*it)[content_key]);
  }
  return {};
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string base64(const std::string& bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k_alphabet[(n >> s) & 63];
  }
  if (i < bytes.size()) {
    auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? k_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

std::string_view dialect_name(dialect d) {
  switch (d) {
    case dialect::openai:
      return "openai";
    case dialect::anthropic:
      return "anthropic";
    case dialect::gemini:
      return "gemini";
  }
  return "openai";
}

dialect parse_dialect(std::string_view text) {
  for (auto d : {dialect::openai, dialect::anthropic, dialect::gemini}) {
    if (text == dialect_name(d)) return d;
  }
  throw std::invalid_argument("unknown dialect '" + std::string(text) +
                              "' (use openai, anthropic or gemini)");
}

bool mentions_weather(std::string_view text) {
  constexpr std::string_view word = "weather";
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    bool match = true;
    for (std::size_t j = 0; j < word.size() && match; ++j) {
      match = std::tolower(static_cast<unsigned char>(text[i + j])) == word[j];
    }
    if (match) return true;
  }
  return false;
}

// Anthropic ----------------------------------------------------------------------------------

int anthropic_reply::output_tokens() const {
  return static_cast<int>(tokens.size()) + (tool ? k_tool_call_tokens : 0);
}

int count_anthropic_prompt_tokens(const nlohmann::json& request) {
  if (!request.is_object()) return 0;
  int total = 0;
  if (auto it = request.find("messages"); it != request.end()) total += count_prompt_tokens(*it);
  if (auto it = request.find("system"); it != request.end() && !it->is_null()) {
    total += message_tokens(text_bytes(*it));
  }
  return total;
}

anthropic_reply plan_anthropic_reply(const nlohmann::json& request, std::string_view provider,
                                     int reply_tokens_config, std::uint64_t serial) {
  if (!request.is_object()) throw request_error("request body must be a JSON object");
  auto model = request.find("model");
  if (model == request.end() || !model->is_string()) throw request_error("model: Field required");
  auto messages = request.find("messages");
  if (messages == request.end() || !messages->is_array()) {
    throw request_error("messages: Field required");
  }
  auto max_tokens = request.find("max_tokens");
  if (max_tokens == request.end() || !max_tokens->is_number_integer()) {
    throw request_error("max_tokens: Field required");
  }
  const auto cap = max_tokens->get<std::int64_t>();
  if (cap < 1) throw request_error("max_tokens: Input should be greater than or equal to 1");

  anthropic_reply r;
  r.id = "msg_sim_" + std::to_string(serial);
  r.model = model->get<std::string>();
  int count = std::max(0, reply_tokens_config);
  const bool capped = cap < count;
  if (capped) count = static_cast<int>(cap);
  const std::string last_user = last_user_text(*messages, "content", false);

  std::string tool_name;
  if (auto tools = request.find("tools"); tools != request.end() && tools->is_array()) {
    for (const auto& t : *tools) {
      if (t.is_object() && t.contains("name") && t["name"].is_string()) {
        tool_name = t["name"].get<std::string>();
        break;
      }
    }
  }
  if (!tool_name.empty() && mentions_weather(last_user)) {
    // A short preamble (the greeting without the echo) before the call, as Claude tends to.
    r.tokens = reply_tokens(provider, r.model, last_user, std::min(count, 8));
    r.tool = tool_call{"toolu_sim_" + std::to_string(serial), tool_name, {{"location", "Paris"}}};
    r.stop_reason = "tool_use";
  } else {
    r.tokens = reply_tokens(provider, r.model, last_user, count);
    r.stop_reason = capped ? "max_tokens" : "end_turn";
  }

  const int prompt = count_anthropic_prompt_tokens(request);
  if (has_cache_control(request)) {
    auto system = request.find("system");
    if (system != request.end() && !system->is_null()) {
      r.cache_read_input_tokens = message_tokens(text_bytes(*system));
    }
  }
  r.input_tokens = prompt - r.cache_read_input_tokens;
  return r;
}

nlohmann::json anthropic_message(const anthropic_reply& r) {
  json content = json::array();
  if (anthropic_has_text(r)) content.push_back({{"type", "text"}, {"text", join(r.tokens)}});
  if (r.tool) {
    content.push_back({{"type", "tool_use"},
                       {"id", r.tool->id},
                       {"name", r.tool->name},
                       {"input", r.tool->input}});
  }
  return {{"id", r.id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", r.model},
          {"content", std::move(content)},
          {"stop_reason", r.stop_reason},
          {"stop_sequence", nullptr},
          {"usage", anthropic_usage(r, r.output_tokens())}};
}

stream_script anthropic_stream(const anthropic_reply& r) {
  using oj = nlohmann::ordered_json;
  stream_script s;
  s.prelude.push_back(anthropic_event({{"type", "message_start"},
                                       {"message",
                                        {{"id", r.id},
                                         {"type", "message"},
                                         {"role", "assistant"},
                                         {"model", r.model},
                                         {"content", oj::array()},
                                         {"stop_reason", nullptr},
                                         {"stop_sequence", nullptr},
                                         {"usage", anthropic_usage(r, 1)}}}}));
  const bool text = anthropic_has_text(r);
  if (text) {
    s.prelude.push_back(anthropic_event({{"type", "content_block_start"},
                                         {"index", 0},
                                         {"content_block", {{"type", "text"}, {"text", ""}}}}));
  }
  s.prelude.push_back(anthropic_event({{"type", "ping"}}));
  for (const auto& t : r.tokens) {
    s.content.push_back(anthropic_event({{"type", "content_block_delta"},
                                         {"index", 0},
                                         {"delta", {{"type", "text_delta"}, {"text", t}}}}));
  }
  if (text) s.epilogue.push_back(anthropic_event({{"type", "content_block_stop"}, {"index", 0}}));
  if (r.tool) {
    const int index = text ? 1 : 0;
    s.epilogue.push_back(anthropic_event({{"type", "content_block_start"},
                                          {"index", index},
                                          {"content_block",
                                           {{"type", "tool_use"},
                                            {"id", r.tool->id},
                                            {"name", r.tool->name},
                                            {"input", oj::object()}}}}));
    for (const auto& piece : json_fragments(r.tool->input.dump())) {
      s.epilogue.push_back(
          anthropic_event({{"type", "content_block_delta"},
                           {"index", index},
                           {"delta", {{"type", "input_json_delta"}, {"partial_json", piece}}}}));
    }
    s.epilogue.push_back(anthropic_event({{"type", "content_block_stop"}, {"index", index}}));
  }
  s.epilogue.push_back(
      anthropic_event({{"type", "message_delta"},
                       {"delta", {{"stop_reason", r.stop_reason}, {"stop_sequence", nullptr}}},
                       {"usage", {{"output_tokens", r.output_tokens()}}}}));
  s.epilogue.push_back(anthropic_event({{"type", "message_stop"}}));
  return s;
}

std::string anthropic_error_body(int status, std::string_view message) {
  std::string_view type = "invalid_request_error";
  switch (status) {
    case 401:
      type = "authentication_error";
      break;
    case 402:
      type = "billing_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 404:
      type = "not_found_error";
      break;
    case 413:
      type = "request_too_large";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 504:
      type = "timeout_error";
      break;
    case 529:
      type = "overloaded_error";
      break;
    default:
      if (status >= 500) type = "api_error";
  }
  nlohmann::ordered_json j = {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
  return j.dump();
}

// Gemini -------------------------------------------------------------------------------------

int gemini_reply::candidates_tokens() const {
  return static_cast<int>(tokens.size()) + (tool ? k_tool_call_tokens : 0);
}

int gemini_reply::thoughts_tokens() const {
  return thought ? k_thought_tokens : 0;
}

int count_gemini_prompt_tokens(const nlohmann::json& request) {
  if (!request.is_object()) return 0;
  int total = 0;
  if (auto it = request.find("contents"); it != request.end() && it->is_array()) {
    for (const auto& c : *it) {
      total += message_tokens(c.is_object() && c.contains("parts") ? text_bytes(c["parts"]) : 0);
    }
  }
  if (auto it = request.find("systemInstruction"); it != request.end() && !it->is_null()) {
    total += message_tokens(it->is_object() && it->contains("parts") ? text_bytes((*it)["parts"])
                                                                     : text_bytes(*it));
  }
  return total;
}

gemini_reply plan_gemini_reply(const nlohmann::json& request, std::string_view provider,
                               std::string_view model, int reply_tokens_config,
                               std::uint64_t serial) {
  if (!request.is_object()) throw request_error("Invalid JSON payload received.");
  auto contents = request.find("contents");
  if (contents == request.end() || !contents->is_array() || contents->empty()) {
    throw request_error("* GenerateContentRequest.contents: contents is not specified");
  }
  gemini_reply r;
  r.response_id = "sim-" + std::to_string(serial);
  r.model = std::string(model);

  int count = std::max(0, reply_tokens_config);
  bool capped = false;
  bool thinking_config = false;
  if (auto gc = request.find("generationConfig"); gc != request.end() && gc->is_object()) {
    if (auto m = gc->find("maxOutputTokens"); m != gc->end() && m->is_number_integer()) {
      auto cap = m->get<std::int64_t>();
      if (cap >= 0 && cap < count) {
        count = static_cast<int>(cap);
        capped = true;
      }
    }
    if (auto tc = gc->find("thinkingConfig"); tc != gc->end() && tc->is_object()) {
      // A budget of 0 switches thinking off on Flash models.
      auto budget = tc->find("thinkingBudget");
      thinking_config = !(budget != tc->end() && budget->is_number() && *budget == 0);
    }
  }
  r.thought = thinking_config || model.find("thinking") != std::string_view::npos ||
              model.find("pro") != std::string_view::npos;

  const std::string last_user = last_user_text(*contents, "parts", true);
  std::string tool_name;
  if (auto tools = request.find("tools"); tools != request.end() && tools->is_array()) {
    for (const auto& t : *tools) {
      if (!t.is_object()) continue;
      for (const char* key : {"functionDeclarations", "function_declarations"}) {
        auto decls = t.find(key);
        if (decls == t.end() || !decls->is_array()) continue;
        for (const auto& d : *decls) {
          if (d.is_object() && d.contains("name") && d["name"].is_string()) {
            tool_name = d["name"].get<std::string>();
            break;
          }
        }
        if (!tool_name.empty()) break;
      }
      if (!tool_name.empty()) break;
    }
  }
  if (!tool_name.empty() && mentions_weather(last_user)) {
    r.tool = tool_call{"", tool_name, {{"location", "Paris"}}};
    r.finish_reason = "STOP";
  } else {
    r.tokens = reply_tokens(provider, model, last_user, count);
    r.finish_reason = capped ? "MAX_TOKENS" : "STOP";
  }

  r.prompt_tokens = count_gemini_prompt_tokens(request);
  if (auto cc = request.find("cachedContent"); cc != request.end() && cc->is_string()) {
    auto si = request.find("systemInstruction");
    if (si != request.end() && !si->is_null()) {
      json only_system = {{"systemInstruction", *si}};
      r.cached_tokens = count_gemini_prompt_tokens(only_system);
    }
  }
  return r;
}

nlohmann::json gemini_response(const gemini_reply& r) {
  using oj = nlohmann::ordered_json;
  oj parts = oj::array();
  if (r.thought) parts.push_back(gemini_thought_part());
  if (!r.tokens.empty() || !r.tool) parts.push_back({{"text", join(r.tokens)}});
  if (r.tool) parts.push_back(gemini_function_part(*r.tool));
  return json::parse(
      gemini_chunk(r, std::move(parts), &r.finish_reason, r.candidates_tokens()).dump());
}

stream_script gemini_stream(const gemini_reply& r) {
  const auto chunks = make_gemini_chunks(r);
  auto event = [](const nlohmann::ordered_json& j) { return "data: " + j.dump() + "\r\n\r\n"; };
  stream_script s;
  for (const auto& c : chunks.prelude) s.prelude.push_back(event(c));
  for (const auto& c : chunks.content) s.content.push_back(event(c));
  for (const auto& c : chunks.epilogue) s.epilogue.push_back(event(c));
  return s;
}

nlohmann::json gemini_stream_array(const gemini_reply& r) {
  const auto chunks = make_gemini_chunks(r);
  json out = json::array();
  for (const auto* part : {&chunks.prelude, &chunks.content, &chunks.epilogue}) {
    for (const auto& c : *part) out.push_back(json::parse(c.dump()));
  }
  return out;
}

std::string gemini_error_body(int status, std::string_view message) {
  std::string_view code = "UNKNOWN";
  switch (status) {
    case 400:
      code = "INVALID_ARGUMENT";
      break;
    case 401:
      code = "UNAUTHENTICATED";
      break;
    case 403:
      code = "PERMISSION_DENIED";
      break;
    case 404:
      code = "NOT_FOUND";
      break;
    case 409:
      code = "ABORTED";
      break;
    case 429:
      code = "RESOURCE_EXHAUSTED";
      break;
    case 499:
      code = "CANCELLED";
      break;
    case 500:
      code = "INTERNAL";
      break;
    case 501:
      code = "UNIMPLEMENTED";
      break;
    case 503:
      code = "UNAVAILABLE";
      break;
    case 504:
      code = "DEADLINE_EXCEEDED";
      break;
    default:
      if (status >= 400 && status < 500) code = "FAILED_PRECONDITION";
      if (status >= 500) code = "INTERNAL";
  }
  nlohmann::ordered_json j = {
      {"error", {{"code", status}, {"message", message}, {"status", code}}}};
  return j.dump();
}

// OpenAI embeddings --------------------------------------------------------------------------

std::vector<double> embedding_vector(std::string_view text) {
  const std::uint64_t seed = fnv1a(text);
  std::vector<double> v(k_embedding_dimensions);
  double norm = 0;
  for (int d = 0; d < k_embedding_dimensions; ++d) {
    const std::uint64_t x = splitmix64(seed + static_cast<std::uint64_t>(d));
    const double unit = static_cast<double>(x >> 11) * 0x1.0p-53;  // [0, 1)
    v[static_cast<std::size_t>(d)] = unit * 2 - 1;
    norm += v[static_cast<std::size_t>(d)] * v[static_cast<std::size_t>(d)];
  }
  norm = std::sqrt(norm);
  for (auto& x : v) x = std::round((norm > 0 ? x / norm : 0) * 1e6) / 1e6;
  return v;
}

nlohmann::json embeddings_response(const nlohmann::json& request, std::string_view model) {
  std::vector<std::string> inputs;
  auto input = request.is_object() ? request.find("input") : request.end();
  if (request.is_object() && input != request.end() && input->is_string()) {
    inputs.push_back(input->get<std::string>());
  } else if (request.is_object() && input != request.end() && input->is_array() &&
             !input->empty()) {
    for (const auto& item : *input) {
      if (!item.is_string()) {
        throw request_error("'input' must be a string or an array of strings");
      }
      inputs.push_back(item.get<std::string>());
    }
  } else {
    throw request_error("'input' must be a string or an array of strings");
  }
  bool as_base64 = false;
  if (auto fmt = request.find("encoding_format"); fmt != request.end() && !fmt->is_null()) {
    if (*fmt == "base64") {
      as_base64 = true;
    } else if (*fmt != "float") {
      throw request_error("'encoding_format' must be 'float' or 'base64'");
    }
  }
  json data = json::array();
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    tokens += (inputs[i].size() + 3) / 4;
    const auto v = embedding_vector(inputs[i]);
    json embedding;
    if (as_base64) {
      // OpenAI's SDKs ask for base64 by default: packed little-endian float32.
      std::string bytes;
      for (double x : v) {
        const auto f = static_cast<float>(x);
        std::uint32_t bits = 0;
        std::memcpy(&bits, &f, sizeof bits);
        for (int b = 0; b < 4; ++b) bytes += static_cast<char>((bits >> (8 * b)) & 0xff);
      }
      embedding = base64(bytes);
    } else {
      embedding = v;
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
}

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
    } else if (key == "sse_error" && flag) {
      f.sse_error = k_default_fault_events;
    } else if (key == "truncate_sse" && flag) {
      f.truncate_sse = k_default_fault_events;
    } else if (key == "no_usage" && flag) {
      f.no_usage = true;
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
    } else if (key == "cut_body") {
      f.cut_body = static_cast<std::size_t>(parse_int(key, value));
    } else if (key == "oversize") {
      f.oversize = static_cast<std::size_t>(parse_int(key, value));
    } else if (key == "sse_error") {
      f.sse_error = parse_int(key, value);
    } else if (key == "truncate_sse") {
      f.truncate_sse = parse_int(key, value);
    } else if (key == "content_type") {
      // The value becomes a header: refuse what could split it.
      if (value.empty() || std::any_of(value.begin(), value.end(),
                                       [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        throw std::invalid_argument("fault key 'content_type' needs a printable media type");
      }
      f.content_type = std::string(value);
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
  int total = 0;
  for (const auto& m : messages) {
    std::size_t bytes = 0;
    if (m.is_object()) {
      auto it = m.find("content");
      if (it != m.end()) bytes = text_bytes(*it);
    }
    total += message_tokens(bytes);
  }
  return total;
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
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("provider " + pc.name + ": cannot listen on " + options.host + ":" +
                               std::to_string(pc.port) + ": " + e.code().message());
    }
    providers.push_back(std::move(p));
  }

  std::string url_host = options.host;
  if (address.is_v6()) url_host = "[" + url_host + "]";
  for (const auto& p : providers) {
    const auto port = p->acceptor->local_endpoint().port();
    // The URL is the base a gateway config would use for the provider's dialect.
    const char* base = p->config.dialect == dialect::gemini ? "/v1beta" : "/v1";
    nlohmann::ordered_json line = {{"event", "listening"},
                                   {"provider", p->config.name},
                                   {"port", port},
                                   {"url", std::string(p->tls ? "https" : "http") + "://" +
                                               url_host + ":" + std::to_string(port) + base},
                                   {"dialect", dialect_name(p->config.dialect)}};
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
