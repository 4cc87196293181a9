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

}  // namespace meridian::gateway::detail
