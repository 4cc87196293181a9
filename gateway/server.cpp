// Listeners, sessions and endpoints. One io_context per thread, each with its own acceptor
// (SO_REUSEPORT) and upstream pool, so a request never crosses threads or takes a lock.
#include "gateway/server.hpp"

#include <openssl/crypto.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "gateway/asio.hpp"
#include "gateway/http_util.hpp"
#include "gateway/limits.hpp"
#include "gateway/upstream.hpp"
#include "policies/resolve.hpp"
#include "policies/router.hpp"
#include "providers/anthropic_inbound.hpp"
#include "providers/dialect.hpp"
#include "providers/openai.hpp"
#include "providers/sse.hpp"
#include "stats/accounting.hpp"
#include "stats/api.hpp"
#include "stats/energy.hpp"
#include "stats/estimate.hpp"
#include "stats/ledger.hpp"
#include "stats/metrics.hpp"

namespace meridian::gateway {
namespace {

constexpr std::string_view k_version = "0.1.0";
constexpr std::size_t k_max_upstream_body = 32u << 20;  // a whole (non-streamed) answer
constexpr std::size_t k_read_chunk = 16u << 10;
constexpr std::size_t k_max_attempts = 6;  // bounds a request's time even without a route cap
constexpr int k_max_interim = 8;  // 1xx responses skipped before a final one; more is an attack

// Header values must not carry CR, LF or other control characters.
std::string header_safe(std::string s) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (s.size() > 512) s.resize(512);
  return s;
}

// Every metric the gateway writes, declared in one place.
struct gateway_metrics {
  explicit gateway_metrics(stats::registry& r)
      : requests(r.counter("meridian_requests_total", "Requests answered, by outcome.",
                           {"route", "provider", "model", "region", "status"})),
        upstream_errors(r.counter("meridian_upstream_errors_total",
                                  "Failed upstream exchanges, by kind.", {"provider", "kind"})),
        fallbacks(r.counter("meridian_fallbacks_total",
                            "Moves from one candidate to the next within a request.",
                            {"from", "to", "reason"})),
        config_reloads(
            r.counter("meridian_config_reloads_total", "Config reloads, by result.", {"result"})),
        inflight(r.gauge("meridian_inflight_requests", "Requests being served now.")),
        upstream_idle(r.gauge("meridian_upstream_idle_connections",
                              "Idle keep-alive connections to providers, summed over threads.")),
        provider_up(r.gauge("meridian_provider_up",
                            "1 while at least one of the provider's circuits is closed.",
                            {"provider"})),
        build_info(
            r.gauge("meridian_build_info", "Always 1; the version is a label.", {"version"})),
        duration(r.histogram("meridian_request_duration_seconds",
                             "Time from request to last byte, routed requests.", {"provider"},
                             stats::latency_buckets())),
        ttft(r.histogram("meridian_time_to_first_token_seconds",
                         "Time from request to the first streamed event.", {"provider"},
                         stats::latency_buckets())),
        overhead(r.histogram("meridian_overhead_seconds",
                             "Gateway time minus upstream time per routed request.", {},
                             {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                              0.005, 0.01, 0.05})),
        key_cost(r.counter("meridian_key_cost_usd_total", "USD spent through each virtual key.",
                           {"key"})),
        key_rejections(r.counter("meridian_key_rejections_total",
                                 "Requests refused by a key's limits: rpm, tpm or budget.",
                                 {"key", "reason"})),
        auth_failures(r.counter("meridian_auth_failures_total",
                                "Requests refused for a missing or unknown key.", {"reason"})),
        accept_errors(r.counter("meridian_accept_errors_total",
                                "Connections the listener could not accept, by reason (emfile: "
                                "out of descriptors).",
                                {"listener", "reason"})),
        state_errors(r.counter("meridian_state_errors_total",
                               "Rate-limit store failures, by operation and what was done "
                               "(admitted: on_error open; refused: on_error closed).",
                               {"op", "action"})) {
    build_info.set({std::string(k_version)}, 1);
    inflight.set({}, 0);
    upstream_idle.set({}, 0);
  }
  stats::counter_family& requests;
  stats::counter_family& upstream_errors;
  stats::counter_family& fallbacks;
  stats::counter_family& config_reloads;
  stats::gauge_family& inflight;
  stats::gauge_family& upstream_idle;  // read from the pools at scrape time, not kept up to date
  stats::gauge_family& provider_up;
  stats::gauge_family& build_info;
  stats::histogram_family& duration;
  stats::histogram_family& ttft;
  stats::histogram_family& overhead;
  stats::counter_family& key_cost;
  stats::counter_family& key_rejections;
  stats::counter_family& auth_failures;
  stats::counter_family& accept_errors;
  stats::counter_family& state_errors;
};

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

struct worker {
  explicit worker() : ioc(1), pool(ioc.get_executor()) {}
  net::io_context ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<tcp::acceptor> admin_acceptor;  // worker 0 only, when server.admin_listen is set
  upstream_pool pool;
  std::unordered_set<beast::tcp_stream*> idle;  // sessions waiting for a request; drain closes them
  std::thread thread;
};

// One request being served: what every handler reads and the access-log line it fills in.
struct exchange {
  worker& w;
  beast::tcp_stream& client;
  http::request<http::string_body>& req;
  const snapshot& snap;
  steady::time_point start;
  bool keep_alive;
  access_record log;
  const providers::provider* provider = nullptr;
  const providers::model_info* model = nullptr;
  providers::usage tokens;
  double upstream_seconds = 0;
  std::string retry_after;           // forwarded from an upstream 429
  bool anthropic_api = false;        // /v1/messages: answers and errors in Anthropic's shape
  bool on_admin_listener = false;    // arrived on server.admin_listen
  bool admin_caller = false;         // presented the admin token where a key could go
  std::size_t emitted = 0;           // attempts already handed to accounting
  std::uint64_t est_prompt = 0;      // the router's prompt estimate, used when usage is missing
  stats::text_tally relayed;         // generated text relayed to the client, for the same
  std::uint64_t relayed_chunks = 0;  // canonical chunks relayed (a cut stream was still served)
  std::optional<std::uint64_t> output_ceiling;  // estimated output tokens past which a stream
                                                // is cut (an upstream ignoring max_tokens)
  std::uint64_t buffered = 0;        // bytes of whole answers charged to the global cap
  bool streamed = false;             // the answer went out as a stream
  bool stream_complete = false;      // ... and its final event arrived (its usage is final)
  bool estimated = false;            // `tokens` is Meridian's estimate, told to the client too
  std::string route_explain;         // x-meridian-route: policy and why
  const virtual_key* key = nullptr;  // the authenticated virtual key, if any
  std::shared_ptr<const key_table> admin_keys;  // keeps an admin-created key alive meanwhile
  std::optional<admission> limits;              // for the x-ratelimit-* headers
  std::optional<reservation> held;              // budget reserved until the request ends
  budget_window window;                         // the budget period `held` belongs to
  double cost_usd = 0;                          // summed over attempts; settles `held`
};

class server {
 public:
  server(std::shared_ptr<const snapshot> snap, std::string config_path, std::string config_text)
      : snap_(std::move(snap)),
        config_path_(std::move(config_path)),
        loaded_text_(std::move(config_text)),
        health_(policies::health_options_from(snap_.load()->cfg->health)),
        metrics_(registry_) {
    // The ledger and its counters live as long as the process, not one config snapshot.
    const auto& st = snap_.load()->cfg->stats;
    if (!st.ledger_path.empty() || !st.ledger_postgres.empty())
      ledger_ = std::make_unique<stats::ledger>(stats::ledger_options_from(st));
    accounting_ = std::make_unique<stats::accounting>(registry_, ledger_.get());
    // Where limits and budgets count lives as long as the process; `state` needs a restart.
    const auto& state = snap_.load()->cfg->state;
    state_ = state.url == "local" ? make_local_state() : make_redis_state(state);
    const std::string& token_env = snap_.load()->cfg->auth.admin_token_env;
    if (const char* token = std::getenv(token_env.c_str()); token && *token)
      admin_token_ = sha256(token);
  }
  int run();

 private:
  using handler = awaitable<void> (server::*)(exchange&);
  struct route {
    http::verb method;
    std::string_view path;
    handler fn;
  };
  static const std::vector<route>& routes();

  awaitable<void> accept_loop(worker& w, tcp::acceptor& acceptor, bool admin);
  awaitable<void> session(worker& w, tcp::socket socket, bool admin);
  awaitable<void> dispatch(exchange& ex, bool admin);
  static const std::vector<route>& admin_routes();
  awaitable<void> admin_reload(exchange& ex);
  awaitable<void> admin_config(exchange& ex);
  awaitable<void> admin_keys_list(exchange& ex);
  awaitable<void> admin_keys_create(exchange& ex);
  awaitable<void> admin_keys_revoke(exchange& ex);
  awaitable<void> answer_on_control(exchange& ex,
                                    std::function<std::pair<int, std::string>()> work);
  std::pair<int, std::string> keys_listing();
  std::pair<int, std::string> key_creation(const new_key& made);
  std::pair<int, std::string> key_revocation(const std::string& name);
  bool admin_authorized(exchange& ex, bool always);
  std::string refresh_admin_keys();
  void seed_budgets();
  void watch_ledger();

  // Virtual keys: each returns false after answering the client itself.
  awaitable<bool> authenticate(exchange& ex);
  awaitable<bool> admit(exchange& ex);
  // `choices`: the request's `n`, each choice up to max_output tokens.
  awaitable<bool> reserve_budget(exchange& ex, std::size_t prompt_bytes,
                                 std::optional<std::uint64_t> max_output,
                                 const std::vector<const providers::model_info*>& models,
                                 std::uint64_t choices = 1);
  awaitable<bool> state_failed(exchange& ex, std::string_view op, const state_unavailable& e);
  void settle(exchange& ex);
  bool region_allowed(const exchange& ex, const providers::provider& p) const;
  std::string reload(std::string_view trigger, bool& applied);
  void watch_config(std::stop_token stop, std::promise<void>* started);

  awaitable<void> chat(exchange& ex);
  awaitable<void> messages(exchange& ex);
  awaitable<void> count_tokens(exchange& ex);
  awaitable<void> embeddings(exchange& ex);
  awaitable<void> list_models(exchange& ex);
  awaitable<void> healthz(exchange& ex);
  awaitable<void> readyz(exchange& ex);
  awaitable<void> metrics(exchange& ex);

  // One upstream request, up to its response header.
  struct upstream_exchange {
    std::unique_ptr<upstream_conn> conn;
    std::unique_ptr<http::response_parser<http::buffer_body>> parser;
    upstream_fault fault = upstream_fault::none;
    std::string detail;
  };
  http::request<http::string_body> make_upstream_request(const exchange& ex,
                                                         const providers::provider& p,
                                                         providers::upstream_request&& r,
                                                         bool stream) const;
  awaitable<upstream_exchange> open_exchange(exchange& ex, const providers::provider& p,
                                             http::request<http::string_body>& up,
                                             steady::time_point deadline);
  awaitable<error_code> read_body(exchange& ex, upstream_exchange& x, std::string& body,
                                  steady::time_point deadline);
  void finish_exchange(exchange& ex, upstream_exchange& x, bool reusable);
  awaitable<void> send_resolve_error(exchange& ex, const policies::resolve_error& e);
  awaitable<void> send_overloaded(exchange& ex);
  awaitable<void> send_fault(exchange& ex, const providers::provider& p, upstream_fault fault,
                             const std::string& detail);
  awaitable<void> serve_chat(exchange& ex, std::string_view body,
                             const providers::chat_request& req);
  void record_success(exchange& ex, const providers::provider& p, const providers::model_info& m,
                      steady::time_point attempt_start, std::optional<double> first_byte_ms);
  void update_provider_up(const providers::provider& p);
  void emit_attempt(exchange& ex, std::string_view outcome, unsigned status);
  void estimate_tokens(exchange& ex);
  awaitable<void> stats_share(exchange& ex);
  awaitable<void> stats_daily(exchange& ex);
  awaitable<void> generation(exchange& ex);
  awaitable<void> dashboard(exchange& ex);
  awaitable<void> send_stats(exchange& ex, stats::result<std::string> answer,
                             std::string_view type);
  awaitable<void> relay_stream(exchange& ex, const providers::dialect& d, upstream_exchange& x,
                               steady::time_point deadline, bool& reusable);
  awaitable<void> send(exchange& ex, http::status status, std::string body,
                       std::string_view content_type = "application/json");
  awaitable<void> send_error(exchange& ex, http::status status, std::string_view message,
                             std::string_view type, std::string_view param = {},
                             std::string_view code = {});
  awaitable<void> send_upstream_status(exchange& ex, unsigned status, std::string_view body,
                                       std::string_view retry_after);
  void set_routed_headers(exchange& ex, http::fields& f) const;
  void finish(exchange& ex);
  void begin_drain();

  // Swapped whole by a reload; each request keeps the one it started with.
  std::atomic<std::shared_ptr<const snapshot>> snap_;
  std::string config_path_;
  std::string loaded_text_;       // the config text behind snap_; only the control thread uses it
  net::io_context control_{1};    // signals, reloads and the file watcher's wake-ups
  policies::health_book health_;  // outlives reloads
  std::unique_ptr<stats::ledger> ledger_;  // null when stats.ledger is none
  std::unique_ptr<stats::accounting> accounting_;
  std::unique_ptr<limit_state> state_;  // rate-limit windows and budgets: local or Redis
  // Keys created through /admin/keys, read from the ledger's database; swapped whole.
  std::atomic<std::shared_ptr<const key_table>> admin_keys_{std::make_shared<const key_table>()};
  std::set<std::string> seeded_;  // control thread: "key/period" spends read from the ledger
  steady::time_point reseed_at_;  // control thread: when seeded_ is forgotten, so spend a lost
                                  // settle or a flushed Redis dropped is read back again
  std::optional<sha256_digest> admin_token_;  // of auth.admin_token_env's value, read at start
  struct ledger_watch {                       // control thread: what watch_ledger last saw
    std::uint64_t errors_seen = 0, errors_logged = 0;
    steady::time_point next_log{};
    bool failing = false;
  } ledger_watch_;
  stats::registry registry_;
  gateway_metrics metrics_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<std::uint32_t> connections_{0};        // every open client connection (drain)
  std::atomic<std::uint32_t> public_connections_{0};  // of them, on server.listen
  std::atomic<std::uint32_t> admin_connections_{0};   // of them, on server.admin_listen
  std::atomic<std::int64_t> inflight_{0};
  std::atomic<std::uint64_t> buffered_{0};  // whole upstream answers held now, all requests
  std::atomic<bool> draining_{false};
};

const std::vector<server::route>& server::routes() {
  static const std::vector<route> table = {
      {http::verb::post, "/v1/chat/completions", &server::chat},
      {http::verb::post, "/v1/messages", &server::messages},
      {http::verb::post, "/v1/messages/count_tokens", &server::count_tokens},
      {http::verb::post, "/v1/embeddings", &server::embeddings},
      {http::verb::get, "/v1/models", &server::list_models},
      {http::verb::get, "/v1/stats/share", &server::stats_share},
      {http::verb::get, "/v1/stats/daily", &server::stats_daily},
      {http::verb::get, "/v1/generation", &server::generation},
      {http::verb::get, "/dashboard", &server::dashboard},
      {http::verb::get, "/healthz", &server::healthz},
      {http::verb::get, "/readyz", &server::readyz},
      {http::verb::get, "/metrics", &server::metrics},
  };
  return table;
}

// ---- responses ----

awaitable<void> server::send(exchange& ex, http::status status, std::string body,
                             std::string_view content_type) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, content_type);
  res.set("x-request-id", ex.log.echoed_id());
  set_routed_headers(ex, res.base());
  if (!ex.retry_after.empty()) res.set(http::field::retry_after, ex.retry_after);
  res.keep_alive(ex.keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  ex.log.status = res.result_int();
  ex.client.expires_after(ex.snap.cfg->server.timeouts.idle_chunk);
  auto [ec, n] = co_await http::async_write(ex.client, res, as_tuple);
  if (ec) ex.keep_alive = false;
}

awaitable<void> server::send_error(exchange& ex, http::status status, std::string_view message,
                                   std::string_view type, std::string_view param,
                                   std::string_view code) {
  if (ex.log.error.empty()) ex.log.error = code.empty() ? std::string(type) : std::string(code);
  if (ex.anthropic_api) {
    co_await send(ex, status,
                  providers::anthropic_error_body(
                      providers::anthropic_error_type(static_cast<unsigned>(status)), message));
  } else {
    co_await send(ex, status, openai_error_body(message, type, param, code));
  }
}

// OpenAI's rate-limit headers: "1s", "6m0s"-style resets are approximated as milliseconds or
// seconds with a unit, which OpenAI's SDKs parse the same way.
std::string reset_text(std::chrono::milliseconds d) {
  if (d.count() < 1000) return std::to_string(std::max<std::int64_t>(d.count(), 0)) + "ms";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(d.count()) / 1000);
  return buf;
}

void server::set_routed_headers(exchange& ex, http::fields& f) const {
  // Meridian's own id, unique per request: what /v1/generation finds exactly even when the
  // client reuses its x-request-id.
  if (!ex.log.client_request_id.empty()) f.set("x-meridian-request-id", ex.log.request_id);
  if (ex.limits) {
    const admission& a = *ex.limits;
    if (a.limit_requests) {
      f.set("x-ratelimit-limit-requests", std::to_string(a.limit_requests));
      f.set("x-ratelimit-remaining-requests", std::to_string(a.remaining_requests));
      f.set("x-ratelimit-reset-requests", reset_text(a.reset_requests));
    }
    if (a.limit_tokens) {
      f.set("x-ratelimit-limit-tokens", std::to_string(a.limit_tokens));
      f.set("x-ratelimit-remaining-tokens", std::to_string(a.remaining_tokens));
      f.set("x-ratelimit-reset-tokens", reset_text(a.reset_tokens));
    }
  }
  if (!ex.route_explain.empty()) f.set("x-meridian-route", ex.route_explain);
  if (!ex.provider) return;
  f.set("x-meridian-provider", ex.provider->name);
  f.set("x-meridian-model", ex.model->id);
}

// An upstream answered with an error status: tell the client what happened in OpenAI's shape,
// never echoing the provider's key.
awaitable<void> server::send_upstream_status(exchange& ex, unsigned status, std::string_view body,
                                             std::string_view retry_after) {
  const auto& p = *ex.provider;
  std::string upstream_message;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string())
      upstream_message = e["message"].get<std::string>();
    else if (e.is_string())
      upstream_message = e.get<std::string>();
  }
  // Redact before cutting, so a key straddling the cut cannot leave half of itself behind;
  // cut on a UTF-8 character boundary.
  upstream_message = redact(std::move(upstream_message), p.api_key);
  if (upstream_message.size() > 512) {
    std::size_t cut = 512;
    while (cut > 0 && (static_cast<unsigned char>(upstream_message[cut]) & 0xC0) == 0x80) --cut;
    upstream_message.resize(cut);
  }
  std::string suffix = upstream_message.empty() ? "" : ": " + upstream_message;
  metrics_.upstream_errors.inc({p.name, "http_" + std::to_string(status)});
  if (status == 429) {
    if (auto seconds = retry_after_seconds(retry_after, std::chrono::system_clock::now()))
      ex.retry_after = std::to_string(*seconds);
    co_await send_error(ex, http::status::too_many_requests,
                        "Provider '" + p.name + "' is rate limiting requests" + suffix,
                        "rate_limit_error", {}, "rate_limit_exceeded");
    co_return;
  }
  if (status == 400 || status == 404 || status == 409 || status == 413 || status == 422) {
    co_await send_error(ex, static_cast<http::status>(status),
                        "Provider '" + p.name + "' rejected the request" + suffix,
                        "invalid_request_error", {}, "upstream_rejected");
    co_return;
  }
  if (status == 401 || status == 403) {
    co_await send_error(ex, http::status::bad_gateway,
                        "Provider '" + p.name + "' rejected the gateway's credentials (HTTP " +
                            std::to_string(status) + ")",
                        "upstream_error", {}, "upstream_auth");
    co_return;
  }
  co_await send_error(
      ex, http::status::bad_gateway,
      "Provider '" + p.name + "' failed with HTTP " + std::to_string(status) + suffix,
      "upstream_error", {}, "upstream_error");
}

// ---- endpoints ----

awaitable<void> server::healthz(exchange& ex) {
  co_await send(ex, http::status::ok, R"({"status":"ok"})");
}

awaitable<void> server::readyz(exchange& ex) {
  if (draining_) {
    co_await send(ex, http::status::service_unavailable, R"({"status":"draining"})");
  } else if (ex.snap.catalog.providers.empty()) {
    co_await send(ex, http::status::service_unavailable, R"({"status":"no providers available"})");
  } else {
    co_await send(ex, http::status::ok, R"({"status":"ready"})");
  }
}

awaitable<void> server::metrics(exchange& ex) {
  accounting_->sync_ledger_counters();
  std::size_t idle = 0;
  for (const auto& w : workers_) idle += w->pool.idle_now();
  metrics_.upstream_idle.set({}, static_cast<double>(idle));
  // Per-key series (names and spend of every tenant) stay on the admin listener when there is
  // one; the public listener shows the rest.
  const bool hide_keys = !ex.on_admin_listener && ex.snap.cfg->server.admin_listen.has_value();
  // A named local, not a conditional inside the co_await (GCC 12 destroys its temporaries
  // twice).
  std::string text = hide_keys ? registry_.expose_without("key") : registry_.expose();
  co_await send(ex, http::status::ok, std::move(text), "text/plain; version=0.0.4; charset=utf-8");
}

awaitable<void> server::list_models(exchange& ex) {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& p : ex.snap.catalog.providers) {
    for (const auto& m : p.models) {
      nlohmann::json pricing = nlohmann::json::object();
      pricing["unit"] = "usd_per_million_tokens";
      pricing["input"] = m.input;
      pricing["output"] = m.output;
      pricing["cache_read"] = m.cache_read;
      pricing["cache_write"] = m.cache_write;
      nlohmann::json entry = nlohmann::json::object();
      entry["id"] = p.name + "/" + m.id;
      entry["object"] = "model";
      entry["created"] = 0;
      entry["owned_by"] = m.author;
      entry["provider"] = p.name;
      entry["region"] = p.region;
      entry["context_length"] = m.context;
      entry["quality"] = m.quality;
      entry["pricing"] = std::move(pricing);
      data.push_back(std::move(entry));
    }
  }
  nlohmann::json list = nlohmann::json::object();
  list["object"] = "list";
  list["data"] = std::move(data);
  co_await send(ex, http::status::ok, list.dump());
}

// The upstream HTTP request for one attempt: the dialect's path, headers and body, plus the
// provider's auth and configured headers. The client's own headers never go upstream.
http::request<http::string_body> server::make_upstream_request(const exchange& ex,
                                                               const providers::provider& p,
                                                               providers::upstream_request&& r,
                                                               bool stream) const {
  http::request<http::string_body> up{http::verb::post, p.url.path + r.path, 11};
  up.set(http::field::host, (p.url.port == (p.url.tls ? 443 : 80))
                                ? p.url.host
                                : p.url.host + ':' + std::to_string(p.url.port));
  up.set(http::field::content_type, "application/json");
  up.set(http::field::accept, stream ? "text/event-stream" : "application/json");
  up.set(http::field::user_agent, "meridian/" + std::string(k_version));
  up.set("x-request-id", ex.log.request_id);
  switch (p.auth) {
    case providers::auth_style::bearer:
      up.set(http::field::authorization, "Bearer " + p.api_key);
      break;
    case providers::auth_style::x_api_key:
      up.set("x-api-key", p.api_key);
      break;
    case providers::auth_style::x_goog_api_key:
      up.set("x-goog-api-key", p.api_key);
      break;
    case providers::auth_style::none:
      break;
  }
  for (const auto& [k, v] : r.headers) up.set(k, v);
  for (const auto& [k, v] : p.headers) up.set(k, v);
  up.body() = std::move(r.body);
  up.keep_alive(true);
  up.prepare_payload();
  return up;
}

// Sends one request and reads the response header, under the connect and first-byte
// deadlines. A pooled connection the provider closed while idle is retried once, fresh.
awaitable<server::upstream_exchange> server::open_exchange(exchange& ex,
                                                           const providers::provider& p,
                                                           http::request<http::string_body>& up,
                                                           steady::time_point deadline) {
  const auto& t = ex.snap.cfg->server.timeouts;
  upstream_exchange x;
  for (int attempt = 0; attempt < 2 && !x.conn; ++attempt) {
    x.conn = co_await ex.w.pool.acquire(p, t, deadline, attempt > 0, x.fault, x.detail);
    if (!x.conn) break;
    error_code ec = co_await x.conn->write(up, phase_limit(t.first_byte, deadline));
    // Interim responses (100 Continue, 103 Early Hints) are skipped: the final one follows on
    // the same connection, and reading it is what keeps its bytes from the next request.
    for (int interim = 0; !ec; ++interim) {
      x.parser = std::make_unique<http::response_parser<http::buffer_body>>();
      x.parser->body_limit(boost::none);
      x.parser->header_limit(64u << 10);
      ec = co_await x.conn->read_header(*x.parser, phase_limit(t.first_byte, deadline));
      const unsigned code = ec ? 0 : x.parser->get().result_int();
      if (ec || code < 100 || code > 199) break;
      if (code == 101 || interim == k_max_interim) ec = http::error::bad_status;
    }
    if (!ec) break;
    const bool closed = ec == net::error::connection_reset || ec == http::error::end_of_stream ||
                        ec == net::error::eof || ec == net::error::broken_pipe;
    const bool stale = x.conn->reused() && attempt == 0 && closed;
    x.conn->close();
    x.conn.reset();
    if (stale) continue;
    if (ec == beast::error::timeout) {
      x.fault = upstream_fault::timeout;
      x.detail = "no answer within the first_byte deadline";
    } else if (ec == http::error::bad_status) {
      x.fault = upstream_fault::protocol;
      x.detail = "sent HTTP 101 or more than " + std::to_string(k_max_interim) +
                 " interim responses instead of an answer";
    } else {
      x.fault = closed ? upstream_fault::reset : upstream_fault::protocol;
      x.detail = ec.message();
    }
    // Only a stale pooled connection earns a second try: a fresh one that failed reached the
    // provider, and trying again would send the request twice and double the deadline.
    break;
  }
  if (!x.conn) {
    metrics_.upstream_errors.inc({p.name, std::string(to_string(x.fault))});
    log(log_level::warn, "upstream exchange failed",
        "\"request_id\":\"" + ex.log.request_id + "\",\"provider\":\"" + p.name + "\",\"kind\":\"" +
            std::string(to_string(x.fault)) + "\"");
  }
  co_return x;
}

// Reads a whole response body under the idle-chunk and total deadlines, bounded in size.
awaitable<error_code> server::read_body(exchange& ex, upstream_exchange& x, std::string& body,
                                        steady::time_point deadline) {
  const auto& t = ex.snap.cfg->server.timeouts;
  const std::uint64_t cap = ex.snap.cfg->server.limits.max_buffered_bytes;
  char buf[k_read_chunk];
  while (!x.parser->is_done()) {
    if (steady::now() >= deadline) co_return beast::error::timeout;  // timeouts.total
    x.parser->get().body().data = buf;
    x.parser->get().body().size = sizeof buf;
    auto [ec, n] = co_await x.conn->read_some(*x.parser, phase_limit(t.idle_chunk, deadline));
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = sizeof buf - x.parser->get().body().size;
    // Every request's buffered answer counts against one cap, so many large answers at once
    // cannot grow the process without bound; what this request holds is released by finish().
    if (buffered_.fetch_add(got) + got > cap) {
      buffered_.fetch_sub(got);
      co_return net::error::no_buffer_space;
    }
    ex.buffered += got;
    body.append(buf, got);
    if (ec) co_return ec;
    if (body.size() > k_max_upstream_body) co_return http::error::body_limit;
  }
  co_return error_code{};
}

// A connection goes back to the pool only when its response was read exactly to its end, the
// provider did not say `Connection: close`, and no byte beyond the response is buffered (the
// pool checks that last part itself); anything else is closed.
void server::finish_exchange(exchange& ex, upstream_exchange& x, bool reusable) {
  if (reusable && x.conn && x.parser && x.parser->is_done() && x.parser->keep_alive()) {
    ex.w.pool.release(std::move(x.conn));
  } else if (x.conn) {
    x.conn->close();
  }
}

// 503 when the whole answers held in memory reach server.limits.max_buffered_bytes.
awaitable<void> server::send_overloaded(exchange& ex) {
  const std::uint64_t cap = ex.snap.cfg->server.limits.max_buffered_bytes;
  co_await send_error(ex, http::status::service_unavailable,
                      "The gateway is holding its limit of buffered upstream answers (" +
                          std::to_string(cap >> 20) +
                          " MiB, server.limits.max_buffered_bytes); try again shortly",
                      "server_error", {}, "gateway_overloaded");
}

// 404 for a model nobody serves, 400 for one several providers serve.
awaitable<void> server::send_resolve_error(exchange& ex, const policies::resolve_error& e) {
  bool ambiguous = e.what == policies::resolve_error::kind::ambiguous;
  co_await send_error(ex, ambiguous ? http::status::bad_request : http::status::not_found,
                      e.message, "invalid_request_error", "model",
                      ambiguous ? "ambiguous_model" : "model_not_found");
}

// 502 or 504 for an upstream that failed before answering.
awaitable<void> server::send_fault(exchange& ex, const providers::provider& p, upstream_fault fault,
                                   const std::string& detail) {
  if (fault == upstream_fault::timeout) {
    co_await send_error(ex, http::status::gateway_timeout,
                        "Provider '" + p.name + "' did not answer in time (" + detail + ")",
                        "upstream_error", {}, "upstream_timeout");
  } else if (fault == upstream_fault::too_large) {
    // The provider was reached and answered: "unreachable" would send operators the wrong way.
    co_await send_error(ex, http::status::bad_gateway,
                        "Provider '" + p.name + "' sent an " + detail, "upstream_error", {},
                        "upstream_too_large");
  } else {
    co_await send_error(ex, http::status::bad_gateway,
                        "Provider '" + p.name + "' failed (" + std::string(to_string(fault)) +
                            ": " + redact(detail, p.api_key) + ")",
                        "upstream_error", {}, "upstream_unreachable");
  }
}

awaitable<void> server::chat(exchange& ex) {
  auto parsed = providers::parse_chat_request(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&parsed)) {
    co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                        e->param, e->param.empty() ? "invalid_json" : "invalid_value");
    co_return;
  }
  co_await serve_chat(ex, ex.req.body(), std::get<providers::chat_request>(parsed));
}

// Anthropic Messages: translated to the canonical call, served by any backend, answered in
// Anthropic's shape.
awaitable<void> server::messages(exchange& ex) {
  ex.anthropic_api = true;
  auto translated = providers::anthropic_request_to_openai(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&translated)) {
    co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                        e->param);
    co_return;
  }
  const std::string& body = std::get<std::string>(translated);
  auto parsed = providers::parse_chat_request(body);
  if (auto* e = std::get_if<providers::request_error>(&parsed)) {
    co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                        e->param);
    co_return;
  }
  co_await serve_chat(ex, body, std::get<providers::chat_request>(parsed));
}

// OpenAI embeddings, on OpenAI-dialect backends: the body passes through with `model`
// rewritten; the answer gains `provider` and `usage.cost`.
awaitable<void> server::embeddings(exchange& ex) {
  auto parsed = providers::parse_embeddings_request(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&parsed)) {
    co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                        e->param, e->param.empty() ? "invalid_json" : "invalid_value");
    co_return;
  }
  const auto& req = std::get<providers::chat_request>(parsed);
  ex.log.model = req.model;
  auto resolved = policies::resolve_model(ex.snap.catalog, req.model);
  if (auto* e = std::get_if<policies::resolve_error>(&resolved)) {
    co_await send_resolve_error(ex, *e);
    co_return;
  }
  const auto target = std::get<policies::target>(resolved);
  const auto& p = *target.provider;
  if (!region_allowed(ex, p)) {
    co_await send_error(ex, http::status::not_found,
                        "Key '" + ex.key->name + "' may not send data to region '" + p.region +
                            "' (provider '" + p.name + "'): excluded by key.regions",
                        "invalid_request_error", "model", "region_not_allowed");
    co_return;
  }
  if (!co_await admit(ex)) co_return;
  const std::vector<const providers::model_info*> priced{target.model};          // not a braced
  if (!co_await reserve_budget(ex, ex.req.body().size(), 0, priced)) co_return;  // temporary

  ex.provider = &p;
  ex.model = target.model;
  ex.log.provider = p.name;
  ex.log.upstream_model = target.model->id;
  if (p.dialect != config::dialect_kind::openai) {
    co_await send_error(ex, http::status::bad_request,
                        "Provider '" + p.name + "' speaks the " +
                            std::string(config::to_string(p.dialect)) +
                            " dialect, for which Meridian has no embeddings translation",
                        "invalid_request_error", "model", "unsupported_by_provider");
    co_return;
  }
  const steady::time_point deadline = ex.start + ex.snap.cfg->server.timeouts.total;
  const steady::time_point upstream_start = steady::now();
  auto up = make_upstream_request(
      ex, p,
      {"/embeddings", {}, providers::encode_chat_request(ex.req.body(), req, target.model->id)},
      false);
  auto x = co_await open_exchange(ex, p, up, deadline);
  if (!x.conn) {
    co_await send_fault(ex, p, x.fault, x.detail);
    co_return;
  }
  std::string answer;
  error_code ec = co_await read_body(ex, x, answer, deadline);
  ex.upstream_seconds = seconds_since(upstream_start);
  finish_exchange(ex, x, !ec);
  if (ec == net::error::no_buffer_space) {
    co_await send_overloaded(ex);
    co_return;
  }
  if (ec) {
    const upstream_fault fault =
        ec == beast::error::timeout ? upstream_fault::timeout : upstream_fault::reset;
    co_await send_fault(ex, p, fault, "the answer was cut or stalled");
    co_return;
  }
  const unsigned status = x.parser->get().result_int();
  if (status != 200) {
    auto retry_after = x.parser->get()[http::field::retry_after];
    co_await send_upstream_status(ex, status, answer,
                                  std::string_view(retry_after.data(), retry_after.size()));
    co_return;
  }
  auto info = providers::read_chat_response(answer);
  if (!info.valid) {
    co_await send_error(ex, http::status::bad_gateway,
                        "Provider '" + p.name + "' returned a malformed response", "upstream_error",
                        {}, "upstream_malformed");
    co_return;
  }
  std::optional<double> cost;
  if (info.tokens) {
    ex.tokens = *info.tokens;
    cost = providers::cost_usd(ex.tokens, *target.model);
  }
  co_await send(ex, http::status::ok,
                providers::annotate_chat_body(answer, info.layout, p.name, cost));
}

// An estimate (bytes / 4 and fixed allowances), labelled as such: the backend may be any model
// and its tokenizer is not here.
awaitable<void> server::count_tokens(exchange& ex) {
  ex.anthropic_api = true;
  if (!nlohmann::json::accept(ex.req.body())) {
    co_await send_error(ex, http::status::bad_request, "request body is not valid JSON",
                        "invalid_request_error");
    co_return;
  }
  co_await send(ex, http::status::ok,
                "{\"input_tokens\":" + std::to_string(providers::estimate_tokens(ex.req.body())) +
                    ",\"estimated\":true}");
}

// Waits a little before the next attempt: jittered, growing with the attempt number, and
// honouring a Retry-After (within a cap) when the next attempt goes to the same provider.
awaitable<void> backoff(net::any_io_executor ex, std::size_t attempt,
                        std::chrono::milliseconds retry_after) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto base = std::chrono::milliseconds(std::min<std::size_t>(10u << attempt, 200));
  auto wait = std::chrono::milliseconds(
      std::uniform_int_distribution<long>(base.count() / 2, base.count())(rng));
  wait = std::max(wait, std::min(retry_after, std::chrono::milliseconds(2000)));
  net::steady_timer timer(ex, wait);
  co_await timer.async_wait(as_tuple);
}

std::chrono::milliseconds parse_retry_after(std::string_view v) {
  auto seconds = retry_after_seconds(v, std::chrono::system_clock::now());
  return std::chrono::milliseconds(std::min<std::uint64_t>(seconds.value_or(0), 3600) * 1000);
}

// Serves a canonical chat call: the router orders the candidates, and each is tried in turn
// until one answers. Once a byte of the answer has reached the client there is no retry.
awaitable<void> server::serve_chat(exchange& ex, std::string_view body,
                                   const providers::chat_request& req) {
  ex.log.model = req.model;
  ex.log.stream = req.stream;
  auto facts = policies::facts_from_openai_body(body, req.scan);  // validated and scanned once
  if (auto* e = std::get_if<policies::facts_error>(&facts)) {
    co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                        e->param, "invalid_value");
    co_return;
  }
  if (!co_await admit(ex)) co_return;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  policies::constraints key_constraints;
  if (ex.key) key_constraints.regions = ex.key->allow_regions;  // residency: never widened
  const auto& request_facts = std::get<policies::request_facts>(facts);
  const policies::plan_result plan =
      policies::plan(request_facts, ex.snap.catalog, health_.snapshot(steady::now()),
                     ex.snap.cfg->routes, key_constraints, rng);
  ex.log.route = plan.route;
  ex.est_prompt = std::get<policies::request_facts>(facts).est_prompt_tokens;
  ex.route_explain = header_safe(plan.explain);
  if (!plan.ok()) {
    const auto& e = *plan.error;
    const std::string code = !e.code.empty()   ? e.code
                             : e.status == 404 ? "model_not_found"
                                               : "no_candidates";
    co_await send_error(ex, static_cast<http::status>(e.status), e.message, "invalid_request_error",
                        e.param, code);
    co_return;
  }
  const auto& attempts = plan.attempts;
  const std::size_t n = std::min(attempts.size(), k_max_attempts);
  std::vector<const providers::model_info*> planned;
  for (std::size_t i = 0; i < n; ++i) planned.push_back(attempts[i].model);
  if (!co_await reserve_budget(ex, body.size(), request_facts.max_tokens, planned, req.n))
    co_return;
  if (auto allowed = output_allowance(request_facts.max_tokens, ex.held.has_value(),
                                      ex.snap.cfg->state.reserve_tokens, req.n))
    ex.output_ceiling = output_ceiling(*allowed);
  const steady::time_point deadline = ex.start + ex.snap.cfg->server.timeouts.total;
  const steady::time_point upstream_start = steady::now();
  std::string last_failure = "circuit_open";
  std::chrono::milliseconds retry_after{0};

  for (std::size_t i = 0; i < n; ++i) {
    const bool last = i + 1 == n;
    const auto& p = *attempts[i].provider;
    const auto& m = *attempts[i].model;
    if (i > 0) {
      const auto& prev = *attempts[i - 1].provider;
      metrics_.fallbacks.inc(
          {prev.name + "/" + attempts[i - 1].model->id, p.name + "/" + m.id, last_failure});
      const std::chrono::milliseconds honour =
          prev.name == p.name ? retry_after : std::chrono::milliseconds(0);
      co_await backoff(ex.w.ioc.get_executor(), i, honour);
      retry_after = std::chrono::milliseconds(0);
    }
    ex.provider = &p;
    ex.model = &m;
    ex.log.provider = p.name;
    ex.log.upstream_model = m.id;
    ex.log.fallback_index = i;
    if (!health_.try_acquire(p.name, m.id, steady::now())) {
      last_failure = "circuit_open";
      ex.emitted = i + 1;  // nothing was sent: there is no attempt to account for
      if (!last) continue;
      co_await send_error(ex, http::status::service_unavailable,
                          "Every candidate for this request is unavailable (circuit open)",
                          "upstream_error", {}, "circuit_open");
      co_return;
    }
    auto failed = [&](std::string_view why) {
      last_failure = std::string(why);
      health_.record_failure(p.name, m.id, steady::now());
      update_provider_up(p);
      emit_attempt(ex, why, 502);
    };
    const auto& d = providers::dialect_for(p.dialect);
    auto encoded = d.encode_chat(body, req, m.id);
    if (auto* e = std::get_if<providers::request_error>(&encoded)) {
      last_failure = "unsupported";
      if (!last) continue;
      co_await send_error(ex, http::status::bad_request, e->message, "invalid_request_error",
                          e->param, "unsupported_by_provider");
      co_return;
    }
    const auto attempt_start = steady::now();
    std::optional<double> first_byte_ms;
    auto up = make_upstream_request(
        ex, p, std::move(std::get<providers::upstream_request>(encoded)), req.stream);
    auto x = co_await open_exchange(ex, p, up, deadline);
    if (!x.conn) {
      ex.upstream_seconds = seconds_since(upstream_start);
      failed(to_string(x.fault));
      if (!last) continue;
      co_await send_fault(ex, p, x.fault, x.detail);
      co_return;
    }
    const unsigned status = x.parser->get().result_int();
    const bool is_sse = x.parser->get()[http::field::content_type].find("text/event-stream") !=
                        beast::string_view::npos;
    // For a whole answer the first byte is as close to a first token as the gateway can see.
    if (!req.stream)
      first_byte_ms =
          std::chrono::duration<double, std::milli>(steady::now() - attempt_start).count();
    if (status == 200 && req.stream && is_sse) {
      bool reusable = false;
      co_await relay_stream(ex, d, x, deadline, reusable);
      ex.upstream_seconds = seconds_since(upstream_start);
      finish_exchange(ex, x, reusable);
      if (ex.log.error.empty()) {
        record_success(ex, p, m, attempt_start, std::nullopt);
      } else if (ex.log.error != "client_closed") {
        failed(ex.log.error);
      }
      co_return;
    }
    std::string answer;
    error_code ec = co_await read_body(ex, x, answer, deadline);
    ex.upstream_seconds = seconds_since(upstream_start);
    if (ec == net::error::no_buffer_space) {
      // Not the provider's fault, and another candidate would need the same memory.
      finish_exchange(ex, x, false);
      emit_attempt(ex, "gateway_overloaded", 503);
      co_await send_overloaded(ex);
      co_return;
    }
    if (ec) {
      finish_exchange(ex, x, false);
      upstream_fault fault = ec == beast::error::timeout     ? upstream_fault::timeout
                             : ec == http::error::body_limit ? upstream_fault::too_large
                                                             : upstream_fault::reset;
      metrics_.upstream_errors.inc({p.name, std::string(to_string(fault))});
      failed(to_string(fault));
      if (!last) continue;
      const std::string what = fault == upstream_fault::timeout ? "stalled while sending its answer"
                               : fault == upstream_fault::too_large
                                   ? "answer larger than the gateway accepts"
                                   : "closed the connection mid-answer";
      co_await send_fault(ex, p, fault, what);
      co_return;
    }
    finish_exchange(ex, x, true);
    if (status != 200) {
      const bool retryable = d.retryable(status, answer);
      auto ra = x.parser->get()[http::field::retry_after];
      const std::string_view retry_after_text(ra.data(), ra.size());
      if (retryable) {
        failed("http_" + std::to_string(status));
        retry_after = parse_retry_after(retry_after_text);
        if (!last) {
          metrics_.upstream_errors.inc({p.name, "http_" + std::to_string(status)});
          continue;
        }
      }
      co_await send_upstream_status(ex, status, answer, retry_after_text);
      co_return;
    }
    if (req.stream) {  // a 200 that is not an event stream, for a stream request
      metrics_.upstream_errors.inc({p.name, "protocol"});
      failed("protocol");
      if (!last) continue;
      co_await send_error(ex, http::status::bad_gateway,
                          "Provider '" + p.name + "' answered a stream request without streaming",
                          "upstream_error", {}, "upstream_malformed");
      co_return;
    }
    auto decoded = d.decode_chat(answer, m.id);
    if (auto* e = std::get_if<providers::decode_error>(&decoded)) {
      metrics_.upstream_errors.inc({p.name, "malformed"});
      failed("malformed");
      if (!last) continue;
      co_await send_error(ex, http::status::bad_gateway, "Provider '" + p.name + "': " + e->message,
                          "upstream_error", {}, "upstream_malformed");
      co_return;
    }
    auto& ok = std::get<providers::decoded_chat>(decoded);
    if (ok.tokens) {
      ex.tokens = *ok.tokens;
    } else {  // no usage: estimated from the request and the answer's own text, and said so
      providers::for_each_generated_text(
          ok.body, [&](std::string_view raw) { stats::tally_json_string(raw, ex.relayed); });
      estimate_tokens(ex);
    }
    const std::optional<double> cost = providers::cost_usd(ex.tokens, m);
    const providers::answer_notes notes{p.name, cost, ex.estimated};
    const providers::usage* estimated = ex.estimated ? &ex.tokens : nullptr;
    record_success(ex, p, m, attempt_start, first_byte_ms);
    // Built before the co_await: GCC 12 mishandles class temporaries of a conditional
    // expression inside a co_await (it destroys them twice).
    std::string out =
        ex.anthropic_api ? providers::openai_response_to_anthropic(ok.body, req.model, ex.tokens,
                                                                   &notes)
        : ok.layout      ? providers::annotate_chat_body(ok.body, *ok.layout, p.name, cost, estimated)
                         : providers::annotate_chat_body(ok.body, p.name, cost, estimated);
    co_await send(ex, http::status::ok, std::move(out));
    co_return;
  }
}

void server::record_success(exchange& ex, const providers::provider& p,
                            const providers::model_info& m, steady::time_point attempt_start,
                            std::optional<double> first_byte_ms) {
  policies::observation seen;
  double seconds = seconds_since(attempt_start);
  seen.latency_ms = seconds * 1000;
  if (ex.log.ttft_ms)
    seen.ttft_ms = *ex.log.ttft_ms -
                   std::chrono::duration<double, std::milli>(attempt_start - ex.start).count();
  else
    seen.ttft_ms = first_byte_ms;
  if (seconds > 0 && ex.tokens.completion_total() > 0)
    seen.tokens_per_s = static_cast<double>(ex.tokens.completion_total()) / seconds;
  health_.record_success(p.name, m.id, steady::now(), seen);
  update_provider_up(p);
}

void server::update_provider_up(const providers::provider& p) {
  // A provider is up while at least one of its models has a closed circuit.
  bool up = false;
  const auto now = steady::now();
  for (const auto& m : p.models)
    up |= health_.state(p.name, m.id, now) != policies::circuit_state::open;
  metrics_.provider_up.set({p.name}, up ? 1 : 0);
}

// Frames canonical chunks for the client's API: OpenAI's SSE as it is, or Anthropic's events.
class client_framer {
 public:
  explicit client_framer(const exchange& ex) {
    if (ex.anthropic_api) anthropic_.emplace(ex.log.model);
  }
  // The bytes for one canonical chunk; empty when the client's API has nothing to say yet.
  const std::string& chunk(std::string_view c) {
    if (!anthropic_) return wire_.assign("data: ").append(c).append("\n\n");
    events_.clear();
    anthropic_->on_chunk(c, events_);
    return flatten();
  }
  const std::string& end(const providers::usage& tokens, const providers::answer_notes& notes) {
    if (!anthropic_) return wire_.assign("data: [DONE]\n\n");
    events_.clear();
    anthropic_->finish(tokens, events_, &notes);
    return flatten();
  }
  const std::string& fail(const std::string& message, std::string_view code) {
    if (!anthropic_)
      return wire_.assign("data: ")
          .append(openai_error_body(message, "upstream_error", {}, code))
          .append("\n\n");
    events_.clear();
    anthropic_->fail(message, events_);
    return flatten();
  }

 private:
  const std::string& flatten() {
    wire_.clear();
    for (const auto& e : events_) wire_ += providers::to_wire(e);
    return wire_;
  }
  std::optional<providers::anthropic_stream_encoder> anthropic_;
  std::vector<providers::sse_event> events_;
  std::string wire_;
};

// Relays an upstream stream event by event, each in its own write, through the dialect's
// decoder; the usage chunk gains its cost on the way. A client that goes away ends the
// upstream request too; an upstream that fails mid-stream ends it with an error event.
awaitable<void> server::relay_stream(exchange& ex, const providers::dialect& d,
                                     upstream_exchange& x, steady::time_point deadline,
                                     bool& reusable) {
  const auto& t = ex.snap.cfg->server.timeouts;
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("x-request-id", ex.log.echoed_id());
  set_routed_headers(ex, res.base());
  res.keep_alive(ex.keep_alive);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  ex.log.status = 200;
  ex.client.expires_after(t.idle_chunk);
  if (auto [ec, n] = co_await http::async_write_header(ex.client, sr, as_tuple); ec) {
    ex.keep_alive = false;
    ex.log.error = "client_closed";
    co_return;
  }

  auto decoder = d.stream(ex.model->id);
  ex.streamed = true;
  providers::sse_parser sse;
  providers::sse_event ev;
  std::vector<std::string> chunks;
  client_framer framer(ex);
  bool client_gone = false, upstream_failed = false;
  // The gateway's own stops: timeouts.total passed, or more output than the request allows.
  bool past_total = false, over_output = false;
  error_code upstream_ec;
  auto& parser = *x.parser;
  char buf[k_read_chunk];
  while (!parser.is_done() && !client_gone && !upstream_failed && !decoder->complete() &&
         !over_output) {
    if (steady::now() >= deadline) {
      past_total = true;
      break;
    }
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    auto [rec, n] = co_await x.conn->read_some(parser, phase_limit(t.idle_chunk, deadline));
    if (rec == http::error::need_buffer) rec = {};
    std::size_t got = sizeof buf - parser.get().body().size;
    if (got && !sse.feed(std::string_view(buf, got))) {
      upstream_ec = http::error::body_limit;
      break;
    }
    while (!client_gone && sse.next(ev)) {
      chunks.clear();
      if (!decoder->on_event(ev, chunks)) upstream_failed = true;
      for (auto& chunk : chunks) {
        if (!ex.log.ttft_ms) {
          double s = seconds_since(ex.start);
          ex.log.ttft_ms = s * 1000;
          metrics_.ttft.observe({ex.provider->name}, s);
        }
        if (auto tokens = decoder->tokens();
            tokens && chunk.find("\"usage\":{") != std::string::npos) {
          ex.tokens = *tokens;
          chunk = providers::annotate_usage_chunk(chunk, providers::cost_usd(*tokens, *ex.model));
        }
        ++ex.relayed_chunks;
        providers::for_each_generated_text(
            chunk, [&](std::string_view raw) { stats::tally_json_string(raw, ex.relayed); });
        const std::string& wire = framer.chunk(chunk);
        if (wire.empty()) continue;
        ex.client.expires_after(t.idle_chunk);
        auto [wec, wn] =
            co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
        if (wec) {
          client_gone = true;
          break;
        }
        if (ex.output_ceiling && stats::estimate_tokens(ex.relayed) > *ex.output_ceiling) {
          over_output = true;  // what was relayed so far is what is billed
          break;
        }
      }
      if (upstream_failed || over_output) break;
    }
    if (rec) {
      upstream_ec = rec;
      break;
    }
  }
  if (auto tokens = decoder->tokens()) ex.tokens = *tokens;
  ex.stream_complete = decoder->complete();
  // A read cut short by the total deadline is the deadline's doing, not a stall.
  if (upstream_ec == beast::error::timeout && steady::now() >= deadline) past_total = true;
  if (client_gone) {
    // Closing the upstream connection is how a provider learns to stop generating.
    ex.keep_alive = false;
    ex.log.error = "client_closed";
    ex.log.status = 499;
    co_return;
  }
  if ((past_total || over_output) && !decoder->complete()) {
    // The upstream connection is closed (finish_exchange: not reusable), which is how a
    // provider learns to stop generating.
    metrics_.upstream_errors.inc({ex.provider->name, over_output ? "output_limit" : "timeout"});
    ex.log.error = over_output ? "output_limit" : "total_deadline";
    const std::string what =
        over_output ? "sent more output than the request allows (about " +
                          std::to_string(stats::estimate_tokens(ex.relayed)) +
                          " tokens relayed; the limit is " + std::to_string(*ex.output_ceiling) +
                          ", twice max_tokens or the reserved output, plus 256)"
                    : "was still streaming when the request's total deadline (timeouts.total, " +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                             ex.snap.cfg->server.timeouts.total)
                                             .count()) +
                          " s) passed";
    const std::string& wire =
        framer.fail("Provider '" + ex.provider->name + "' " + what,
                    over_output ? "output_limit_exceeded" : "total_deadline_exceeded");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else if (!decoder->complete()) {
    bool timeout = upstream_ec == beast::error::timeout;
    const char* kind = upstream_failed ? "stream_error" : timeout ? "timeout" : "reset";
    metrics_.upstream_errors.inc({ex.provider->name, kind});
    ex.log.error = upstream_failed ? "upstream_stream_error"
                   : timeout       ? "upstream_stream_timeout"
                                   : "upstream_stream_cut";
    std::string what = upstream_failed ? redact(decoder->error(), ex.provider->api_key)
                       : timeout       ? "stalled mid-stream"
                                       : "cut the stream";
    const std::string& wire = framer.fail("Provider '" + ex.provider->name + "' " + what,
                                          timeout ? "upstream_timeout" : "upstream_error");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else {
    if (!decoder->tokens()) estimate_tokens(ex);  // told to an Anthropic client as estimated
    const providers::answer_notes notes{ex.provider->name,
                                        providers::cost_usd(ex.tokens, *ex.model), ex.estimated};
    const std::string& wire = framer.end(ex.tokens, notes);
    ex.client.expires_after(t.idle_chunk);
    auto [wec, wn] =
        co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    if (wec) ex.keep_alive = false;
    // The decoder may have finished before the HTTP body did (e.g. "[DONE]" then the last
    // chunk): the connection is reused only when the response was read to its end.
    if (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      co_await x.conn->read_some(parser, phase_limit(t.idle_chunk, deadline));
    }
    reusable = true;
  }
  ex.client.expires_after(t.idle_chunk);
  auto [ec, n] = co_await net::async_write(ex.client, http::make_chunk_last(), as_tuple);
  if (ec) ex.keep_alive = false;
}

// ---- accounting and statistics ----

// The request's tokens when the upstream reported none: the router's prompt estimate and the
// generated text relayed, by stats::estimate_tokens. Marked, so every report says so.
void server::estimate_tokens(exchange& ex) {
  providers::usage u;
  u.input = ex.est_prompt;
  u.output = stats::estimate_tokens(ex.relayed);
  ex.tokens = u;
  ex.estimated = true;
}

// One finished attempt, to metrics and the ledger. When the provider reported no usage for an
// answer that was served, tokens are estimated (prompt: the router's estimate; completion:
// stats::estimate_tokens of the generated text relayed) and the event says so.
void server::emit_attempt(exchange& ex, std::string_view outcome, unsigned status) {
  const auto& p = *ex.provider;
  const auto& m = *ex.model;
  stats::usage_event ev;
  ev.request_id = ex.log.request_id;
  ev.client_request_id = ex.log.client_request_id;
  if (ex.key) ev.key = ex.key->name;
  ev.route = ex.log.route;
  ev.provider = p.name;
  ev.model = m.id;
  ev.author = m.author;
  ev.region = p.region;
  ev.outcome = std::string(outcome);
  ev.status = static_cast<int>(status);
  ev.fallback_index = static_cast<unsigned>(ex.log.fallback_index);
  ev.latency_ms = seconds_since(ex.start) * 1000;
  ev.ttft_ms = ex.log.ttft_ms;
  ev.time = std::chrono::system_clock::now();
  // A stream the client closed, or the upstream cut, after output reached the client was
  // generated (and is billed by the provider) all the same: it is estimated, never free.
  if (outcome == "ok" || outcome == "client_closed" || ex.relayed_chunks > 0) {
    if (!ex.tokens.present && !ex.estimated) {
      estimate_tokens(ex);  // from the text actually relayed
    } else if (ex.tokens.present && ex.streamed && !ex.stream_complete) {
      // A count that did not arrive in a final event is not final (Anthropic's message_start
      // says output_tokens: 1): the larger of it and what the relayed text implies.
      const std::uint64_t relayed = stats::estimate_tokens(ex.relayed);
      const std::uint64_t reported = ex.tokens.completion_total();
      if (relayed > reported) ex.tokens.output += relayed - reported;
      ex.estimated = true;
    }
    ev.estimated = ex.estimated;
    const providers::usage& u = ex.tokens;
    ev.tokens = {u.input, u.cache_read, u.cache_write, u.output, u.reasoning};
    ev.cost_usd = providers::cost_usd(u, m);
  }
  stats::apply_energy(*ex.snap.cfg, ev);
  ex.cost_usd += ev.cost_usd;
  if (ex.key && ev.cost_usd > 0) metrics_.key_cost.inc({ex.key->name}, ev.cost_usd);
  accounting_->on_event(ev);
  ex.emitted = ex.log.fallback_index + 1;
}

// Ledger queries read SQLite: they run on the control thread, never on an event loop.
awaitable<void> server::send_stats(exchange& ex, stats::result<std::string> answer,
                                   std::string_view type) {
  if (auto* e = std::get_if<stats::query_error>(&answer)) {
    const bool missing = e->param == "id" && e->message.rfind("no generation", 0) == 0;
    const http::status status = e->param.empty() ? http::status::service_unavailable
                                : missing        ? http::status::not_found
                                                 : http::status::bad_request;
    co_await send_error(ex, status, e->message, "invalid_request_error", e->param,
                        e->param.empty() ? "stats_unavailable" : "invalid_value");
    co_return;
  }
  co_await send(ex, http::status::ok, std::move(std::get<std::string>(answer)), type);
}

namespace {

template <class F>
stats::result<std::string> as_text(F&& query) {
  auto r = query();
  if (auto* e = std::get_if<stats::query_error>(&r)) return *e;
  return std::get<nlohmann::json>(r).dump();
}

}  // namespace

awaitable<void> server::stats_share(exchange& ex) {
  auto q = parse_query(ex.req.target());
  auto base = baseline_of(ex.snap);
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        // What can be written is, first; a ledger already failing is not made to wait again.
        if (ledger_ && ledger_->last_error().empty()) ledger_->flush();
        co_return as_text([&] {
          return stats::share_answer(ledger_.get(), q, std::chrono::system_clock::now(), base);
        });
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "application/json");
}

awaitable<void> server::stats_daily(exchange& ex) {
  auto q = parse_query(ex.req.target());
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        if (ledger_ && ledger_->last_error().empty()) ledger_->flush();
        co_return as_text([&] {
          return stats::daily_answer(ledger_.get(), q, std::chrono::system_clock::now());
        });
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "application/json");
}

awaitable<void> server::generation(exchange& ex) {
  auto q = parse_query(ex.req.target());
  // With keys configured, a key finds only its own requests (a caller without one, only those
  // made without one); the admin token finds every request. Another's request is a 404.
  std::optional<std::string> visible_to;
  const bool keys_configured = !ex.snap.keys.empty() || !admin_keys_.load()->empty();
  if (keys_configured && !ex.admin_caller) visible_to = ex.key ? ex.key->name : std::string();
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        // Events are written every flush_interval; flush first so a generation is found as
        // soon as its answer was sent.
        if (ledger_) ledger_->flush();
        co_return as_text([&] { return stats::generation_answer(ledger_.get(), q, visible_to); });
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "application/json");
}

awaitable<void> server::dashboard(exchange& ex) {
  auto q = parse_query(ex.req.target());
  auto base = baseline_of(ex.snap);
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        co_return stats::dashboard_answer(ledger_.get(), q, std::chrono::system_clock::now(), base);
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "text/html; charset=utf-8");
}

// ---- admin and reload ----

const std::vector<server::route>& server::admin_routes() {
  static const std::vector<route> table = {
      {http::verb::post, "/admin/reload", &server::admin_reload},
      {http::verb::get, "/admin/config", &server::admin_config},
      {http::verb::get, "/admin/keys", &server::admin_keys_list},
      {http::verb::post, "/admin/keys", &server::admin_keys_create},
      {http::verb::delete_, "/admin/keys", &server::admin_keys_revoke},
      {http::verb::get, "/healthz", &server::healthz},
      {http::verb::get, "/metrics", &server::metrics},
  };
  return table;
}

namespace {

// The file's identity and version: a write between two looks changes at least one of them.
struct file_stamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  timespec mtime{};
  bool operator==(const file_stamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

std::optional<file_stamp> stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return file_stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

// The config file's text as one complete version: read again once if it changed while it was
// read (an editor still writing). nullopt with `error` set when no stable text could be had.
std::optional<std::string> read_whole_version(const std::string& path, std::string& error) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto before = stamp_of(path);
    std::ifstream f(path, std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    if (!before || !f) {
      error = "cannot read " + path;
      return std::nullopt;
    }
    if (stamp_of(path) == before) return text.str();
  }
  error = path + " changed while it was read; the next complete write reloads it";
  return std::nullopt;
}

}  // namespace

// Parses and validates off the event loop, on the control thread, then swaps the snapshot.
// Returns what happened, for logs and the admin answer; a bad file keeps the running config.
std::string server::reload(std::string_view trigger, bool& applied) {
  applied = false;
  if (config_path_.empty()) return "no config file to reload";
  const std::string trigger_json = "\"trigger\":\"" + std::string(trigger) + "\"";
  auto rejected = [&](const std::string& why) {
    metrics_.config_reloads.inc({"failure"});
    log(log_level::error, "config reload rejected; the running config stays",
        trigger_json + ",\"error\":" + nlohmann::json(why).dump());
    return why;
  };
  std::string read_error;
  auto text = read_whole_version(config_path_, read_error);
  if (!text) return rejected(read_error);
  // Editors write a file in several steps; a wake-up with unchanged content is not a reload.
  if (trigger == "file" && *text == loaded_text_) return "unchanged";
  std::shared_ptr<const snapshot> next;
  try {
    next = make_snapshot(*text, config_path_);
  } catch (const std::exception& e) {
    return rejected(e.what());
  }
  const auto review = review_reload(*snap_.load(), *next);
  if (review.refusal) return rejected(*review.refusal);
  for (const auto& change : review.protective)
    log(log_level::warn, "config reload changes protection: " + change, trigger_json);
  if (!review.restart_needed.empty()) {
    std::string names;
    for (const auto& n : review.restart_needed) names += (names.empty() ? "" : ", ") + n;
    log(log_level::warn, names + ": changed, but take effect only after a restart", trigger_json);
  }
  if (review.health_changed) {
    health_.set_options(policies::health_options_from(next->cfg->health));
    log(log_level::info, "health options applied (the observations so far are kept)");
  }
  for (const auto& problem : next->key_problems) log(log_level::warn, problem);
  snap_.store(std::move(next));
  loaded_text_ = std::move(*text);
  seed_budgets();
  applied = true;
  metrics_.config_reloads.inc({"success"});
  log(log_level::info, "config reloaded", trigger_json);
  return "applied";
}

// Watches the config file's directory (editors replace files by renaming) and asks the
// control thread to reload when a write of the file is complete (closed after writing) or a
// new version is renamed into place; a modification still in progress is not a reload.
void server::watch_config(std::stop_token stop, std::promise<void>* started) {
  namespace fs = std::filesystem;
  const fs::path file = fs::absolute(config_path_);
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd >= 0 && inotify_add_watch(fd, file.parent_path().c_str(),
                                   IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    ::close(fd);
    fd = -1;
  }
  started->set_value();
  if (fd < 0) {
    log(log_level::warn, "cannot watch the config file; reload with SIGHUP or POST /admin/reload");
    return;
  }
  const std::string name = file.filename().string();
  alignas(inotify_event) char buf[4096];
  while (!stop.stop_requested()) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    ssize_t len = ::read(fd, buf, sizeof buf);
    bool ours = false;
    for (ssize_t i = 0; i < len;) {
      auto* ev = reinterpret_cast<inotify_event*>(buf + i);
      // Kubernetes updates a mounted ConfigMap by swapping the "..data" symlink, not the file.
      if (ev->len && (name == ev->name || std::string_view(ev->name) == "..data")) ours = true;
      i += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
    if (ours)
      net::post(control_, [this] {
        bool applied = false;
        reload("file", applied);
      });
  }
  ::close(fd);
}

awaitable<void> server::admin_reload(exchange& ex) {
  auto [e, result] = co_await net::co_spawn(
      control_,
      [this]() -> awaitable<std::pair<bool, std::string>> {
        bool applied = false;
        std::string what = reload("admin", applied);
        co_return std::pair{applied, what};
      },
      as_tuple);
  if (e || !result.first) {
    co_await send_error(ex, http::status::unprocessable_entity,
                        "Config rejected; the running config stays: " + result.second,
                        "invalid_request_error", {}, "invalid_config");
    co_return;
  }
  co_await send(ex, http::status::ok, R"({"result":"applied"})");
}

// The running config as JSON, with every secret left out (keys are never in a snapshot's
// config anyway; the catalog's resolved keys are not shown).
awaitable<void> server::admin_config(exchange& ex) {
  const auto& cfg = *ex.snap.cfg;
  nlohmann::json out = nlohmann::json::object();
  out["source"] = cfg.source;
  out["server"] = {
      {"listen", cfg.server.listen.host + ":" + std::to_string(cfg.server.listen.port)},
      {"threads", cfg.server.threads},
      {"max_body_bytes", cfg.server.limits.max_body_bytes},
      {"max_connections", cfg.server.limits.max_connections}};
  nlohmann::json providers = nlohmann::json::array();
  for (const auto& p : ex.snap.catalog.providers) {
    nlohmann::json models = nlohmann::json::array();
    for (const auto& m : p.models) models.push_back(m.id);
    providers.push_back({{"name", p.name},
                         {"dialect", std::string(config::to_string(p.dialect))},
                         {"base_url", p.url_text},
                         {"region", p.region},
                         {"has_key", !p.api_key.empty()},
                         {"models", models}});
  }
  out["providers"] = providers;
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& sk : ex.snap.catalog.skipped)
    skipped.push_back({{"name", sk.name}, {"reason", sk.reason}});
  out["skipped"] = skipped;
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& r : cfg.routes) {
    nlohmann::json cands = nlohmann::json::array();
    for (const auto& c : r.candidates) cands.push_back(c.pattern);
    routes.push_back(
        {{"match", r.match},
         {"policy", r.policy ? std::string(config::to_string(*r.policy)) : "price_weighted"},
         {"candidates", cands},
         {"retries", r.retries},
         {"fallback", r.fallback}});
  }
  out["routes"] = routes;
  co_await send(ex, http::status::ok, out.dump());
}

// ---- virtual keys: authentication, rate limits, budgets, residency ----

// A presented secret that matches no key is refused when auth is required, and otherwise
// served as anonymous (no limits), as without keys.
awaitable<bool> server::authenticate(exchange& ex) {
  const auto& cfg = *ex.snap.cfg;
  auto header = [&](auto name) {
    auto v = ex.req[name];
    return std::string_view(v.data(), v.size());
  };
  const std::string_view secret =
      presented_secret(header(http::field::authorization), header("x-api-key"));
  if (!secret.empty() && !ex.snap.keys.empty()) ex.key = ex.snap.keys.authenticate(secret);
  if (!secret.empty() && !ex.key) {
    ex.admin_keys = admin_keys_.load();
    if (!ex.admin_keys->empty()) ex.key = ex.admin_keys->authenticate(secret);
  }
  if (ex.key) {
    ex.log.key = ex.key->name;
    co_return true;
  }
  if (!cfg.auth.required) co_return true;
  metrics_.auth_failures.inc({secret.empty() ? "missing" : "unknown"});
  const std::string message =
      secret.empty() ? "Missing API key: send Authorization: Bearer <key> or x-api-key: <key>"
                     : "Invalid API key";
  co_await send_error(ex, http::status::unauthorized, message, "invalid_request_error", {},
                      "invalid_api_key");
  co_return false;
}

// The shared store failed: admit (on_error: open) or refuse with 503 (closed); logged, counted.
awaitable<bool> server::state_failed(exchange& ex, std::string_view op,
                                     const state_unavailable& e) {
  const bool open = ex.snap.cfg->state.fail_open;
  metrics_.state_errors.inc({std::string(op), open ? "admitted" : "refused"});
  log(log_level::warn, "rate-limit store unavailable: " + e.message,
      "\"op\":\"" + std::string(op) + "\",\"action\":\"" + (open ? "admitted" : "refused") +
          "\",\"request_id\":\"" + ex.log.request_id + "\"");
  if (open) co_return true;
  co_await send_error(ex, http::status::service_unavailable,
                      "The rate-limit store is unavailable; try again shortly", "server_error", {},
                      "state_unavailable");
  co_return false;
}

awaitable<bool> server::admit(exchange& ex) {
  if (!ex.key || (!ex.key->rpm && !ex.key->tpm)) co_return true;
  auto r = state_->admit(ex.key->name, {ex.key->rpm.value_or(0), ex.key->tpm.value_or(0)},
                         wall_clock::now());
  if (auto* e = std::get_if<state_unavailable>(&r))
    co_return co_await state_failed(ex, "admit", *e);
  ex.limits = std::get<admission>(r);
  if (ex.limits->allowed) co_return true;
  const bool by_requests = ex.limits->refused_by == "requests";
  metrics_.key_rejections.inc({ex.key->name, by_requests ? "rpm" : "tpm"});
  const auto wait_s = std::max<std::int64_t>(
      1, (ex.limits->retry_after.count() + 999) / 1000);  // whole seconds, rounded up
  ex.retry_after = std::to_string(wait_s);
  const std::string message =
      "Rate limit reached for key '" + ex.key->name + "' on " +
      (by_requests ? "requests per minute (RPM): limit " + std::to_string(*ex.key->rpm)
                   : "tokens per minute (TPM): limit " + std::to_string(*ex.key->tpm)) +
      ". Please try again in " + std::to_string(wait_s) + "s.";
  co_await send_error(ex, http::status::too_many_requests, message,
                      by_requests ? "requests" : "tokens", {}, "rate_limit_exceeded");
  co_return false;
}

// Reserves the most the request can cost before anything goes upstream: every prompt byte
// taken as a token (a tokenizer never makes more tokens than bytes) at the dearer of the input
// and cache-write prices, plus max_tokens (or state.reserve_tokens) of output, at the dearest
// planned candidate. Concurrent requests then cannot overspend the budget together.
awaitable<bool> server::reserve_budget(exchange& ex, std::size_t prompt_bytes,
                                       std::optional<std::uint64_t> max_output,
                                       const std::vector<const providers::model_info*>& models,
                                       std::uint64_t choices) {
  if (!ex.key || !ex.key->budget) co_return true;
  const auto& state_cfg = ex.snap.cfg->state;
  const std::uint64_t output =
      *output_allowance(max_output, true, state_cfg.reserve_tokens, choices);
  micro_usd amount = 0;
  for (const auto* m : models) {
    const double usd = (static_cast<double>(prompt_bytes) * std::max(m->input, m->cache_write) +
                        static_cast<double>(output) * m->output) /
                       1e6;
    amount = std::max(amount, to_micro_usd(usd));
  }
  const auto now = wall_clock::now();
  ex.window = budget_window_for(ex.key->budget->period, now);
  const micro_usd limit = to_micro_usd(ex.key->budget->usd);
  // A reservation outlives any request that can still settle it, then lapses by itself.
  const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(
      ex.snap.cfg->server.timeouts.total + std::chrono::minutes(1));
  auto r = state_->reserve(ex.key->name, ex.window, limit, amount, ttl, now);
  if (auto* e = std::get_if<state_unavailable>(&r)) {
    // Admitted without a reservation (on_error: open): settling an ungranted one still adds
    // the real cost, so the spend is not lost.
    ex.held = reservation{};
    co_return co_await state_failed(ex, "reserve", *e);
  }
  auto& got = std::get<reservation>(r);
  if (got.granted) {
    ex.held = std::move(got);
    co_return true;
  }
  metrics_.key_rejections.inc({ex.key->name, "budget"});
  auto usd = [](micro_usd v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.6f", static_cast<double>(v) / 1e6);
    return std::string(buf);
  };
  const std::string message =
      "Budget exhausted for key '" + ex.key->name + "': " + usd(got.after.spent) + " spent and " +
      usd(got.after.reserved) + " reserved by requests in flight, of " + usd(limit) + " for " +
      ex.window.id + "; this request may cost up to " + usd(amount) + ".";
  co_await send_error(ex, http::status::payment_required, message, "insufficient_quota", {},
                      "budget_exceeded");
  co_return false;
}

// Ends what the request holds: its reservation settles to the real cost, its tokens join the
// key's tokens-per-minute window. Runs for every request, served or not.
void server::settle(exchange& ex) {
  if (!ex.key) return;
  const auto now = wall_clock::now();
  if (ex.held) {
    auto r = state_->settle(ex.key->name, ex.window, *ex.held, to_micro_usd(ex.cost_usd));
    if (auto* e = std::get_if<state_unavailable>(&r)) {
      metrics_.state_errors.inc({"settle", "lost"});
      log(log_level::error, "budget settle failed; the reservation lapses by its TTL",
          "\"key\":" + nlohmann::json(ex.key->name).dump() +
              ",\"error\":" + nlohmann::json(e->message).dump());
    }
    ex.held.reset();
  }
  const std::uint64_t tokens = ex.tokens.prompt_total() + ex.tokens.completion_total();
  if (ex.key->tpm && tokens > 0) {
    auto r = state_->add_tokens(ex.key->name, tokens, now);
    if (std::holds_alternative<state_unavailable>(r))
      metrics_.state_errors.inc({"add_tokens", "lost"});
  }
}

bool server::region_allowed(const exchange& ex, const providers::provider& p) const {
  if (!ex.key || ex.key->allow_regions.empty()) return true;
  const auto& allowed = ex.key->allow_regions;
  return std::find(allowed.begin(), allowed.end(), p.region) != allowed.end();
}

// Control thread: the admin keys from the ledger's database (every gateway sharing it sees
// the same), swapped in whole. Returns an error message, or empty.
std::string server::refresh_admin_keys() {
  if (!ledger_) return "no ledger database (stats.ledger is none)";
  auto stored = ledger_->keys();
  if (auto* e = std::get_if<stats::query_error>(&stored)) return e->message;
  auto table = std::make_shared<key_table>();
  const auto snap = snap_.load();
  for (const auto& k : std::get<std::vector<stats::stored_key>>(stored)) {
    if (k.revoked_ms) continue;
    auto digest = digest_from_hex(k.key_sha256);
    if (!digest || snap->keys.by_name(k.name)) continue;  // a config key of that name wins
    auto v = key_from_spec(k.name, *digest, k.spec);
    if (!v) {  // fail closed: a key whose limits cannot be read is not served
      log(log_level::error, "admin key with an unreadable spec is not served",
          "\"key\":" + nlohmann::json(k.name).dump());
      continue;
    }
    v->created_ms = k.created_ms;
    table->add(std::move(*v));
  }
  admin_keys_.store(std::move(table));
  seed_budgets();
  return {};
}

// Control thread: each budgeted key's spend so far this period, from the ledger, into the
// limit store when it holds none yet (after a restart, or a new period's first request).
void server::seed_budgets() {
  if (!ledger_) return;
  if (steady::now() >= reseed_at_) {
    seeded_.clear();  // seeding only ever raises a spend, so doing it again is safe
    reseed_at_ = steady::now() + std::chrono::seconds(30);
  }
  const auto now = wall_clock::now();
  const auto snap = snap_.load();
  const auto admin = admin_keys_.load();
  for (const auto* table : {&snap->keys, admin.get()}) {
    for (const auto& k : table->all()) {
      if (!k.budget) continue;
      const auto window = budget_window_for(k.budget->period, now);
      if (!seeded_.insert(k.name + "/" + window.id).second) continue;
      auto spent = ledger_->key_spend(k.name, window.start, window.end);
      if (auto* e = std::get_if<stats::query_error>(&spent)) {
        log(log_level::warn, "cannot read a key's spend from the ledger: " + e->message,
            "\"key\":" + nlohmann::json(k.name).dump());
        seeded_.erase(k.name + "/" + window.id);
        continue;
      }
      if (std::holds_alternative<state_unavailable>(
              state_->seed_spent(k.name, window, to_micro_usd(std::get<double>(spent)))))
        seeded_.erase(k.name + "/" + window.id);  // tried again on the next refresh
    }
  }
}

// Control thread, every 2 s: a ledger that cannot write keeps the gateway serving, but says so
// at once and then at most every 30 s, with the backlog, and once more when it writes again.
void server::watch_ledger() {
  if (!ledger_) return;
  auto& w = ledger_watch_;
  const std::uint64_t errors = ledger_->write_errors();
  if (errors > w.errors_seen) {
    w.errors_seen = errors;
    w.failing = true;
    if (steady::now() >= w.next_log) {
      log(log_level::error, "the usage ledger cannot write; events wait in memory and are retried",
          "\"error\":" + nlohmann::json(ledger_->last_error()).dump() +
              ",\"failures\":" + std::to_string(errors - w.errors_logged) +
              ",\"backlog\":" + std::to_string(ledger_->queued()) +
              ",\"dropped\":" + std::to_string(ledger_->dropped()));
      w.errors_logged = errors;
      w.next_log = steady::now() + std::chrono::seconds(30);
    }
  } else if (w.failing && ledger_->last_error().empty()) {
    w.failing = false;
    log(log_level::info, "the usage ledger writes again",
        "\"backlog\":" + std::to_string(ledger_->queued()));
  }
}

// ---- the admin key API (admin listener only) ----

// With an admin token set, every /admin/ endpoint needs it; without one, the key API is off
// (`always`) and the rest is protected by the admin listener's address alone.
bool server::admin_authorized(exchange& ex, bool always) {
  if (!admin_token_) return !always;
  auto v = ex.req[http::field::authorization];
  std::string_view secret = presented_secret(std::string_view(v.data(), v.size()), {});
  const sha256_digest presented = sha256(secret);
  return !secret.empty() &&
         CRYPTO_memcmp(presented.data(), admin_token_->data(), presented.size()) == 0;
}

namespace {

nlohmann::json key_json(const virtual_key& k) {
  nlohmann::json j = nlohmann::json::parse(spec_json(k));
  j["name"] = k.name;
  j["source"] = k.source == key_source::config ? "config" : "admin";
  j["key_sha256_prefix"] = to_hex(k.hash).substr(0, 8);  // enough to tell keys apart, no more
  return j;
}

}  // namespace

// The admin key API's work runs on the control thread (it reads and writes the ledger); each
// answer is a status and a body. Plain functions, not coroutines: GCC 12 mishandles
// initializer-list temporaries inside coroutines.
using admin_answer = std::pair<int, std::string>;

awaitable<void> server::answer_on_control(exchange& ex, std::function<admin_answer()> work) {
  auto [e, answer] = co_await net::co_spawn(
      control_, [&work]() -> awaitable<admin_answer> { co_return work(); }, as_tuple);
  if (e) {
    co_await send_error(ex, http::status::internal_server_error, "The admin request failed",
                        "server_error");
    co_return;
  }
  co_await send(ex, static_cast<http::status>(answer.first), std::move(answer.second));
}

// GET /admin/keys: every key, its limits and its budget's spend this period. No secrets.
awaitable<void> server::admin_keys_list(exchange& ex) {
  co_await answer_on_control(ex, [this] { return keys_listing(); });
}

admin_answer server::keys_listing() {
  const auto snap = snap_.load();
  nlohmann::json data = nlohmann::json::array();
  auto add = [&](const virtual_key& k, nlohmann::json j) {
    if (k.budget) {
      auto w = budget_window_for(k.budget->period, wall_clock::now());
      auto b = state_->budget(k.name, w, wall_clock::now());
      if (auto* st = std::get_if<budget_state>(&b))
        j["budget"]["spend"] = {{"period", w.id},
                                {"spent_usd", static_cast<double>(st->spent) / 1e6},
                                {"reserved_usd", static_cast<double>(st->reserved) / 1e6}};
    }
    data.push_back(std::move(j));
  };
  for (const auto& k : snap->keys.all()) add(k, key_json(k));
  if (ledger_) {
    auto stored = ledger_->keys();
    if (auto* qe = std::get_if<stats::query_error>(&stored))
      return {503, openai_error_body("The key store cannot be read: " + qe->message, "server_error",
                                     {}, "ledger_unavailable")};
    for (const auto& k : std::get<std::vector<stats::stored_key>>(stored)) {
      auto digest = digest_from_hex(k.key_sha256);
      if (!digest) continue;
      auto v = key_from_spec(k.name, *digest, k.spec);
      if (!v) {
        nlohmann::json bad = nlohmann::json::object();
        bad["name"] = k.name;
        bad["source"] = "admin";
        bad["error"] = "its stored limits cannot be read; it is not served";
        data.push_back(std::move(bad));
        continue;
      }
      nlohmann::json j = key_json(*v);
      j["created_ms"] = k.created_ms;
      if (k.revoked_ms) {
        j["revoked_ms"] = *k.revoked_ms;
        data.push_back(std::move(j));
      } else {
        add(*v, std::move(j));
      }
    }
  }
  nlohmann::json out = nlohmann::json::object();
  out["object"] = "list";
  out["data"] = std::move(data);
  return {200, out.dump()};
}

// POST /admin/keys: a new key, stored in the ledger's database (so it survives restarts and
// every gateway sharing the database serves it). A generated secret is shown once, here.
awaitable<void> server::admin_keys_create(exchange& ex) {
  auto parsed = parse_new_key(ex.req.body(), *ex.snap.cfg);
  if (auto* pe = std::get_if<key_request_error>(&parsed)) {
    co_await send_error(ex, http::status::bad_request, pe->message, "invalid_request_error",
                        pe->param, "invalid_value");
    co_return;
  }
  auto made = std::get<new_key>(std::move(parsed));
  co_await answer_on_control(ex, [this, &made] { return key_creation(made); });
}

admin_answer server::key_creation(const new_key& made) {
  const auto snap = snap_.load();
  auto conflict = [](const std::string& message) {
    return admin_answer{409,
                        openai_error_body(message, "invalid_request_error", "name", "key_exists")};
  };
  if (!ledger_)
    return {503, openai_error_body("Admin keys are kept in the ledger database; set "
                                   "stats.ledger to sqlite:PATH or postgres://…",
                                   "server_error", {}, "ledger_unavailable")};
  if (snap->keys.by_name(made.key.name))
    return conflict("Key '" + made.key.name + "' is defined in the config file");
  if (snap->keys.by_digest(made.key.hash) || admin_keys_.load()->by_digest(made.key.hash))
    return conflict("Another key has the same secret");
  stats::stored_key stored;
  stored.name = made.key.name;
  stored.key_sha256 = to_hex(made.key.hash);
  stored.spec = spec_json(made.key);
  stored.created_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(wall_clock::now().time_since_epoch())
          .count();
  auto added = ledger_->add_key(stored);
  if (auto* qe = std::get_if<stats::query_error>(&added))
    return {503, openai_error_body("The key could not be stored: " + qe->message, "server_error",
                                   {}, "ledger_unavailable")};
  if (!std::get<bool>(added)) return conflict("An active key named '" + made.key.name + "' exists");
  if (auto problem = refresh_admin_keys(); !problem.empty())
    log(log_level::warn, "admin keys not refreshed: " + problem);
  nlohmann::json j = key_json(made.key);
  if (!made.secret.empty()) j["key"] = made.secret;
  j["created_ms"] = stored.created_ms;
  log(log_level::info, "admin: key created", "\"key\":" + nlohmann::json(made.key.name).dump());
  return {201, j.dump()};
}

// DELETE /admin/keys?name=N: revokes an admin key at once on this gateway, and within the
// refresh interval on every other gateway sharing the database.
awaitable<void> server::admin_keys_revoke(exchange& ex) {
  auto query = parse_query(ex.req.target());
  auto it = query.find("name");
  if (it == query.end() || it->second.empty()) {
    co_await send_error(ex, http::status::bad_request,
                        "Give the key to revoke as ?name=", "invalid_request_error", "name",
                        "missing_name");
    co_return;
  }
  const std::string name = it->second;
  co_await answer_on_control(ex, [this, &name] { return key_revocation(name); });
}

admin_answer server::key_revocation(const std::string& name) {
  const auto snap = snap_.load();
  auto not_found = [&] {
    return admin_answer{404, openai_error_body("No active admin key named '" + name + "'",
                                               "invalid_request_error", "name", "key_not_found")};
  };
  if (snap->keys.by_name(name))
    return {409, openai_error_body("Key '" + name +
                                       "' is defined in the config file; remove it "
                                       "there",
                                   "invalid_request_error", "name", "config_key")};
  if (!ledger_) return not_found();
  auto revoked = ledger_->revoke_key(name, wall_clock::now());
  if (auto* qe = std::get_if<stats::query_error>(&revoked))
    return {503, openai_error_body("The key could not be revoked: " + qe->message, "server_error",
                                   {}, "ledger_unavailable")};
  if (!std::get<bool>(revoked)) return not_found();
  refresh_admin_keys();
  log(log_level::info, "admin: key revoked", "\"key\":" + nlohmann::json(name).dump());
  nlohmann::json out = nlohmann::json::object();
  out["name"] = name;
  out["revoked"] = true;
  return {200, out.dump()};
}

// ---- sessions ----

void server::finish(exchange& ex) {
  buffered_.fetch_sub(ex.buffered);
  ex.buffered = 0;
  ex.log.latency_ms = seconds_since(ex.start) * 1000;
  if (ex.provider) {
    const auto& p = *ex.provider;
    const auto& m = *ex.model;
    metrics_.requests.inc({ex.log.route, p.name, m.id, p.region, std::to_string(ex.log.status)});
    if (ex.emitted <= ex.log.fallback_index) {
      const bool ok = ex.log.status == 200 && ex.log.error.empty();
      emit_attempt(ex, ok ? "ok" : ex.log.error.empty() ? "error" : ex.log.error, ex.log.status);
    }
    metrics_.duration.observe({p.name}, ex.log.latency_ms / 1000);
    metrics_.overhead.observe({}, std::max(0.0, ex.log.latency_ms / 1000 - ex.upstream_seconds));
  } else if (ex.log.path == "/v1/chat/completions") {
    metrics_.requests.inc({ex.log.route, "", "", "", std::to_string(ex.log.status)});
  }
  // After the last attempt was accounted: the log says the number the ledger bills.
  ex.log.input_tokens = ex.tokens.prompt_total();
  ex.log.output_tokens = ex.tokens.completion_total();
  ex.log.estimated = ex.estimated;
  settle(ex);
  write_access_log(ex.log);
}

awaitable<void> server::dispatch(exchange& ex, bool admin) {
  // Generous for tool schemas (OpenAI caps structured outputs far lower), shallow enough that no
  // recursive JSON code can exhaust a coroutine's stack.
  static constexpr std::size_t k_max_json_depth = 128;
  std::string_view target = ex.req.target();
  std::string_view path = target.substr(0, target.find('?'));
  ex.log.method = std::string(ex.req.method_string());
  ex.log.path = std::string(path);
  std::string allowed;
  for (const auto& r : admin ? admin_routes() : routes()) {
    if (r.path != path) continue;
    if (r.method == ex.req.method()) {
      // Bounded before any handler runs: the router's facts parser and the dialect translators
      // build DOMs, and walking or dumping one recurses once per level.
      // No JSON text holds a raw NUL byte; some parsers stop at one and ignore what follows,
      // so a body with one could be read two ways.
      if (ex.req.body().find('\0') != std::string::npos) {
        ex.anthropic_api = path.starts_with("/v1/messages");
        co_await send_error(ex, http::status::bad_request,
                            "request body is not valid JSON: it contains a NUL byte, and nothing "
                            "but whitespace may follow the JSON value",
                            "invalid_request_error", {}, "invalid_json");
        co_return;
      }
      if (json_nesting_exceeds(ex.req.body(), k_max_json_depth)) {
        ex.anthropic_api = path.starts_with("/v1/messages");
        const std::string message =
            "JSON nesting too deep (the limit is " + std::to_string(k_max_json_depth) + " levels)";
        co_await send_error(ex, http::status::bad_request, message, "invalid_request_error", {},
                            "nesting_too_deep");
        co_return;
      }
      if (admin && path.starts_with("/admin/") &&
          !admin_authorized(ex, path.starts_with("/admin/keys"))) {
        const bool configured = admin_token_.has_value();
        // Built before the co_await (GCC 12 and class temporaries of a conditional).
        const std::string message =
            configured ? "This admin endpoint needs Authorization: Bearer <admin token>"
                       : "Set " + ex.snap.cfg->auth.admin_token_env +
                             " (auth.admin_token_env) to enable the admin key API";
        co_await send_error(ex, configured ? http::status::unauthorized : http::status::forbidden,
                            message, "invalid_request_error", {},
                            configured ? "invalid_admin_token" : "admin_disabled");
        co_return;
      }
      ex.on_admin_listener = admin;
      if (!admin && path == "/v1/generation" && admin_token_ && admin_authorized(ex, true)) {
        ex.admin_caller = true;  // the operator looking up any request
      } else if (!admin && path.starts_with("/v1/")) {
        ex.anthropic_api = path.starts_with("/v1/messages");
        if (!co_await authenticate(ex)) co_return;
      }
      co_await (this->*r.fn)(ex);
      co_return;
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string(http::to_string(r.method));
  }
  if (!allowed.empty()) {
    co_await send_error(
        ex, http::status::method_not_allowed,
        "Method " + ex.log.method + " is not allowed on " + ex.log.path + "; use " + allowed,
        "invalid_request_error", {}, "method_not_allowed");
  } else {
    co_await send_error(ex, http::status::not_found, "Unknown path " + ex.log.path,
                        "invalid_request_error", {}, "not_found");
  }
}

// Answers a request that cannot be parsed, then the session closes.
awaitable<void> reject(beast::tcp_stream& stream, http::status status, std::string message,
                       std::string_view code) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set("x-request-id", request_id_for({}));
  res.body() = openai_error_body(message, "invalid_request_error", {}, code);
  res.keep_alive(false);
  res.prepare_payload();
  co_await http::async_write(stream, res, as_tuple);  // the session closes either way
  log(log_level::debug, "rejected request: " + message, {});
}

awaitable<void> server::session(worker& w, tcp::socket socket, bool admin) {
  struct connection_count {
    std::atomic<std::uint32_t>& all;
    std::atomic<std::uint32_t>& listener;
    ~connection_count() {
      --all;
      --listener;
    }
  } counted{connections_, admin ? admin_connections_ : public_connections_};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  const auto initial = snap_.load();
  const auto limits = initial->cfg->server.limits;
  const auto timeouts = initial->cfg->server.timeouts;
  bool refused = false;  // answered before the request was read whole: linger before closing
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(limits.max_header_bytes);
    parser.body_limit(limits.max_body_bytes);
    stream.expires_after(timeouts.header);
    w.idle.insert(&stream);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, as_tuple);
    w.idle.erase(&stream);
    if (hec) {
      // A peer that closes between requests, or idles past the header deadline, is not an error.
      // A declared Content-Length over the limit is caught here, before any body is read.
      if (hec == http::error::header_limit) {
        refused = true;
        co_await reject(stream, http::status::request_header_fields_too_large,
                        "Request headers are too large", "headers_too_large");
      } else if (hec == http::error::body_limit) {
        refused = true;
        co_await reject(
            stream, http::status::payload_too_large,
            "Request body exceeds the limit of " + std::to_string(limits.max_body_bytes) + " bytes",
            "request_too_large");
      } else if (hec != http::error::end_of_stream && hec != beast::error::timeout &&
                 hec != net::error::operation_aborted && hec != net::error::connection_reset &&
                 hec != net::error::eof) {
        refused = true;
        co_await reject(stream, http::status::bad_request,
                        "Malformed HTTP request: " + hec.message(), "bad_http");
      }
      break;
    }
    // Framing two parsers could read two ways is refused before any body is read (request
    // smuggling). Beast itself refuses Content-Length with Transfer-Encoding and unequal lengths,
    // but accepts repeated equal lengths ("5, 5" or two fields) and codings after "chunked".
    std::size_t lengths = 0, codings = 0;
    bool plain = true;
    for (const auto& f : parser.get()) {
      if (f.name() == http::field::content_length) {
        ++lengths;
        plain = plain && f.value().find(',') == std::string_view::npos;
      } else if (f.name() == http::field::transfer_encoding) {
        ++codings;
        plain = plain && beast::iequals(f.value(), "chunked");
      }
    }
    if (lengths > 1 || codings > 1 || (lengths && codings) || !plain) {
      refused = true;
      co_await reject(stream, http::status::bad_request,
                      "Ambiguous request framing: send one Content-Length or "
                      "Transfer-Encoding: chunked",
                      "bad_http");
      break;
    }
    const auto start = steady::now();
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      co_await http::async_write(stream, cont, as_tuple);
    }
    auto [bec, bn] = co_await http::async_read(stream, buffer, parser, as_tuple);
    auto snap = snap_.load();  // the request keeps the snapshot it started with
    access_record record;
    record.request_id = request_id_for({});  // always Meridian's own: the ledger's key
    record.client_request_id = sane_request_id(parser.get()["x-request-id"]);
    exchange ex{w,
                stream,
                parser.get(),
                *snap,
                start,
                parser.get().keep_alive() && !draining_,
                std::move(record)};
    if (bec) {
      ex.keep_alive = false;
      ex.log.method = std::string(parser.get().method_string());
      ex.log.path = std::string(parser.get().target());
      if (bec == http::error::body_limit) {
        refused = true;
        co_await send_error(
            ex, http::status::payload_too_large,
            "Request body exceeds the limit of " + std::to_string(limits.max_body_bytes) + " bytes",
            "invalid_request_error", {}, "request_too_large");
        write_access_log(ex.log);
      }
      break;
    }
    ++inflight_;
    metrics_.inflight.add({}, 1);
    try {
      co_await dispatch(ex, admin);
    } catch (const std::exception& e) {
      // Unexpected: log it, show the client nothing internal, end only this session.
      log(log_level::error, "unhandled exception in request",
          "\"request_id\":\"" + ex.log.request_id + "\"");
      log(log_level::debug, e.what());
      ex.keep_alive = false;
      ex.log.status = 500;
      ex.log.error = "internal_error";
    }
    finish(ex);
    --inflight_;
    metrics_.inflight.add({}, -1);
    if (!ex.keep_alive || draining_) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (refused) {
    // Lingering close: what is left of a refused request is read and dropped for a moment, or
    // the kernel answers those bytes with a reset that destroys the error reply just sent.
    stream.expires_after(std::chrono::seconds(1));
    char sink[16384];
    for (std::size_t dropped = 0; dropped < (1u << 20);) {
      auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), as_tuple);
      if (ec) break;
      dropped += n;
    }
  }
  stream.close();
}

// Accepts until the listener closes. Out of descriptors (EMFILE, ENFILE) or kernel memory, the
// loop backs off (50 ms, doubling to 1 s) instead of spinning on a connection it cannot take,
// and logs once per 5 s with a count; every failure is in meridian_accept_errors_total.
// max_connections counts each listener on its own, so a flood on the public port never locks
// the operator out of the admin listener.
awaitable<void> server::accept_loop(worker& w, tcp::acceptor& acceptor, bool admin) {
  const auto max_conn = snap_.load()->cfg->server.limits.max_connections;
  auto& open_here = admin ? admin_connections_ : public_connections_;
  const std::string listener = admin ? "admin" : "public";
  std::chrono::milliseconds pause{0};
  std::uint64_t unlogged = 0;
  steady::time_point next_log{};
  net::steady_timer timer(w.ioc);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(as_tuple);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      const bool exhausted = ec == net::error::no_descriptors ||
                             ec.value() == ENFILE || ec == net::error::no_buffer_space ||
                             ec == net::error::no_memory;
      const std::string reason = ec == net::error::no_descriptors ? "emfile"
                                 : ec.value() == ENFILE           ? "enfile"
                                 : exhausted                      ? "no_memory"
                                                                  : "other";
      metrics_.accept_errors.inc({listener, reason});
      ++unlogged;
      if (steady::now() >= next_log) {
        log(log_level::warn, "accept failed: " + ec.message(),
            "\"listener\":\"" + listener + "\",\"count\":" + std::to_string(unlogged) +
                ",\"backoff_ms\":" + std::to_string(pause.count()));
        unlogged = 0;
        next_log = steady::now() + std::chrono::seconds(5);
      }
      if (exhausted) {
        pause = std::min<std::chrono::milliseconds>(
            std::max<std::chrono::milliseconds>(pause * 2, std::chrono::milliseconds(50)),
            std::chrono::seconds(1));
        timer.expires_after(pause);
        co_await timer.async_wait(as_tuple);
      }
      continue;
    }
    pause = std::chrono::milliseconds(0);
    if (open_here.fetch_add(1) >= max_conn) {
      --open_here;
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++connections_;
    socket.set_option(tcp::no_delay(true));
    net::co_spawn(w.ioc, session(w, std::move(socket), admin), [](std::exception_ptr e) {
      if (e) log(log_level::error, "session ended by an exception");
    });
  }
}

void server::begin_drain() {
  draining_ = true;
  for (auto& w : workers_) {
    net::post(w->ioc, [wp = w.get()] {
      error_code ignored;
      wp->acceptor->close(ignored);
      if (wp->admin_acceptor) wp->admin_acceptor->close(ignored);
      for (auto* s : wp->idle) s->cancel();
    });
  }
}

int server::run() {
  const auto first = snap_.load();
  const auto& cfg = *first->cfg;
  unsigned n =
      cfg.server.threads ? cfg.server.threads : std::max(1u, std::thread::hardware_concurrency());
  error_code ec;
  auto address = net::ip::make_address(cfg.server.listen.host, ec);
  if (ec) {
    log(log_level::error, "server.listen: invalid address " + cfg.server.listen.host);
    return 1;
  }
  tcp::endpoint ep(address, cfg.server.listen.port);
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>();
    w->acceptor = std::make_unique<tcp::acceptor>(w->ioc);
    w->acceptor->open(ep.protocol(), ec);
    if (!ec) w->acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(w->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
          0)
        ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) w->acceptor->bind(ep, ec);
    if (!ec) w->acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      log(log_level::error, "cannot listen on " + cfg.server.listen.host + ":" +
                                std::to_string(ep.port()) + ": " + ec.message());
      return 1;
    }
    ep.port(w->acceptor->local_endpoint().port());  // port 0: the others join the one picked
    workers_.push_back(std::move(w));
  }
  if (cfg.server.admin_listen) {
    const auto& al = *cfg.server.admin_listen;
    auto admin_address = net::ip::make_address(al.host, ec);
    auto& w = *workers_.front();
    if (!ec) {
      w.admin_acceptor = std::make_unique<tcp::acceptor>(w.ioc);
      tcp::endpoint aep(admin_address, al.port);
      w.admin_acceptor->open(aep.protocol(), ec);
      if (!ec) w.admin_acceptor->set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) w.admin_acceptor->bind(aep, ec);
      if (!ec) w.admin_acceptor->listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      log(log_level::error, "cannot listen on server.admin_listen " + al.host + ":" +
                                std::to_string(al.port) + ": " + ec.message());
      return 1;
    }
    std::printf("{\"event\":\"admin_listening\",\"address\":\"%s\",\"port\":%u}\n", al.host.c_str(),
                static_cast<unsigned>(w.admin_acceptor->local_endpoint().port()));
  }
  // Nothing is served before the admin keys are known and each budget's spend so far this
  // period is back from the ledger (a restart must not refill a budget).
  if (auto problem = refresh_admin_keys(); !problem.empty() && ledger_)
    log(log_level::warn, "admin keys not loaded: " + problem);
  // Signals are caught from before "listening" is announced: a SIGTERM right after that line
  // still drains (asio queues it until the control loop waits for it).
  net::signal_set signals(control_, SIGINT, SIGTERM, SIGHUP);
  // Watching starts before "listening" is announced, so no change after that line is missed.
  std::jthread watcher;
  if (!config_path_.empty()) {
    std::promise<void> watching;
    auto started = watching.get_future();
    watcher = std::jthread([this, &watching](std::stop_token st) { watch_config(st, &watching); });
    started.wait();
  }
  std::printf("{\"event\":\"listening\",\"address\":\"%s\",\"port\":%u,\"threads\":%u}\n",
              cfg.server.listen.host.c_str(), static_cast<unsigned>(ep.port()), n);
  std::fflush(stdout);
  for (const auto& p : first->catalog.providers) metrics_.provider_up.set({p.name}, 1);
  for (auto& w : workers_) {
    net::co_spawn(w->ioc, accept_loop(*w, *w->acceptor, false), net::detached);
    if (w->admin_acceptor)
      net::co_spawn(w->ioc, accept_loop(*w, *w->admin_acceptor, true), net::detached);
    w->thread = std::thread([wp = w.get()] { wp->ioc.run(); });
  }

  // The control thread (this one): signals, reloads, and the config file watcher's wake-ups.
  auto guard = net::make_work_guard(control_);
  // Admin keys and budget spends come from the ledger's database (read before "listening",
  // below); re-read every few seconds so a key created or revoked on one gateway of a fleet
  // reaches the others.
  net::steady_timer key_refresh(control_);
  std::function<void(const error_code&)> on_refresh = [&](const error_code& tec) {
    if (tec) return;
    refresh_admin_keys();
    watch_ledger();
    key_refresh.expires_after(std::chrono::seconds(2));
    key_refresh.async_wait(on_refresh);
  };
  key_refresh.expires_after(std::chrono::seconds(2));
  key_refresh.async_wait(on_refresh);
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& sec, int sig) {
    if (sec) return;
    if (sig == SIGHUP) {
      bool applied = false;
      reload("sighup", applied);
      signals.async_wait(on_signal);
      return;
    }
    log(log_level::info, "shutting down: draining in-flight requests",
        "\"signal\":" + std::to_string(sig) + ",\"inflight\":" + std::to_string(inflight_.load()));
    begin_drain();
    guard.reset();
    key_refresh.cancel();
    control_.stop();
  };
  signals.async_wait(on_signal);
  control_.run();
  watcher = {};
  const auto drain_deadline = steady::now() + cfg.server.timeouts.drain;
  while ((inflight_ > 0 || connections_ > 0) && steady::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool clean = inflight_ == 0;
  if (!clean)
    log(log_level::warn, "drain deadline passed; closing remaining requests",
        "\"inflight\":" + std::to_string(inflight_.load()));
  for (auto& w : workers_) w->ioc.stop();
  for (auto& w : workers_) w->thread.join();
  if (ledger_) {
    ledger_->stop();  // writes everything still queued: a clean shutdown loses no accounting
    if (!ledger_->last_error().empty())
      log(log_level::error,
          "the usage ledger could not write everything: " + ledger_->last_error());
  }
  log(log_level::info, "stopped");
  return 0;
}

}  // namespace

int serve(std::shared_ptr<const snapshot> snap, const std::string& config_path,
          const std::string& config_text) {
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<server> s;
  try {
    s = std::make_unique<server>(std::move(snap), config_path, config_text);
  } catch (const std::exception& e) {  // e.g. a state URL the Redis client cannot use
    log(log_level::error, std::string("cannot start: ") + e.what());
    return 1;
  }
  return s->run();
}

}  // namespace meridian::gateway
