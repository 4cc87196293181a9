// OpenAI Responses (Codex CLI, the AI SDK's default provider, `client.responses.*`): POST is
// translated to the canonical call and served by any backend (proxy.cpp's serve_canonical),
// answered as a Response object or the Responses event stream. State is the gateway's own: with
// `store` (OpenAI's default) the answer and its input are kept in the ledger's database
// (stats/response_store.hpp), owned by the key, for GET / DELETE /v1/responses/{id},
// /input_items and a later `previous_response_id`, which rebuilds the conversation for a
// stateless backend. The store's work runs on the control thread, never on an event loop.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

namespace {

api_error response_not_found(const std::string& id, const char* param) {
  return {error_kind::not_found, param ? std::string(param) : std::string(),
          "Response with id '" + id + "' not found.", "response_not_found"};
}

}  // namespace

// Whose stored responses a caller sees: with keys configured, a key only its own (a caller
// without one, only those made without one) and the admin token every one; without keys, all.
std::optional<std::string> server::response_owner(const exchange& ex) const {
  const bool keys_configured = !ex.snap.keys.empty() || !admin_keys_.load()->empty();
  if (!keys_configured || ex.admin_caller) return std::nullopt;
  return ex.key ? ex.key->name : std::string();
}

awaitable<void> server::responses(exchange& ex) {
  auto translated = providers::responses_request_to_openai(ex.req.body());
  if (auto* e = std::get_if<providers::request_error>(&translated)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  const bool keeps = responses_store_ && ex.snap.cfg->stats.responses.enabled;
  if (const auto& t = std::get<providers::responses_translation>(translated);
      !t.previous_response_id.empty()) {
    if (!keeps) {
      const api_error failure{error_kind::invalid_request, "previous_response_id",
                              "previous_response_id needs stored responses, and this gateway "
                              "keeps none (stats.ledger is none or stats.responses.store is "
                              "false): send the whole conversation in `input`",
                              "responses_not_stored"};
      co_await send_error(ex, failure);
      co_return;
    }
    const std::string id = t.previous_response_id;
    auto found = co_await stored_response(ex, id);
    if (auto* e = std::get_if<stats::query_error>(&found)) {
      const api_error failure = to_api_error(*e);
      co_await send_error(ex, failure);
      co_return;
    }
    auto& prior = std::get<std::optional<stats::stored_response>>(found);
    std::optional<nlohmann::ordered_json> history;
    if (prior) history = providers::responses_history(prior->input, prior->response);
    if (!history) {
      const api_error failure = response_not_found(id, "previous_response_id");
      co_await send_error(ex, failure);
      co_return;
    }
    translated = providers::responses_request_to_openai(ex.req.body(), &*history);
    if (auto* e = std::get_if<providers::request_error>(&translated)) {
      const api_error failure = to_api_error(*e);
      co_await send_error(ex, failure);
      co_return;
    }
    // A backend that serves Responses itself gets the whole conversation too: it never saw
    // the id, which is Meridian's.
    ex.native_body = providers::responses_pass_through_body(ex.req.body(), *history);
  }
  // The pass-through lane reads the body as the backend will: member names one way.
  const std::string_view own = ex.native_body.empty() ? std::string_view(ex.req.body())
                                                      : std::string_view(ex.native_body);
  auto native = providers::parse_model_request(own);
  if (auto* e = std::get_if<providers::request_error>(&native)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  ex.native.emplace();
  ex.native->body = own;
  ex.native->parsed = std::move(std::get<providers::chat_request>(native));
  ex.responses = std::get<providers::responses_translation>(std::move(translated));
  if (!keeps) {
    ex.responses->store = false;
    if (ex.responses->store_asked) ex.responses->dropped.push_back("store");
  }
  ex.dropped = ex.responses->dropped;
  co_await serve_canonical(ex, ex.responses->chat_body);
}

// The stored response `id` as the caller may see it.
awaitable<stats::result<std::optional<stats::stored_response>>> server::stored_response(
    exchange& ex, const std::string& id) {
  const auto owner = response_owner(ex);
  auto [e, found] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<std::optional<stats::stored_response>>> {
        co_return responses_store_->get(id, owner, std::chrono::system_clock::now());
      },
      as_tuple);
  if (e) co_return stats::query_error{"", "the response store failed",
                                      stats::query_error::kind::unavailable};
  co_return found;
}

// Keeps the answered Response object (`response`) with the input it answered, before the
// client sees its end, so that the next turn's previous_response_id finds it. A failure is
// logged: the answer itself is good, and its `store: true` is then the gateway's mistake.
awaitable<void> server::keep_response(exchange& ex, const std::string& response) {
  if (!ex.responses || !ex.responses->store || !responses_store_) co_return;
  stats::stored_response r;
  r.id = ex.responses->id;
  if (!ex.translated) {  // a pass-through: the upstream made the Response, and its id
    const auto j = nlohmann::json::parse(response, nullptr, false);
    if (j.is_object() && j.contains("id") && j["id"].is_string()) r.id = j["id"];
  }
  r.owner = ex.key ? ex.key->name : std::string();
  r.created_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  r.input = ex.responses->input_items.dump();
  r.response = response;
  auto [e, kept] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<bool>> {
        co_return responses_store_->put(r, std::chrono::system_clock::now());
      },
      as_tuple);
  std::string why;
  if (e)
    why = "the response store failed";
  else if (auto* qe = std::get_if<stats::query_error>(&kept))
    why = qe->message;
  else if (!std::get<bool>(kept))
    why = "larger than stats.responses.max_bytes";
  if (why.empty()) co_return;
  std::string fields = "\"request_id\":";
  core::append_json_string(fields, ex.log.request_id);
  fields += ",\"response_id\":";
  core::append_json_string(fields, r.id);
  fields += ",\"error\":";
  core::append_json_string(fields, why);
  log(log_level::error, "a response asked to be stored was not", fields);
}

// A whole Response from a backend that serves Responses itself (the pass-through lane): relayed
// as it came, with `provider` and `usage.cost` (or the gateway's estimate, marked), and kept.
awaitable<void> server::answer_response_natively(exchange& ex, const providers::provider& p,
                                                 const providers::model_info& m,
                                                 std::string& answer,
                                                 steady::time_point attempt_start,
                                                 std::optional<double> first_byte_ms) {
  const auto parsed = nlohmann::ordered_json::parse(answer, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("output")) {
    metrics_.upstream_errors.inc({p.name, "malformed"});
    emit_attempt(ex, "malformed", 502);
    const api_error failure{error_kind::upstream,
                            {},
                            "Provider '" + p.name + "' returned a malformed Response",
                            "upstream_malformed"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (auto tokens = providers::response_usage_buckets(parsed)) {
    ex.tokens = *tokens;
  } else {  // no usage: estimated from the request and the answer's own text, and said so
    providers::for_each_response_text(
        parsed, [&](std::string_view raw) { stats::tally_json_string(raw, ex.relayed); });
    estimate_tokens(ex);
  }
  const std::optional<double> cost = providers::cost_usd(ex.tokens, m);
  record_success(ex, p, m, attempt_start, first_byte_ms);
  std::string out =
      providers::annotate_response(answer, p.name, cost, ex.estimated ? &ex.tokens : nullptr);
  co_await keep_response(ex, out);
  co_await send(ex, http::status::ok, std::move(out));
}

// GET /v1/responses/{id} and GET /v1/responses/{id}/input_items.
awaitable<void> server::response_get(exchange& ex) {
  const std::string_view target = ex.req.target();
  std::string_view rest = target.substr(0, target.find('?')).substr(sizeof "/v1/responses/" - 1);
  constexpr std::string_view k_items = "/input_items";
  const bool items = rest.ends_with(k_items);
  if (items) rest.remove_suffix(k_items.size());
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    const api_error failure{error_kind::not_found, {},
                            "Unknown path " + ex.log.path +
                                ": expected /v1/responses/{id} or /v1/responses/{id}/input_items",
                            "not_found"};
    co_await send_error(ex, failure);
    co_return;
  }
  const std::string id(rest);
  if (!responses_store_) {
    const api_error failure = response_not_found(id, nullptr);
    co_await send_error(ex, failure);
    co_return;
  }
  auto found = co_await stored_response(ex, id);
  if (auto* e = std::get_if<stats::query_error>(&found)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  auto& r = std::get<std::optional<stats::stored_response>>(found);
  if (!r) {
    const api_error failure = response_not_found(id, nullptr);
    co_await send_error(ex, failure);
    co_return;
  }
  if (!items) {
    co_await send(ex, http::status::ok, std::move(r->response));
    co_return;
  }
  auto q = parse_query(target);
  auto arg = [&](const char* name) -> std::optional<std::string_view> {
    auto it = q.find(name);
    if (it == q.end()) return std::nullopt;
    return std::string_view(it->second);
  };
  auto page = providers::responses_input_items_page(r->input, arg("limit"), arg("order"),
                                                    arg("after"));
  if (auto* e = std::get_if<providers::request_error>(&page)) {
    const api_error failure = to_api_error(*e);
    co_await send_error(ex, failure);
    co_return;
  }
  co_await send(ex, http::status::ok, std::move(std::get<std::string>(page)));
}

// DELETE /v1/responses/{id}: only by the key that made it.
awaitable<void> server::response_delete(exchange& ex) {
  const std::string_view target = ex.req.target();
  const std::string id(target.substr(0, target.find('?')).substr(sizeof "/v1/responses/" - 1));
  if (id.empty() || id.find('/') != std::string::npos || !responses_store_) {
    const api_error failure = response_not_found(id, nullptr);
    co_await send_error(ex, failure);
    co_return;
  }
  const auto owner = response_owner(ex);
  auto [e, removed] = co_await net::co_spawn(
      control_,
      [&]() -> awaitable<stats::result<bool>> { co_return responses_store_->remove(id, owner); },
      as_tuple);
  if (auto* qe = std::get_if<stats::query_error>(&removed); e || qe) {
    const api_error failure =
        qe ? to_api_error(*qe)
           : api_error{error_kind::unavailable, {}, "the response store failed", "unavailable"};
    co_await send_error(ex, failure);
    co_return;
  }
  if (!std::get<bool>(removed)) {
    const api_error failure = response_not_found(id, nullptr);
    co_await send_error(ex, failure);
    co_return;
  }
  nlohmann::json done{{"id", id}, {"object", "response"}, {"deleted", true}};
  co_await send(ex, http::status::ok, done.dump());
}

}  // namespace meridian::gateway::detail
