// The server's parts, shared by the files that implement it (gateway/listener.cpp, session.cpp,
// routes.cpp, admission.cpp, proxy.cpp, attempt.cpp, relay.cpp, usage.cpp, admin.cpp, control.cpp):
// the request being served (`exchange`), each event-loop thread's state (`worker`), the metric
// families, and the `server` class whose members those files define. Beast and Asio are here,
// so only those files include it; gateway/server.hpp is what the rest of the program sees.
#pragma once

#include "gateway/server.hpp"

#include <openssl/crypto.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
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

#include "access/limits.hpp"
#include "gateway/asio.hpp"
#include "gateway/errors.hpp"
#include "gateway/http_util.hpp"
#include "gateway/upstream.hpp"
#include "policies/affinity.hpp"
#include "policies/fallback.hpp"
#include "policies/resolve.hpp"
#include "policies/router.hpp"
#include "providers/anthropic.hpp"
#include "providers/anthropic_inbound.hpp"
#include "providers/dialect.hpp"
#include "providers/lanes.hpp"
#include "providers/openai.hpp"
#include "providers/responses_inbound.hpp"
#include "providers/sse.hpp"
#include "providers/stream_pipeline.hpp"
#include "stats/accounting.hpp"
#include "stats/api.hpp"
#include "stats/energy.hpp"
#include "stats/estimate.hpp"
#include "stats/ledger.hpp"
#include "stats/metrics.hpp"
#include "stats/response_store.hpp"
#include "stats/trace.hpp"

// GCC 12 reports Asio's awaitable frames, allocated by their own operator new and freed by
// the matching operator delete, as "mismatched-new-delete" once coroutines with external
// linkage are inlined into each other (a false positive: Asio pairs them itself). Only the
// files that include this header, all of them coroutine code, turn it off.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace meridian::gateway::detail {

// Rate limits, budgets and where they are counted are the access library's (access/limits.hpp).
using access::admission;
using access::budget_state;
using access::budget_window;
using access::budget_window_for;
using access::limit_state;
using access::make_local_state;
using access::make_redis_state;
using access::micro_usd;
using access::output_allowance;
using access::output_ceiling;
using access::reservation;
using access::reservation_amount;
using access::state_unavailable;
using access::to_micro_usd;
using access::wall_clock;

inline constexpr std::string_view k_version = MERIDIAN_VERSION;  // CMake's project version
inline constexpr std::size_t k_max_upstream_body = 32u << 20;    // a whole (non-streamed) answer
inline constexpr std::size_t k_read_chunk = 16u << 10;
inline constexpr int k_max_interim =
    8;  // 1xx responses skipped before a final one; more is an attack

// Header values must not carry CR, LF or other control characters.
inline std::string header_safe(std::string s) {
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
        trace_spans(r.gauge("meridian_trace_spans",
                            "Spans since start, by fate: exported, or dropped (queue full or the "
                            "collector failed).",
                            {"result"})),
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
  stats::gauge_family& trace_spans;    // read from the exporter at scrape time
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

inline double seconds_since(steady::time_point t) {
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
  std::string retry_after;                          // forwarded from an upstream 429
  core::api_shape shape = core::api_shape::openai;  // the route's: how answers and errors look
  // A /v1/responses call: what answering it in the Responses shape needs.
  std::optional<providers::responses_translation> responses;
  // The client's own call, for pass-through lanes (providers/lanes.hpp); unset for OpenAI chat,
  // whose canonical body is its own.
  std::optional<providers::native_call> native;
  std::string native_body;   // the client's body as rewritten for the pass-through, if it was
  std::string client_model;  // the model a Gemini client named in the path
  std::vector<std::string> pass_through_dropped;  // what that rewrite left out
  // What the translation lanes leave out, and the first thing they could only refuse.
  std::vector<std::string> dropped;
  std::optional<providers::request_error> untranslatable;
  // The canonical body without the reasoning_effort a translation made, for models that take
  // none (model_info::reasoning), and its parse; made at the first such attempt.
  std::string unreasoned_body;
  std::optional<providers::chat_request> unreasoned;
  std::string failed_attempts;  // "provider/model=why,..." of the attempts that did not answer
  bool attempt_failed = false;  // the current attempt is among them
  bool usage_asked = false;     // a chat client's stream_options.include_usage was true
  bool translated = false;      // the attempt being answered took a translation lane
  std::vector<std::string> lane_dropped;  // what that attempt's lane left out, in all
  bool on_admin_listener = false;         // arrived on server.admin_listen
  bool admin_caller = false;              // presented the admin token where a key could go
  std::size_t emitted = 0;                // attempts already handed to accounting
  std::uint64_t est_prompt = 0;      // the router's prompt estimate, used when usage is missing
  stats::text_tally relayed;         // generated text relayed to the client, for the same
  std::uint64_t relayed_chunks = 0;  // canonical chunks relayed (a cut stream was still served)
  std::optional<std::uint64_t> output_ceiling;  // estimated output tokens past which a stream
                                                // is cut (an upstream ignoring max_tokens)
  std::uint64_t buffered = 0;                   // bytes of whole answers charged to the global cap
  bool streamed = false;                        // the answer went out as a stream
  bool stream_complete = false;      // ... and its final event arrived (its usage is final)
  bool estimated = false;            // `tokens` is Meridian's estimate, told to the client too
  std::string route_explain;         // x-meridian-route: policy and why
  std::string affinity_session;      // the conversation's name for session affinity, or empty
  const virtual_key* key = nullptr;  // the authenticated virtual key, if any
  std::shared_ptr<const key_table> admin_keys;  // keeps an admin-created key alive meanwhile
  std::optional<admission> limits;              // for the x-ratelimit-* headers
  std::optional<reservation> held;              // budget reserved until the request ends
  budget_window window;                         // the budget period `held` belongs to
  double cost_usd = 0;                          // summed over attempts; settles `held`
  // Tracing (tracing.endpoint set): the request's span in the client's trace (or a new one),
  // the client's parent span, and the current attempt's span and start.
  std::optional<stats::trace_context> trace;
  std::string trace_parent;
  std::chrono::system_clock::time_point wall_start = std::chrono::system_clock::now();
  std::string attempt_span;
  std::chrono::system_clock::time_point attempt_wall_start;
};

class server {
 public:
  server(std::shared_ptr<const snapshot> snap, std::string config_path, std::string config_text)
      : snap_(std::move(snap)),
        config_path_(std::move(config_path)),
        loaded_text_(std::move(config_text)),
        health_(policies::health_options_from(snap_.load()->cfg->health)),
        affinity_(snap_.load()->cfg->affinity.max_sessions, snap_.load()->cfg->affinity.ttl),
        metrics_(registry_) {
    // The ledger and its counters live as long as the process, not one config snapshot.
    const auto& st = snap_.load()->cfg->stats;
    if (!st.ledger_path.empty() || !st.ledger_postgres.empty())
      ledger_ = std::make_unique<stats::ledger>(stats::ledger_options_from(st));
    if (const auto& tr = snap_.load()->cfg->tracing; !tr.endpoint.empty()) {
      stats::exporter_options o;
      o.endpoint = tr.endpoint;
      o.service_name = tr.service_name;
      o.max_queue = static_cast<std::size_t>(tr.max_queue);
      o.flush_interval = std::chrono::duration_cast<std::chrono::milliseconds>(tr.flush_interval);
      tracer_ = std::make_unique<stats::span_exporter>(o);
    }
    if (ledger_)  // on the ledger's database, whose migrations made its table
      responses_store_ =
          std::make_unique<stats::response_store>(stats::response_store_options_from(st));
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
  // Who may call a route: anyone who reaches the listener, a virtual key (when keys are on),
  // a key or the admin token (the operator looking up any request), the admin token when one is
  // set, or the admin token always (the key API is off without one).
  enum class guard { none, key, key_or_admin, admin, admin_always };
  struct route {
    http::verb method;
    std::string_view path;
    handler fn;
    core::api_shape shape = core::api_shape::openai;  // how its answers and errors look
    guard auth = guard::none;
    bool prefix = false;  // `path` is a prefix: Gemini's models/{model}:{method}
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
  struct admin_body {
    int status;
    std::string body;
  };
  using admin_answer = std::variant<admin_body, api_error>;
  awaitable<void> answer_on_control(exchange& ex, std::function<admin_answer()> work);
  admin_answer keys_listing();
  admin_answer key_creation(const new_key& made);
  admin_answer key_revocation(const std::string& name);
  bool admin_authorized(exchange& ex, bool always);
  std::string refresh_admin_keys();
  void seed_budgets();
  void watch_ledger();

  // Virtual keys: each returns false after answering the client itself.
  awaitable<bool> authenticate(exchange& ex);
  awaitable<bool> admit(exchange& ex);
  // The provider's and the deployment's own rpm/tpm (providers.X.rpm, models.m.rpm): the
  // limit that refuses ("provider.rpm", "model.tpm", ...), or empty when the attempt may go.
  // Counted in the same store as keys' limits; an unreachable store admits.
  std::string_view quota_refusal(const providers::provider& p, const providers::model_info& m);
  void count_quota_tokens(const providers::provider& p, const providers::model_info& m,
                          std::uint64_t tokens);
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
  awaitable<void> responses(exchange& ex);
  awaitable<void> response_get(exchange& ex);
  awaitable<void> response_delete(exchange& ex);
  awaitable<stats::result<std::optional<stats::stored_response>>> stored_response(
      exchange& ex, const std::string& id);
  awaitable<void> keep_response(exchange& ex, const std::string& response);
  awaitable<void> answer_response_natively(exchange& ex, const providers::provider& p,
                                           const providers::model_info& m, std::string& answer,
                                           steady::time_point attempt_start,
                                           std::optional<double> first_byte_ms);
  std::optional<std::string> response_owner(const exchange& ex) const;
  awaitable<void> serve_canonical(exchange& ex, const std::string& body);
  awaitable<void> count_tokens(exchange& ex);
  awaitable<void> gemini(exchange& ex);
  awaitable<void> gemini_models(exchange& ex);
  awaitable<std::string> upstream_count_tokens(exchange& ex, const providers::provider& p,
                                               providers::upstream_request&& r);
  std::vector<std::pair<std::string, std::string>> native_headers(const exchange& ex) const;
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
  awaitable<void> send_overloaded(exchange& ex);
  awaitable<void> send_fault(exchange& ex, const providers::provider& p, upstream_fault fault,
                             const std::string& detail);
  awaitable<void> serve_chat(exchange& ex, std::string_view body,
                             const providers::chat_request& req);
  static const providers::chat_request* unreasoned(exchange& ex, std::string_view body,
                                                   const providers::chat_request& req,
                                                   const providers::model_info& m,
                                                   config::dialect_kind backend);
  void record_failure(exchange& ex, const providers::provider& p, const providers::model_info& m,
                      std::string_view why);
  void trace_attempt(const exchange& ex, std::string_view outcome, unsigned status);
  void trace_request(const exchange& ex);
  void record_success(exchange& ex, const providers::provider& p, const providers::model_info& m,
                      steady::time_point attempt_start, std::optional<double> first_byte_ms);
  void update_provider_up(const providers::provider& p);
  void emit_attempt(exchange& ex, std::string_view outcome, unsigned status);
  void estimate_tokens(exchange& ex);
  awaitable<void> stats_share(exchange& ex);
  awaitable<void> stats_daily(exchange& ex);
  awaitable<void> stats_series(exchange& ex);
  using stats_query_fn = stats::result<nlohmann::json> (*)(const stats::ledger*,
                                                           const stats::query_params&,
                                                           stats::time_point);
  awaitable<void> stats_json(exchange& ex, stats_query_fn query);
  awaitable<void> generation(exchange& ex);
  awaitable<void> dashboard(exchange& ex);
  awaitable<void> send_stats(exchange& ex, stats::result<std::string> answer,
                             std::string_view type);
  awaitable<void> relay_stream(exchange& ex, const providers::dialect& d, upstream_exchange& x,
                               steady::time_point deadline, bool& reusable);
  awaitable<void> send(exchange& ex, http::status status, std::string body,
                       std::string_view content_type = "application/json");
  // Pass a named api_error (GCC 12 and class temporaries in a co_await; see routes.cpp).
  awaitable<void> send_error(exchange& ex, const api_error& e);
  awaitable<void> send_upstream_status(
      exchange& ex, unsigned status, std::string_view body, std::string_view retry_after,
      providers::upstream_error kind = providers::upstream_error::final);
  void set_routed_headers(exchange& ex, http::fields& f) const;
  void finish(exchange& ex);
  void begin_drain();

  // Swapped whole by a reload; each request keeps the one it started with.
  std::atomic<std::shared_ptr<const snapshot>> snap_;
  std::string config_path_;
  std::string loaded_text_;       // the config text behind snap_; only the control thread uses it
  net::io_context control_{1};    // signals, reloads and the file watcher's wake-ups
  policies::health_book health_;  // outlives reloads
  policies::affinity_table affinity_;      // sessions to deployments; outlives reloads
  std::unique_ptr<stats::ledger> ledger_;  // null when stats.ledger is none
  std::unique_ptr<stats::response_store> responses_store_;  // with the ledger, on its database
  std::unique_ptr<stats::span_exporter> tracer_;            // null unless tracing.endpoint is set
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
  std::atomic<std::uint32_t> connections_{0};         // every open client connection (drain)
  std::atomic<std::uint32_t> public_connections_{0};  // of them, on server.listen
  std::atomic<std::uint32_t> admin_connections_{0};   // of them, on server.admin_listen
  std::atomic<std::int64_t> inflight_{0};
  std::atomic<std::uint64_t> buffered_{0};  // whole upstream answers held now, all requests
  std::atomic<bool> draining_{false};
};

// Answers a request that cannot be parsed (session.cpp), before any exchange exists.
awaitable<void> reject(beast::tcp_stream& stream, api_error e);

}  // namespace meridian::gateway::detail
