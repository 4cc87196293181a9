// The endpoint tables and dispatch, the response writers every handler shares (OpenAI- or
// Anthropic-shaped errors, routed headers, an upstream's error status turned into the client's),
// and the endpoints that need no upstream: health, readiness, metrics, the model list.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

const std::vector<server::route>& server::routes() {
  using enum guard;
  constexpr auto openai = core::api_shape::openai;
  constexpr auto anthropic = core::api_shape::anthropic;
  constexpr auto responses = core::api_shape::responses;
  constexpr auto gemini = core::api_shape::gemini;
  static const std::vector<route> table = {
      {http::verb::post, "/v1/chat/completions", &server::chat, openai, key},
      {http::verb::post, "/v1/messages", &server::messages, anthropic, key},
      {http::verb::post, "/v1/messages/count_tokens", &server::count_tokens, anthropic, key},
      {http::verb::post, "/v1/responses", &server::responses, responses, key},
      // Stored responses: /v1/responses/{id} and /v1/responses/{id}/input_items.
      {http::verb::get, "/v1/responses/", &server::response_get, responses, key_or_admin, true},
      {http::verb::delete_, "/v1/responses/", &server::response_delete, responses, key_or_admin,
       true},
      {http::verb::post, "/v1/embeddings", &server::embeddings, openai, key},
      {http::verb::post, "/v1beta/models/", &server::gemini, gemini, key, true},
      // @google/genai's default API version; GET /v1/models stays OpenAI's list.
      {http::verb::post, "/v1/models/", &server::gemini, gemini, key, true},
      {http::verb::get, "/v1beta/models", &server::gemini_models, gemini, key},
      {http::verb::get, "/v1/models", &server::list_models, openai, key},
      {http::verb::get, "/v1/stats/share", &server::stats_share, openai, key},
      {http::verb::get, "/v1/stats/daily", &server::stats_daily, openai, key},
      {http::verb::get, "/v1/stats/series", &server::stats_series, openai, key},
      {http::verb::get, "/v1/generation", &server::generation, openai, key_or_admin},
      // What the share API shows, so guarded like it: public unless auth.required (then a key
      // or the admin token); the admin listener serves both to the operator unguarded.
      {http::verb::get, "/dashboard", &server::dashboard, openai, key_or_admin},
      {http::verb::get, "/healthz", &server::healthz},
      {http::verb::get, "/readyz", &server::readyz},
      {http::verb::get, "/metrics", &server::metrics, openai, key_or_admin},
  };
  return table;
}

// ---- admin and reload ----

const std::vector<server::route>& server::admin_routes() {
  using enum guard;
  constexpr auto openai = core::api_shape::openai;
  static const std::vector<route> table = {
      {http::verb::post, "/admin/reload", &server::admin_reload, openai, admin},
      {http::verb::get, "/admin/config", &server::admin_config, openai, admin},
      {http::verb::get, "/admin/keys", &server::admin_keys_list, openai, admin_always},
      {http::verb::post, "/admin/keys", &server::admin_keys_create, openai, admin_always},
      {http::verb::delete_, "/admin/keys", &server::admin_keys_revoke, openai, admin_always},
      {http::verb::get, "/healthz", &server::healthz},
      {http::verb::get, "/metrics", &server::metrics},
      {http::verb::get, "/dashboard", &server::dashboard},
  };
  return table;
}

awaitable<void> server::dispatch(exchange& ex, bool admin) {
  std::string_view target = ex.req.target();
  std::string_view path = target.substr(0, target.find('?'));
  ex.log.method = std::string(ex.req.method_string());
  ex.log.path = std::string(path);
  std::string allowed;
  for (const auto& r : admin ? admin_routes() : routes()) {
    if (r.prefix ? !path.starts_with(r.path) : r.path != path) continue;
    if (r.method == ex.req.method()) {
      ex.shape = r.shape;
      // Bounded before any handler runs: the router's facts parser and the dialect translators
      // build DOMs, and walking or dumping one recurses once per level.
      // No JSON text holds a raw NUL byte; some parsers stop at one and ignore what follows,
      // so a body with one could be read two ways.
      if (ex.req.body().find('\0') != std::string::npos) {
        const api_error failure{error_kind::invalid_request,
                                {},
                                "request body is not valid JSON: it contains a NUL byte, and "
                                "nothing but whitespace may follow the JSON value",
                                "invalid_json"};
        co_await send_error(ex, failure);
        co_return;
      }
      if (core::json_nesting_exceeds(ex.req.body(), core::k_max_json_depth)) {
        const api_error failure{error_kind::invalid_request,
                                {},
                                "JSON nesting too deep (the limit is " +
                                    std::to_string(core::k_max_json_depth) + " levels)",
                                "nesting_too_deep"};
        co_await send_error(ex, failure);
        co_return;
      }
      if ((r.auth == guard::admin || r.auth == guard::admin_always) &&
          !admin_authorized(ex, r.auth == guard::admin_always)) {
        const bool configured = admin_token_.has_value();
        // Built before the co_await (GCC 12 and class temporaries of a conditional).
        const api_error refused =
            configured ? api_error{error_kind::authentication,
                                   {},
                                   "This admin endpoint needs Authorization: Bearer <admin token>",
                                   "invalid_admin_token"}
                       : api_error{error_kind::permission,
                                   {},
                                   "Set " + ex.snap.cfg->auth.admin_token_env +
                                       " (auth.admin_token_env) to enable the admin key API",
                                   "admin_disabled"};
        co_await send_error(ex, refused);
        co_return;
      }
      ex.on_admin_listener = admin;
      // Probes and scrapes are not traced; every other request is a span, in the client's trace
      // when its traceparent is valid.
      if (tracer_ && r.auth != guard::none && path != "/metrics") {
        auto parent = ex.req["traceparent"];
        auto client = stats::parse_traceparent(std::string_view(parent.data(), parent.size()));
        ex.trace = stats::trace_context{client ? client->trace_id : stats::new_trace_id(),
                                        stats::new_span_id(), client ? client->sampled : true};
        if (client) ex.trace_parent = client->span_id;
      }
      if (r.auth == guard::key_or_admin && admin_token_ && admin_authorized(ex, true)) {
        ex.admin_caller = true;  // the operator looking up any request
      } else if (r.auth == guard::key || r.auth == guard::key_or_admin) {
        if (!co_await authenticate(ex)) co_return;
      }
      co_await (this->*r.fn)(ex);
      co_return;
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string(http::to_string(r.method));
  }
  if (!allowed.empty()) {
    const api_error failure{
        error_kind::method_not_allowed,
        {},
        "Method " + ex.log.method + " is not allowed on " + ex.log.path + "; use " + allowed,
        "method_not_allowed"};
    co_await send_error(ex, failure);
  } else {
    const api_error failure{error_kind::not_found, {}, "Unknown path " + ex.log.path, "not_found"};
    co_await send_error(ex, failure);
  }
}

// Answers a request that cannot be parsed, then the session closes.

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
  const std::string head = response_head(res);
  const std::array<net::const_buffer, 2> wire{net::buffer(head), net::buffer(res.body())};
  auto [ec, n] = co_await net::async_write(ex.client, wire, as_tuple);
  if (ec) ex.keep_alive = false;
}

// The one way an error reaches a client: rendered in the route's API shape with its kind's status.
// Callers pass a named api_error, never a temporary: GCC 12 frees class temporaries of a
// co_await expression twice (seen as "free(): invalid pointer" on the first 405).
awaitable<void> server::send_error(exchange& ex, const api_error& e) {
  if (ex.log.error.empty())
    ex.log.error = e.code.empty() ? std::string(core::openai_error_type(e.kind)) : e.code;
  return send(ex, static_cast<http::status>(core::http_status(e.kind)), core::render(e, ex.shape));
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
  // The router's plan ("chose=" is its first choice) and, after a fallback, the attempt that
  // answered and the ones that failed before it.
  if (!ex.route_explain.empty() && !ex.failed_attempts.empty()) {
    std::string route = ex.route_explain;
    if (ex.provider && !ex.attempt_failed)
      route += " served=" + ex.provider->name + "/" + ex.model->id;
    f.set("x-meridian-route", header_safe(route + " failed=" + ex.failed_attempts));
  } else if (!ex.route_explain.empty()) {
    f.set("x-meridian-route", ex.route_explain);
  }
  if (!ex.provider) return;
  if (!ex.lane_dropped.empty())
    f.set("x-meridian-dropped", header_safe(providers::dropped_header(ex.lane_dropped)));
  f.set("x-meridian-provider", ex.provider->name);
  f.set("x-meridian-model", ex.model->id);
}

// An upstream answered with an error status: tell the client what happened in OpenAI's shape,
// never echoing the provider's key.
awaitable<void> server::send_upstream_status(exchange& ex, unsigned status, std::string_view body,
                                             std::string_view retry_after,
                                             providers::upstream_error kind) {
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
  // The kinds the router falls back on keep their meaning when nothing was left to try: a
  // prompt over the window, a content refusal (both the client's to fix), a spent balance (the
  // operator's: no client retry helps, so it is not a 429).
  if (kind == providers::upstream_error::context_length ||
      kind == providers::upstream_error::content_policy) {
    const bool context = kind == providers::upstream_error::context_length;
    const api_error failure{error_kind::invalid_request, context ? "messages" : "",
                            "Provider '" + p.name + "' rejected the request" + suffix,
                            context ? "context_length_exceeded" : "content_filter"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (kind == providers::upstream_error::quota) {
    const api_error failure{
        error_kind::upstream,
        {},
        "Provider '" + p.name + "' refused for its account's balance or quota" + suffix,
        "upstream_quota_exhausted"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (status == 429) {
    if (auto seconds = retry_after_seconds(retry_after, std::chrono::system_clock::now()))
      ex.retry_after = std::to_string(*seconds);
    const api_error failure{error_kind::rate_limited,
                            {},
                            "Provider '" + p.name + "' is rate limiting requests" + suffix,
                            "rate_limit_exceeded"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (status == 400 || status == 404 || status == 409 || status == 413 || status == 422) {
    const api_error failure{core::client_error_kind(status),
                            {},
                            "Provider '" + p.name + "' rejected the request" + suffix,
                            "upstream_rejected"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (status == 401 || status == 403) {
    const api_error failure{error_kind::upstream,
                            {},
                            "Provider '" + p.name + "' rejected the gateway's credentials (HTTP " +
                                std::to_string(status) + ")",
                            "upstream_auth"};
    co_await send_error(ex, failure);
    co_return;
  }
  const api_error failure{
      error_kind::upstream,
      {},
      "Provider '" + p.name + "' failed with HTTP " + std::to_string(status) + suffix,
      "upstream_error"};
  co_await send_error(ex, failure);
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
  if (tracer_) {
    metrics_.trace_spans.set({"exported"}, static_cast<double>(tracer_->exported()));
    metrics_.trace_spans.set({"dropped"}, static_cast<double>(tracer_->dropped()));
  }
  // Per-key series (names and spend of every tenant) stay on the admin listener when there is
  // one; the public listener shows the rest.
  const bool hide_keys = !ex.on_admin_listener && ex.snap.cfg->server.admin_listen.has_value();
  // A named local, not a conditional inside the co_await (GCC 12 destroys its temporaries
  // twice).
  std::string text = hide_keys ? registry_.expose_without("key") : registry_.expose();
  co_await send(ex, http::status::ok, std::move(text), "text/plain; version=0.0.4; charset=utf-8");
}

// Anthropic's model list (`anthropic-version` sent: Claude Code's gateway model discovery and the
// Anthropic SDK's models.list): the routes' names first, then every provider/model, as
// {type, id, display_name, created_at}.
static std::string anthropic_model_list(const snapshot& snap) {
  nlohmann::json data = nlohmann::json::array();
  auto add = [&](const std::string& id, const std::string& name) {
    nlohmann::json entry = nlohmann::json::object();
    entry["type"] = "model";
    entry["id"] = id;
    entry["display_name"] = name;
    entry["created_at"] = "1970-01-01T00:00:00Z";
    data.push_back(std::move(entry));
  };
  for (const auto& r : snap.cfg->routes)
    if (r.match.find_first_of("*?[") == std::string::npos) add(r.match, "Route " + r.match);
  for (const auto& p : snap.catalog.providers)
    for (const auto& m : p.models) add(p.name + "/" + m.id, m.id + " via " + p.name);
  nlohmann::json list = nlohmann::json::object();
  list["data"] = data;
  list["has_more"] = false;
  list["first_id"] = data.empty() ? nlohmann::json() : data.front()["id"];
  list["last_id"] = data.empty() ? nlohmann::json() : data.back()["id"];
  return list.dump();
}

awaitable<void> server::list_models(exchange& ex) {
  if (!ex.req["anthropic-version"].empty()) {
    std::string list = anthropic_model_list(ex.snap);
    co_await send(ex, http::status::ok, std::move(list));
    co_return;
  }
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

}  // namespace meridian::gateway::detail
