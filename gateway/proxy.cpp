// The routed endpoints: chat completions, Anthropic messages and Gemini (translated to the
// canonical call; OpenAI Responses are in responses.cpp), embeddings and count_tokens, and
// serve_chat's attempt loop — the router's plan tried candidate by candidate, with backoff,
// until one answers; once a byte reached the client, no retry.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

awaitable<void> server::chat(exchange& ex) {
  co_await serve_canonical(ex, ex.req.body());
}

// Anthropic Messages: the router plans on its canonical translation; an Anthropic backend gets
// the client's own bytes (the pass-through lane: cache_control, thinking and betas intact), any
// other backend the translation, answered in Anthropic's shape either way.
awaitable<void> server::messages(exchange& ex) {
  auto translated = providers::anthropic_request_to_openai(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&translated)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  // The pass-through lane reads the body as the backend will: member names one way.
  auto native = providers::parse_model_request(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&native)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  auto& t = std::get<providers::anthropic_translation>(translated);
  if (t.signed_body) {  // unsigned thinking blocks left out: the rewritten body is scanned anew
    ex.native_body = std::move(*t.signed_body);
    ex.pass_through_dropped = std::move(t.pass_through_dropped);
    native = providers::parse_model_request(ex.native_body);
  }
  ex.native.emplace();
  ex.native->body = ex.req.body();
  if (!ex.native_body.empty()) ex.native->body = ex.native_body;
  ex.native->parsed = std::move(std::get<providers::chat_request>(native));
  ex.native->headers = native_headers(ex);
  ex.dropped = std::move(t.dropped);
  ex.untranslatable = std::move(t.untranslatable);
  co_await serve_canonical(ex, t.chat_body);
}

// Gemini's generateContent and streamGenerateContent (apps on Google's @google/genai): the model
// is in the path (percent-decoded, so "gem%2Fgemini-2.5-flash" and "gem/gemini-2.5-flash" both
// work). A Gemini backend gets the client's bytes (pass-through); the others the translation,
// answered in Gemini's shape. countTokens is Meridian's estimate, marked.
awaitable<void> server::gemini(exchange& ex) {
  const std::string_view target = ex.req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const std::string_view rest = path.substr(path.find("/models/") + 8);  // /v1beta or /v1
  const std::size_t colon = rest.rfind(':');
  const std::string_view method = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
  const std::string model = parse_query("?m=" + std::string(rest.substr(0, colon)))["m"];
  if (method != "generateContent" && method != "streamGenerateContent" &&
      method != "countTokens") {
    const api_error failure{error_kind::not_found, {},
                            "Unknown path " + std::string(path) +
                                ": expected models/{model}:generateContent, "
                                ":streamGenerateContent or :countTokens",
                            "unknown_path"};
    co_await send_error(ex, failure);
    co_return;
  }
  const bool stream = method == "streamGenerateContent";
  auto translated = providers::gemini_request_to_openai(ex.req.body(), model, stream);
  if (auto* e = std::get_if<providers::request_error>(&translated)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  auto& t = std::get<providers::gemini_translation>(translated);
  if (method == "countTokens") {
    co_await send(ex, http::status::ok,
                  "{\"totalTokens\":" + std::to_string(providers::estimate_tokens(t.chat_body)) +
                      ",\"estimated\":true}");
    co_return;
  }
  // The pass-through lane reads the body as the backend will: member names one way.
  auto scan = core::scan_object(ex.req.body());
  if (auto e = providers::refuse_ambiguous(*scan)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  ex.native.emplace();
  ex.native->body = ex.req.body();
  ex.native->parsed.model = model;
  ex.native->parsed.stream = stream;
  ex.native->parsed.scan = std::move(*scan);
  ex.dropped = std::move(t.dropped);
  ex.untranslatable = std::move(t.untranslatable);
  co_await serve_canonical(ex, t.chat_body);
}

// Gemini's model list: the routes' names, then every provider/model, as models/{id}.
awaitable<void> server::gemini_models(exchange& ex) {
  nlohmann::json models = nlohmann::json::array();
  auto add = [&](const std::string& id, const std::string& name) {
    nlohmann::json m = nlohmann::json::object();
    m["name"] = "models/" + id;
    m["displayName"] = name;
    m["supportedGenerationMethods"] = {"generateContent", "streamGenerateContent", "countTokens"};
    models.push_back(std::move(m));
  };
  for (const auto& r : ex.snap.cfg->routes)
    if (r.match.find_first_of("*?[") == std::string::npos) add(r.match, "Route " + r.match);
  for (const auto& p : ex.snap.catalog.providers)
    for (const auto& m : p.models) add(p.name + "/" + m.id, m.id + " via " + p.name);
  nlohmann::json list = nlohmann::json::object();
  list["models"] = std::move(models);
  std::string body = list.dump();
  co_await send(ex, http::status::ok, std::move(body));
}

// A canonical chat body — the client's own, or what its API's translation made — validated once,
// then served by serve_chat. `body` outlives the call (the request's, or held by `ex`'s caller).
awaitable<void> server::serve_canonical(exchange& ex, const std::string& body) {
  auto parsed = providers::parse_chat_request(body);
  if (auto* e = std::get_if<providers::request_error>(&parsed)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  co_await serve_chat(ex, body, std::get<providers::chat_request>(parsed));
}

// OpenAI embeddings, on OpenAI-dialect backends: the body passes through with `model`
// rewritten; the answer gains `provider` and `usage.cost`.
awaitable<void> server::embeddings(exchange& ex) {
  auto parsed = providers::parse_embeddings_request(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&parsed)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  const auto& req = std::get<providers::chat_request>(parsed);
  ex.log.model = req.model;
  auto resolved = policies::resolve_model(ex.snap.catalog, req.model);
  if (auto* e = std::get_if<policies::resolve_error>(&resolved)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  const auto target = std::get<policies::target>(resolved);
  const auto& p = *target.provider;
  if (!region_allowed(ex, p)) {
    const api_error failure{error_kind::not_found, "model",
                            "Key '" + ex.key->name + "' may not send data to region '" + p.region +
                                "' (provider '" + p.name + "'): excluded by key.regions",
                            "region_not_allowed"};
    co_await send_error(ex, failure);
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
    const api_error failure{error_kind::invalid_request, "model",
                            "Provider '" + p.name + "' speaks the " +
                                std::string(config::to_string(p.dialect)) +
                                " dialect, for which Meridian has no embeddings translation",
                            "unsupported_by_provider"};
    co_await send_error(ex, failure);
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
    const api_error failure{error_kind::upstream,
                            {},
                            "Provider '" + p.name + "' returned a malformed response",
                            "upstream_malformed"};
    co_await send_error(ex, failure);
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

// Anthropic's count_tokens: exact from the upstream when the model names an Anthropic-dialect
// deployment the key may send data to (the client's body passes through, model replaced; Anthropic
// does not bill it); otherwise, or when that upstream fails, an estimate (bytes / 4 and fixed
// allowances) labelled as such — the backend may be any model and its tokenizer is not here.
awaitable<void> server::count_tokens(exchange& ex) {
  if (!nlohmann::json::accept(ex.req.body())) {
    const api_error failure{
        error_kind::invalid_request, {}, "request body is not valid JSON", "invalid_json"};
    co_await send_error(ex, failure);
    co_return;
  }
  std::string exact;
  if (auto native = providers::parse_model_request(ex.req.body());
      auto* req = std::get_if<providers::chat_request>(&native)) {
    auto resolved = policies::resolve_model(ex.snap.catalog, req->model);
    const auto* t = std::get_if<policies::target>(&resolved);
    if (t && t->provider->dialect == config::dialect_kind::anthropic &&
        region_allowed(ex, *t->provider)) {
      ex.log.provider = t->provider->name;
      ex.log.upstream_model = t->model->id;
      providers::native_call call{ex.req.body(), *req, native_headers(ex)};
      auto counted = providers::encode_pass_through(call, ex.shape, t->model->id);
      exact = co_await upstream_count_tokens(ex, *t->provider, std::move(counted));
    }
  }
  if (!exact.empty()) {
    co_await send(ex, http::status::ok, std::move(exact));
    co_return;
  }
  co_await send(ex, http::status::ok,
                "{\"input_tokens\":" + std::to_string(providers::estimate_tokens(ex.req.body())) +
                    ",\"estimated\":true}");
}

// The upstream's count for a pass-through count_tokens call: its body when it answered 200 with
// an integer input_tokens, else empty (the caller estimates instead).
awaitable<std::string> server::upstream_count_tokens(exchange& ex, const providers::provider& p,
                                                     providers::upstream_request&& r) {
  r.path = "/messages/count_tokens";
  const steady::time_point deadline = ex.start + ex.snap.cfg->server.timeouts.total;
  auto up = make_upstream_request(ex, p, std::move(r), false);
  auto x = co_await open_exchange(ex, p, up, deadline);
  if (!x.conn) co_return std::string();
  std::string answer;
  const error_code ec = co_await read_body(ex, x, answer, deadline);
  finish_exchange(ex, x, !ec);
  if (ec || x.parser->get().result_int() != 200) co_return std::string();
  const auto j = nlohmann::json::parse(answer, nullptr, false);
  if (!j.is_object() || !j.contains("input_tokens") || !j["input_tokens"].is_number_unsigned())
    co_return std::string();
  co_return answer;
}

// The dialect headers the client sent, for a pass-through (providers::dialect_headers).
std::vector<std::pair<std::string, std::string>> server::native_headers(const exchange& ex) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string_view name : providers::dialect_headers(ex.shape)) {
    auto v = ex.req[beast::string_view(name.data(), name.size())];
    if (!v.empty()) out.emplace_back(std::string(name), std::string(v));
  }
  return out;
}

// Waits before attempt `i` as policies::fallback_plan::backoff decides.
awaitable<void> backoff(net::any_io_executor ex, std::size_t i, bool same_provider,
                        std::chrono::milliseconds retry_after) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  net::steady_timer timer(ex,
                          policies::fallback_plan::backoff(i, same_provider, retry_after, jitter));
  co_await timer.async_wait(as_tuple);
}

std::chrono::milliseconds parse_retry_after(std::string_view v) {
  auto seconds = retry_after_seconds(v, std::chrono::system_clock::now());
  return std::chrono::milliseconds(std::min<std::uint64_t>(seconds.value_or(0), 3600) * 1000);
}

// The canonical call without its reasoning_effort when model `m` takes no reasoning control
// and the effort would otherwise become something it cannot take: the gateway's own
// translation of an Anthropic client's thinking or a Responses client's reasoning.effort, or an
// OpenAI chat client's effort on a backend of another dialect (Gemini would get a thinking
// budget). nullptr otherwise: on OpenAI-family backends a chat client's reasoning_effort is the
// client's to send.
const providers::chat_request* server::unreasoned(exchange& ex, std::string_view body,
                                                  const providers::chat_request& req,
                                                  const providers::model_info& m,
                                                  config::dialect_kind backend) {
  if (m.reasoning || !req.scan.find("reasoning_effort")) return nullptr;
  if (ex.shape == core::api_shape::openai && backend == config::dialect_kind::openai)
    return nullptr;
  if (!ex.unreasoned) {
    ex.unreasoned_body = core::without_member(body, req.scan, "reasoning_effort");
    auto parsed = providers::parse_chat_request(ex.unreasoned_body);
    if (auto* r = std::get_if<providers::chat_request>(&parsed)) ex.unreasoned = std::move(*r);
  }
  return ex.unreasoned ? &*ex.unreasoned : nullptr;
}

namespace {

policies::failure to_failure(providers::upstream_error kind) {
  switch (kind) {
    case providers::upstream_error::quota:
      return policies::failure::quota;
    case providers::upstream_error::context_length:
      return policies::failure::context_length;
    case providers::upstream_error::content_policy:
      return policies::failure::content_policy;
    case providers::upstream_error::retryable:
      return policies::failure::retryable_status;
    case providers::upstream_error::final:
      break;
  }
  return policies::failure::final_status;
}

}  // namespace

// Serves a canonical chat call: the router orders the candidates, and each is tried in turn
// until one answers. Once a byte of the answer has reached the client there is no retry.

awaitable<void> server::serve_chat(exchange& ex, std::string_view body,
                                   const providers::chat_request& req) {
  ex.log.model = req.model;
  ex.log.stream = req.stream;
  if (ex.shape == core::api_shape::openai && req.stream)
    ex.usage_asked = providers::asks_stream_usage(body, req);
  auto facts = policies::facts_from_openai_body(body, req.scan);  // validated and scanned once
  if (auto* e = std::get_if<policies::facts_error>(&facts)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  if (!co_await admit(ex)) co_return;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  policies::constraints key_constraints;
  if (ex.key) {  // residency and allow-lists: never widened
    key_constraints.regions = ex.key->allow_regions;
    key_constraints.models = ex.key->allow_models;
    key_constraints.routes = ex.key->allow_routes;
    key_constraints.key = ex.key->name;
  }
  key_constraints.header = [&req = ex.req](std::string_view name) {
    std::optional<std::string_view> out;
    auto it = req.find(beast::string_view(name.data(), name.size()));
    if (it != req.end()) out.emplace(it->value().data(), it->value().size());
    return out;
  };
  const auto& request_facts = std::get<policies::request_facts>(facts);
  ex.log.task = std::string(policies::to_string(request_facts.task.what));
  ex.log.language = std::string(request_facts.task.language);
  policies::plan_result plan =
      policies::plan(request_facts, ex.snap.catalog, health_.snapshot(steady::now()),
                     ex.snap.cfg->routes, key_constraints, rng);
  // Not under `ordered`: that order is the operator's, kept even against a cache.
  if (const auto& aff = ex.snap.cfg->affinity;
      aff.enabled && plan.ok() && plan.policy != "ordered") {
    // The session: the configured header, Claude Code's session id, then the body's own name
    // for it (prompt_cache_key, user) or its prefix hash; one key's sessions are its own.
    std::string named;
    if (!aff.header.empty()) named = sane_request_id(ex.req[aff.header]);
    if (named.empty()) named = ex.log.session;
    const std::string session =
        named.empty() ? policies::conversation_name(request_facts) : "session:" + named;
    if (!session.empty()) {  // a request with nothing to name it by is no conversation
      ex.affinity_session = (ex.key ? ex.key->name : std::string()) + "|" + session;
      if (auto sticky = affinity_.find(ex.affinity_session, steady::now()))
        policies::prefer_sticky(plan, *sticky);
    }
  }
  ex.log.route = plan.route;
  ex.est_prompt = std::get<policies::request_facts>(facts).est_prompt_tokens;
  ex.route_explain = header_safe(plan.explain);
  if (!plan.ok()) {
    const api_error failure = to_api_error(*plan.error);
    co_await send_error(ex, failure);
    co_return;
  }
  const auto& attempts = plan.attempts;
  const policies::fallback_plan fallback(attempts.size());  // what the loop may do, decided there
  const std::size_t n = fallback.attempts();
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
  // Later candidates an earlier failure ruled out: the same provider after a quota error or a
  // content refusal, a window no larger after a context-length error.
  std::vector<bool> ruled_out(n, false);
  auto moves_on = [&](std::size_t i, policies::failure f) {
    if (!fallback.moves_on(i, f)) return false;
    for (std::size_t j = i + 1; j < n; ++j)
      if (!ruled_out[j]) return true;
    return false;
  };
  std::optional<std::size_t> last_tried;

  for (std::size_t i = 0; i < n; ++i) {
    if (ruled_out[i]) continue;
    const auto& p = *attempts[i].provider;
    const auto& m = *attempts[i].model;
    if (last_tried) {
      const auto& prev = *attempts[*last_tried].provider;
      metrics_.fallbacks.inc(
          {prev.name + "/" + attempts[*last_tried].model->id, p.name + "/" + m.id, last_failure});
      co_await backoff(ex.w.ioc.get_executor(), i, prev.name == p.name, retry_after);
      retry_after = std::chrono::milliseconds(0);
    }
    last_tried = i;
    ex.provider = &p;
    ex.model = &m;
    ex.log.provider = p.name;
    ex.log.upstream_model = m.id;
    ex.log.fallback_index = i;
    if (ex.trace) {
      ex.attempt_span = stats::new_span_id();
      ex.attempt_wall_start = std::chrono::system_clock::now();
    }
    // Each attempt that did not answer, for x-meridian-route: "provider/model=why,...".
    ex.attempt_failed = false;
    auto note_failure = [&](std::string_view why) {
      last_failure = std::string(why);
      ex.attempt_failed = true;
      ex.failed_attempts.append(ex.failed_attempts.empty() ? "" : ",")
          .append(p.name)
          .append("/")
          .append(m.id)
          .append("=")
          .append(why);
    };
    // Before the circuit: a refusal here must not hold a half-open probe.
    if (const auto quota = quota_refusal(p, m); !quota.empty()) {
      note_failure(quota);  // routed around before the provider would have answered 429
      ex.emitted = i + 1;   // nothing was sent
      if (moves_on(i, policies::failure::not_sent)) continue;
      const api_error failure{error_kind::rate_limited,
                              {},
                              "Every candidate for this request is at its configured rate limit (" +
                                  std::string(quota) + " of " + p.name + "/" + m.id + ")",
                              "rate_limit_exceeded"};
      co_await send_error(ex, failure);
      co_return;
    }
    if (!health_.try_acquire(p.name, m.id, steady::now())) {
      note_failure("circuit_open");
      ex.emitted = i + 1;  // nothing was sent: there is no attempt to account for
      if (moves_on(i, policies::failure::not_sent)) continue;
      const api_error failure{error_kind::upstream_unavailable,
                              {},
                              "Every candidate for this request is unavailable (circuit open)",
                              "circuit_open"};
      co_await send_error(ex, failure);
      co_return;
    }
    auto failed = [&](std::string_view why) {
      note_failure(why);
      record_failure(ex, p, m, why);
      emit_attempt(ex, why, 502);
    };
    const auto& d = providers::dialect_for(p.dialect);
    const bool pass_through =
        ex.native && providers::lane_for(ex.shape, p.dialect, p.responses_api) ==
                         providers::lane::pass_through;
    ex.translated = !pass_through;
    // No ?: here: GCC 12 frees a conditional's class temporaries twice in a coroutine.
    std::variant<providers::upstream_request, providers::request_error> encoded;
    const providers::chat_request* plain =
        pass_through || ex.untranslatable ? nullptr : unreasoned(ex, body, req, m, p.dialect);
    if (pass_through)
      encoded = providers::encode_pass_through(*ex.native, ex.shape, m.id);
    else if (ex.untranslatable)  // a part only a pass-through carries
      encoded = *ex.untranslatable;
    else if (plain)
      encoded = d.encode_chat(ex.unreasoned_body, *plain, m.id);
    else
      encoded = d.encode_chat(body, req, m.id);
    if (auto* e = std::get_if<providers::request_error>(&encoded)) {
      note_failure("unsupported");
      if (moves_on(i, policies::failure::not_sent)) continue;
      const api_error failure{error_kind::invalid_request, e->param, e->message,
                              "unsupported_by_provider"};
      co_await send_error(ex, failure);
      co_return;
    }
    // Automatic prompt caching: only on the translation lane (a pass-through body is the
    // client's own, cache_control and all).
    if (p.cache_prompts && p.dialect == config::dialect_kind::anthropic && ex.translated)
      providers::add_cache_breakpoints(std::get<providers::upstream_request>(encoded).body);
    // What this attempt's lane leaves out: the inbound translation's list, then the encoder's.
    ex.lane_dropped = ex.translated ? ex.dropped : ex.pass_through_dropped;
    if (plain)
      ex.lane_dropped.push_back(ex.shape == core::api_shape::anthropic ? "thinking"
                                                                       : "reasoning_effort");
    for (const auto& d : std::get<providers::upstream_request>(encoded).dropped)
      if (std::find(ex.lane_dropped.begin(), ex.lane_dropped.end(), d) == ex.lane_dropped.end())
        ex.lane_dropped.push_back(d);
    if (ex.responses) ex.responses->dropped = ex.lane_dropped;  // metadata.meridian_dropped
    if (const auto& dropped = ex.lane_dropped; !dropped.empty()) {
      std::string fields = "\"request_id\":";
      core::append_json_string(fields, ex.log.request_id);
      fields += ",\"provider\":";
      core::append_json_string(fields, p.name);
      fields += ",\"dropped\":";
      core::append_json_string(fields, providers::dropped_header(dropped));
      log(log_level::debug, "the lane dropped what the backend cannot take", fields);
    }
    const auto attempt_start = steady::now();
    std::optional<double> first_byte_ms;
    auto up = make_upstream_request(
        ex, p, std::move(std::get<providers::upstream_request>(encoded)), req.stream);
    auto x = co_await open_exchange(ex, p, up, deadline);
    if (!x.conn) {
      ex.upstream_seconds = seconds_since(upstream_start);
      failed(to_string(x.fault));
      if (moves_on(i, policies::failure::transport)) continue;
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
      if (moves_on(i, policies::failure::transport)) continue;
      const std::string what = fault == upstream_fault::timeout ? "stalled while sending its answer"
                               : fault == upstream_fault::too_large
                                   ? "answer larger than the gateway accepts"
                                   : "closed the connection mid-answer";
      co_await send_fault(ex, p, fault, what);
      co_return;
    }
    finish_exchange(ex, x, true);
    if (status != 200) {
      const providers::upstream_error kind = d.classify(status, answer);
      auto ra = x.parser->get()[http::field::retry_after];
      const std::string_view retry_after_text(ra.data(), ra.size());
      if (kind != providers::upstream_error::retryable &&
          kind != providers::upstream_error::final) {
        // Fallback by error kind: only candidates that can do better are tried next.
        const policies::failure f = to_failure(kind);
        const policies::deployment_ref here{p.name, m.context};
        for (std::size_t j = i + 1; j < n; ++j)
          if (!policies::fallback_plan::worth_trying(
                  f, here, {attempts[j].provider->name, attempts[j].model->context}))
            ruled_out[j] = true;
        if (moves_on(i, f)) {
          const std::string why(providers::to_string(kind));
          metrics_.upstream_errors.inc({p.name, why});
          if (kind == providers::upstream_error::quota) {
            failed(why);  // the account, not this request: the circuit should learn it
          } else {        // this request's own content or size: the deployment is fine
            note_failure(why);
            emit_attempt(ex, why, status);
          }
          continue;
        }
      }
      if (kind == providers::upstream_error::retryable) {
        failed("http_" + std::to_string(status));
        retry_after = parse_retry_after(retry_after_text);
        if (moves_on(i, policies::failure::retryable_status)) {
          metrics_.upstream_errors.inc({p.name, "http_" + std::to_string(status)});
          continue;
        }
      }
      co_await send_upstream_status(ex, status, answer, retry_after_text, kind);
      co_return;
    }
    if (req.stream) {  // a 200 that is not an event stream, for a stream request
      metrics_.upstream_errors.inc({p.name, "protocol"});
      failed("protocol");
      if (moves_on(i, policies::failure::transport)) continue;
      const api_error failure{
          error_kind::upstream,
          {},
          "Provider '" + p.name + "' answered a stream request without streaming",
          "upstream_malformed"};
      co_await send_error(ex, failure);
      co_return;
    }
    if (pass_through && ex.shape == core::api_shape::responses) {
      co_await answer_response_natively(ex, p, m, answer, attempt_start, first_byte_ms);
      co_return;
    }
    auto decoded = d.decode_chat(answer, m.id);
    if (auto* e = std::get_if<providers::decode_error>(&decoded)) {
      metrics_.upstream_errors.inc({p.name, "malformed"});
      failed("malformed");
      if (moves_on(i, policies::failure::transport)) continue;
      const api_error failure{error_kind::upstream,
                              {},
                              "Provider '" + p.name + "': " + e->message,
                              "upstream_malformed"};
      co_await send_error(ex, failure);
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
    // The whole answer in the client's shape, built before the co_await (GCC 12).
    std::string out;
    switch (ex.shape) {
      case core::api_shape::anthropic:
        // Pass-through: the upstream's own Message, annotated; otherwise translated back.
        if (pass_through)
          out = providers::annotate_chat_body(answer, p.name, cost, estimated);
        else
          out = providers::openai_response_to_anthropic(ok.body, req.model, ex.tokens, &notes);
        break;
      case core::api_shape::gemini:
        if (pass_through)  // the answer has usageMetadata; an estimate would not fit its shape
          out = providers::annotate_chat_body(answer, p.name, std::nullopt, nullptr);
        else
          out = providers::openai_response_to_gemini(ok.body, req.model, ex.tokens, &notes);
        break;
      case core::api_shape::responses:
        out = providers::openai_response_to_responses(ok.body, *ex.responses, req.model, ex.tokens,
                                                      &notes);
        break;
      case core::api_shape::openai:
        out = ok.layout
                  ? providers::annotate_chat_body(ok.body, *ok.layout, p.name, cost, estimated)
                  : providers::annotate_chat_body(ok.body, p.name, cost, estimated);
        break;
    }
    if (ex.shape == core::api_shape::responses) co_await keep_response(ex, out);
    co_await send(ex, http::status::ok, std::move(out));
    co_return;
  }
}

// The circuit's moves are the operator's business: opening (the failure that crossed
// health.failure_threshold) is a warning, closing again (a probe that answered) is news.
void log_circuit(const providers::provider& p, const providers::model_info& m,
                 policies::circuit_state before, policies::circuit_state after,
                 std::string_view why) {
  if (before == after) return;
  const bool opened = after == policies::circuit_state::open;
  if (!opened && after != policies::circuit_state::closed) return;
  std::string fields = "\"provider\":";
  core::append_json_string(fields, p.name);
  fields += ",\"model\":";
  core::append_json_string(fields, m.id);
  if (opened) {
    fields += ",\"after\":";
    core::append_json_string(fields, why);
  }
  log(opened ? log_level::warn : log_level::info,
      opened ? "circuit opened: the model is skipped until a probe after health.cooldown"
             : "circuit closed: the model answers again",
      fields);
}

void server::record_failure(exchange& ex, const providers::provider& p,
                            const providers::model_info& m, std::string_view why) {
  const auto now = steady::now();
  const auto before = health_.state(p.name, m.id, now);
  health_.record_failure(p.name, m.id, now);
  log_circuit(p, m, before, health_.state(p.name, m.id, now), why);
  update_provider_up(p);
  if (why.starts_with("http_5")) {  // the provider's own 5xx, which its status page may not show
    std::string fields = "\"request_id\":";
    core::append_json_string(fields, ex.log.request_id);
    fields += ",\"provider\":";
    core::append_json_string(fields, p.name);
    fields += ",\"model\":";
    core::append_json_string(fields, m.id);
    fields += ",\"status\":" + std::string(why.substr(5));
    log(log_level::warn, "upstream answered a server error", fields);
  }
}

void server::record_success(exchange& ex, const providers::provider& p,
                            const providers::model_info& m, steady::time_point attempt_start,
                            std::optional<double> first_byte_ms) {
  if (!ex.affinity_session.empty())
    affinity_.remember(ex.affinity_session, p.name + "/" + m.id, steady::now());
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
  if (ex.tokens.present && !ex.estimated && ex.tokens.prompt_total() > 0)
    seen.cache_share =
        static_cast<double>(ex.tokens.cache_read) / static_cast<double>(ex.tokens.prompt_total());
  seen.route = ex.log.route;
  const auto before = health_.state(p.name, m.id, steady::now());
  health_.record_success(p.name, m.id, steady::now(), seen);
  log_circuit(p, m, before, health_.state(p.name, m.id, steady::now()), {});
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

awaitable<void> server::send_overloaded(exchange& ex) {
  const std::uint64_t cap = ex.snap.cfg->server.limits.max_buffered_bytes;
  const api_error failure{error_kind::unavailable,
                          {},
                          "The gateway is holding its limit of buffered upstream answers (" +
                              std::to_string(cap >> 20) +
                              " MiB, server.limits.max_buffered_bytes); try again shortly",
                          "gateway_overloaded"};
  co_await send_error(ex, failure);
}

// 502 or 504 for an upstream that failed before answering.
awaitable<void> server::send_fault(exchange& ex, const providers::provider& p, upstream_fault fault,
                                   const std::string& detail) {
  if (fault == upstream_fault::timeout) {
    const api_error failure{error_kind::upstream_timeout,
                            {},
                            "Provider '" + p.name + "' did not answer in time (" + detail + ")",
                            "upstream_timeout"};
    co_await send_error(ex, failure);
  } else if (fault == upstream_fault::too_large) {
    // The provider was reached and answered: "unreachable" would send operators the wrong way.
    const api_error failure{error_kind::upstream,
                            {},
                            "Provider '" + p.name + "' sent an " + detail,
                            "upstream_too_large"};
    co_await send_error(ex, failure);
  } else {
    const api_error failure{error_kind::upstream,
                            {},
                            "Provider '" + p.name + "' failed (" + std::string(to_string(fault)) +
                                ": " + redact(detail, p.api_key) + ")",
                            "upstream_unreachable"};
    co_await send_error(ex, failure);
  }
}

}  // namespace meridian::gateway::detail
