// The server: one listener per simulated provider, plain or TLS sessions, and the request
// handler that routes each dialect's endpoints, checks keys, applies faults and paces streams.
#include "tools/sim/detail.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <variant>

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
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

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
  std::mutex cache_mutex;                      // guards prefixes
  std::unordered_set<std::uint64_t> prefixes;  // the prompt cache: hashes of leading messages
  std::atomic<std::uint64_t> cached_tokens{0};
  json last_request = nullptr;

  bool has_model(std::string_view m) const {
    return std::find(config.models.begin(), config.models.end(), m) != config.models.end();
  }
};

std::atomic<std::uint64_t> g_completion_counter{0};

// What the session does after a request has been handled.
enum class after { keep_alive, close, cut, reset };

using request = http::request<http::string_body>;

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
        if (post && target == "/v1/responses") co_return co_await responses(req);
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
              {"cached_tokens", p_.cached_tokens.load()},
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
        body = detail::openai_error_body(message, openai_type, param, code);
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

  // The error each dialect's documentation shows for a prompt over the window, a content
  // filter's refusal and a spent balance (tests/fixtures/errors/ keeps the bodies they come from).
  response documented_error(const request& req, const std::string& what) const {
    const bool anthropic = kind() == dialect::anthropic, gemini = kind() == dialect::gemini;
    if (what == "context_length") {
      if (anthropic) return fail(req, 400, "prompt is too long: 210000 tokens > 200000 maximum");
      if (gemini)
        return fail(req, 400,
                    "The input token count (1200000) exceeds the maximum number of tokens allowed "
                    "(1048576).");
      return fail(req, 400,
                  "This model's maximum context length is 8192 tokens. However, your messages "
                  "resulted in 9000 tokens. Please reduce the length of the messages.",
                  "messages", "context_length_exceeded");
    }
    if (what == "content_policy")  // Qwen's (DashScope) answer; the others refuse in a 200
      return fail(req, 400, "Input data may contain inappropriate content.", nullptr,
                  "data_inspection_failed", "data_inspection_failed");
    if (anthropic)
      return fail(req, 400,
                  "Your credit balance is too low to access the Anthropic API. Please go to Plans "
                  "& Billing to upgrade or purchase credits.");
    return fail(req, 429,
                "You exceeded your current quota, please check your plan and billing details.",
                nullptr, "insufficient_quota", "insufficient_quota");
  }

  // The simulated prompt cache: the tokens of the longest run of leading messages (with the
  // tools) this provider has seen, then every leading run of this request is remembered.
  int cached_prefix_tokens(const json& body) {
    const json& messages = body["messages"];
    if (!messages.is_array() || messages.size() < 2) return 0;
    const std::string tools = body.contains("tools") ? body["tools"].dump() : "";
    std::vector<std::uint64_t> hashes;
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&](std::string_view s) {
      for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
      }
    };
    mix(tools);
    for (const auto& m : messages) {
      mix(m.dump());
      hashes.push_back(h);
    }
    int cached = 0;
    std::lock_guard lock(p_.cache_mutex);
    for (std::size_t k = hashes.size() - 1; k > 0; --k)
      if (p_.prefixes.count(hashes[k - 1])) {
        cached = count_prompt_tokens(json(std::vector<json>(
            messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(k))));
        break;
      }
    if (p_.prefixes.size() > 100000) p_.prefixes.clear();
    for (auto x : hashes) p_.prefixes.insert(x);
    p_.cached_tokens += static_cast<std::uint64_t>(cached);
    return cached;
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
    const std::uint64_t nth = ++p_.requests;
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
    if (!f.applies_to(nth)) f = fault{};
    active_ = f;

    if (co_await wait_for(socket(), f.delay)) co_return after::reset;
    if (f.reset) co_return after::reset;
    if (f.status) {
      auto res = fail(req, *f.status, "simulated fault", nullptr, "sim_fault",
                      detail::fault_error_type(*f.status));
      if (f.retry_after) res.set(http::field::retry_after, std::to_string(*f.retry_after));
      co_return co_await send(std::move(res));
    }
    if (!f.error.empty()) co_return co_await send(documented_error(req, f.error));
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

    openai_reply r =
        plan_openai_reply(body, p_.config.name, p_.config.reply_tokens, ++g_completion_counter);
    if (p_.config.prompt_cache) r.cached_tokens = cached_prefix_tokens(body);

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
    json out = openai_completion(r);
    if (f.no_usage) out.erase("usage");
    co_return co_await send(make(req, http::status::ok, out.dump()));
  }

  // POST /v1/responses: the same plan as chat completions, in the Responses shape.
  asio::awaitable<after> responses(request& req) {
    bool valid = false;
    const json body = parse_body(req, valid);
    fault f;
    if (auto done = co_await admit(req, body, valid, f, R"({"id":"resp_sim_malformed","output":[)"))
      co_return *done;
    if (!valid) co_return co_await send(fail(req, 400, "We could not parse the JSON body."));
    auto model_it = body.find("model");
    if (model_it == body.end() || !model_it->is_string())
      co_return co_await send(fail(req, 400, "Missing required parameter: 'model'.", "model"));
    const std::string model = model_it->template get<std::string>();
    if (!p_.has_model(model))
      co_return co_await send(fail(
          req, 404, "The model `" + model + "` does not exist or you do not have access to it.",
          "model", "model_not_found"));
    if (!body.contains("input"))
      co_return co_await send(fail(req, 400, "Missing required parameter: 'input'.", "input"));
    const openai_reply r = plan_openai_reply(responses_as_chat(body), p_.config.name,
                                             p_.config.reply_tokens, ++g_completion_counter);
    auto stream_it = body.find("stream");
    if (stream_it != body.end() && stream_it->is_boolean() && stream_it->template get<bool>())
      co_return co_await stream(req, responses_stream(r, body), f);
    if (co_await wait_for(socket(), p_.config.ttft)) co_return after::reset;
    json out = responses_response(r, body);
    if (f.no_usage) out["usage"] = nullptr;
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
    return "data: " + detail::openai_error_body(message, "server_error", nullptr, "sim_fault") +
           "\n\n";
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

}  // namespace

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
