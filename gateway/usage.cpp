// Accounting of each attempt (usage events to metrics and the ledger, estimates where the
// upstream reported none) and the statistics endpoints, whose ledger queries run on the control
// thread.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

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
  ev.session = ex.log.session;
  ev.app = ex.log.app;
  ev.task = ex.log.task;
  ev.language = ex.log.language;
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
    // The same tokens with no cache: what caching saved is the difference.
    providers::usage uncached = u;
    uncached.input = u.prompt_total();
    uncached.cache_read = uncached.cache_write = uncached.cache_write_1h = 0;
    ev.uncached_cost_usd = providers::cost_usd(uncached, m);
  }
  stats::apply_energy(*ex.snap.cfg, ev);
  count_quota_tokens(p, m, ev.tokens.total());
  if (ex.trace && ex.trace->sampled && tracer_) trace_attempt(ex, outcome, status);
  ex.cost_usd += ev.cost_usd;
  if (ex.key && ev.cost_usd > 0) metrics_.key_cost.inc({ex.key->name}, ev.cost_usd);
  accounting_->on_event(ev);
  ex.emitted = ex.log.fallback_index + 1;
}

// ---- tracing: OpenTelemetry spans with the GenAI semantic conventions ----

namespace {

std::string_view gen_ai_system(config::dialect_kind d) {
  switch (d) {
    case config::dialect_kind::anthropic:
      return "anthropic";
    case config::dialect_kind::gemini:
      return "gcp.gemini";
    case config::dialect_kind::openai:
      break;
  }
  return "openai";
}

}  // namespace

// One attempt as a CLIENT span under the request's: which provider and model, the tokens it
// reported (or Meridian estimated), the outcome.
void server::trace_attempt(const exchange& ex, std::string_view outcome, unsigned status) {
  if (ex.attempt_span.empty() || !ex.provider || !ex.model) return;
  const auto& p = *ex.provider;
  const auto& m = *ex.model;
  stats::span s;
  s.trace_id = ex.trace->trace_id;
  s.span_id = ex.attempt_span;
  s.parent_span_id = ex.trace->span_id;
  s.name = "chat " + m.id;
  s.kind = stats::span_kind::client;
  s.start_unix_ns = stats::unix_ns(ex.attempt_wall_start);
  s.end_unix_ns = stats::unix_ns(std::chrono::system_clock::now());
  const bool ok = outcome == "ok";
  s.attributes = {{"gen_ai.operation.name", std::string("chat")},
                  {"gen_ai.system", std::string(gen_ai_system(p.dialect))},
                  {"gen_ai.provider.name", p.name},
                  {"gen_ai.request.model", ex.log.model},
                  {"gen_ai.response.model", m.id},
                  {"server.address", p.url.host},
                  {"server.port", static_cast<std::int64_t>(p.url.port)},
                  {"http.response.status_code", static_cast<std::int64_t>(status)},
                  {"meridian.attempt", static_cast<std::int64_t>(ex.log.fallback_index)},
                  {"meridian.outcome", std::string(outcome)},
                  {"meridian.region", p.region}};
  if (ok || ex.relayed_chunks > 0) {
    s.attributes.emplace_back("gen_ai.usage.input_tokens",
                              static_cast<std::int64_t>(ex.tokens.prompt_total()));
    s.attributes.emplace_back("gen_ai.usage.output_tokens",
                              static_cast<std::int64_t>(ex.tokens.completion_total()));
    s.attributes.emplace_back("meridian.cost_usd", providers::cost_usd(ex.tokens, m));
    s.attributes.emplace_back("meridian.estimated", ex.estimated);
  }
  s.error = !ok;
  if (!ok) s.status_message = std::string(outcome);
  tracer_->record(std::move(s));
}

// The request as a SERVER span: in the client's trace, parented to its span.
void server::trace_request(const exchange& ex) {
  stats::span s;
  s.trace_id = ex.trace->trace_id;
  s.span_id = ex.trace->span_id;
  s.parent_span_id = ex.trace_parent;
  s.name = ex.log.method + " " + ex.log.path;
  s.kind = stats::span_kind::server;
  s.start_unix_ns = stats::unix_ns(ex.wall_start);
  s.end_unix_ns = stats::unix_ns(std::chrono::system_clock::now());
  s.attributes = {{"http.request.method", ex.log.method},
                  {"url.path", ex.log.path},
                  {"http.response.status_code", static_cast<std::int64_t>(ex.log.status)},
                  {"meridian.request_id", ex.log.request_id}};
  if (!ex.log.model.empty()) s.attributes.emplace_back("gen_ai.request.model", ex.log.model);
  if (!ex.log.route.empty()) s.attributes.emplace_back("meridian.route", ex.log.route);
  if (ex.provider) {
    s.attributes.emplace_back("gen_ai.provider.name", ex.provider->name);
    s.attributes.emplace_back("gen_ai.response.model", ex.model->id);
    s.attributes.emplace_back("gen_ai.usage.input_tokens",
                              static_cast<std::int64_t>(ex.tokens.prompt_total()));
    s.attributes.emplace_back("gen_ai.usage.output_tokens",
                              static_cast<std::int64_t>(ex.tokens.completion_total()));
  }
  if (ex.key) s.attributes.emplace_back("meridian.key", ex.key->name);
  s.error = ex.log.status >= 500;
  if (s.error) s.status_message = ex.log.error;
  tracer_->record(std::move(s));
}

// Ledger queries read SQLite: they run on the control thread, never on an event loop.
awaitable<void> server::send_stats(exchange& ex, stats::result<std::string> answer,
                                   std::string_view type) {
  if (auto* e = std::get_if<stats::query_error>(&answer)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
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

// A stats query that takes only the request's parameters (daily, series), answered as JSON.
awaitable<void> server::stats_json(exchange& ex, stats_query_fn query) {
  auto q = parse_query(ex.req.target());
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        if (ledger_ && ledger_->last_error().empty()) ledger_->flush();
        co_return as_text(
            [&] { return query(ledger_.get(), q, std::chrono::system_clock::now()); });
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "application/json");
}

awaitable<void> server::stats_daily(exchange& ex) {
  co_await stats_json(ex, &stats::daily_answer);
}

awaitable<void> server::stats_series(exchange& ex) {
  co_await stats_json(ex, &stats::series_answer);
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
  const bool operator_view = ex.on_admin_listener || ex.admin_caller;
  auto [e, answer] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::string>> {
        co_return stats::dashboard_answer(ledger_.get(), q, std::chrono::system_clock::now(), base,
                                          operator_view);
      },
      as_tuple);
  co_await send_stats(ex, std::move(answer), "text/html; charset=utf-8");
}

}  // namespace meridian::gateway::detail
