// Virtual keys at the door: authentication, rate-limit admission, budget reservation and its
// settlement, and the residency check — each answering the client itself when it refuses.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

// ---- virtual keys: authentication, rate limits, budgets, residency ----

// A presented secret that matches no key is refused: when auth is required, and also when it is
// not but keys exist, since a mistyped key served anonymously would escape its budget, limits
// and residency. Without a key, or with any secret when no keys are configured (SDKs insist on
// sending one), a request is anonymous unless auth is required.
awaitable<bool> server::authenticate(exchange& ex) {
  const auto& cfg = *ex.snap.cfg;
  auto header = [&](auto name) {
    auto v = ex.req[name];
    return std::string_view(v.data(), v.size());
  };
  std::string_view secret =
      presented_secret(header(http::field::authorization), header("x-api-key"));
  // Gemini clients send theirs as x-goog-api-key or ?key= (the access log has no query string).
  std::string query_key;
  if (secret.empty() && ex.shape == core::api_shape::gemini) {
    secret = header("x-goog-api-key");
    if (secret.empty()) {
      auto query = parse_query(ex.req.target());
      if (auto it = query.find("key"); it != query.end()) query_key = it->second;
      secret = query_key;
    }
  }
  if (!secret.empty() && !ex.snap.keys.empty()) ex.key = ex.snap.keys.authenticate(secret);
  if (!secret.empty() && !ex.key) {
    ex.admin_keys = admin_keys_.load();
    if (!ex.admin_keys->empty()) ex.key = ex.admin_keys->authenticate(secret);
  }
  if (ex.key) {
    ex.log.key = ex.key->name;
    co_return true;
  }
  const bool keys_exist = !ex.snap.keys.empty() || (ex.admin_keys && !ex.admin_keys->empty());
  if (!cfg.auth.required && (secret.empty() || !keys_exist)) co_return true;
  metrics_.auth_failures.inc({secret.empty() ? "missing" : "unknown"});
  const std::string message =
      secret.empty() ? "Missing API key: send Authorization: Bearer <key> or x-api-key: <key>"
                     : "Invalid API key";
  const api_error failure{error_kind::authentication, {}, message, "invalid_api_key"};
  co_await send_error(ex, failure);
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
  const api_error failure{error_kind::unavailable,
                          {},
                          "The rate-limit store is unavailable; try again shortly",
                          "state_unavailable"};
  co_await send_error(ex, failure);
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
  const api_error failure{
      by_requests ? error_kind::rate_limited_requests : error_kind::rate_limited_tokens,
      {},
      message,
      "rate_limit_exceeded"};
  co_await send_error(ex, failure);
  co_return false;
}

// Reserves access::reservation_amount against the key's budget (max_tokens, else
// state.reserve_tokens, of output at the dearest planned candidate) before anything goes
// upstream; a refusal is a 402 that says what is spent, reserved and asked.
awaitable<bool> server::reserve_budget(exchange& ex, std::size_t prompt_bytes,
                                       std::optional<std::uint64_t> max_output,
                                       const std::vector<const providers::model_info*>& models,
                                       std::uint64_t choices) {
  if (!ex.key || !ex.key->budget) co_return true;
  const auto& state_cfg = ex.snap.cfg->state;
  const std::uint64_t output =
      *output_allowance(max_output, true, state_cfg.reserve_tokens, choices);
  const micro_usd amount = reservation_amount(prompt_bytes, output, models);
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
  const api_error failure{error_kind::insufficient_quota, {}, message, "budget_exceeded"};
  co_await send_error(ex, failure);
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

namespace {
// Quota counters share the keys' store under names no key can take ('@' starts none in practice
// and these name deployments).
std::string quota_name(const providers::provider& p, const providers::model_info* m) {
  return m ? "@deployment:" + p.name + "/" + m->id : "@provider:" + p.name;
}
}  // namespace

std::string_view server::quota_refusal(const providers::provider& p,
                                       const providers::model_info& m) {
  const auto now = wall_clock::now();
  // The model's first: a refusal there must not spend a unit of the provider's.
  if (m.rpm || m.tpm) {
    auto r = state_->admit(quota_name(p, &m), {m.rpm, m.tpm}, now);
    if (auto* a = std::get_if<admission>(&r); a && !a->allowed)
      return a->refused_by == "requests" ? "model.rpm" : "model.tpm";
  }
  if (p.rpm || p.tpm) {
    auto r = state_->admit(quota_name(p, nullptr), {p.rpm, p.tpm}, now);
    if (auto* a = std::get_if<admission>(&r); a && !a->allowed)
      return a->refused_by == "requests" ? "provider.rpm" : "provider.tpm";
  }
  return {};
}

void server::count_quota_tokens(const providers::provider& p, const providers::model_info& m,
                                std::uint64_t tokens) {
  if (tokens == 0) return;
  const auto now = wall_clock::now();
  if (m.tpm) state_->add_tokens(quota_name(p, &m), tokens, now);
  if (p.tpm) state_->add_tokens(quota_name(p, nullptr), tokens, now);
}

bool server::region_allowed(const exchange& ex, const providers::provider& p) const {
  if (!ex.key || ex.key->allow_regions.empty()) return true;
  const auto& allowed = ex.key->allow_regions;
  return std::find(allowed.begin(), allowed.end(), p.region) != allowed.end();
}

// Control thread: the admin keys from the ledger's database (every gateway sharing it sees
// the same), swapped in whole. Returns an error message, or empty.

}  // namespace meridian::gateway::detail
