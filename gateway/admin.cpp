// The admin listener's endpoints: reload on demand, the running config without secrets, and the
// key API (list, create, revoke), whose database work runs on the control thread.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

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
    const api_error failure{error_kind::unprocessable,
                            {},
                            "Config rejected; the running config stays: " + result.second,
                            "invalid_config"};
    co_await send_error(ex, failure);
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
// answer is a status and a body, or an api_error. Plain functions, not coroutines: GCC 12
// mishandles initializer-list temporaries inside coroutines.
awaitable<void> server::answer_on_control(exchange& ex, std::function<admin_answer()> work) {
  auto [e, answer] = co_await net::co_spawn(
      control_, [&work]() -> awaitable<admin_answer> { co_return work(); }, as_tuple);
  if (e) {
    const api_error failure{error_kind::internal, {}, "The admin request failed", {}};
    co_await send_error(ex, failure);
    co_return;
  }
  if (auto* failed = std::get_if<api_error>(&answer)) {
    co_await send_error(ex, *failed);
    co_return;
  }
  auto& done = std::get<admin_body>(answer);
  co_await send(ex, static_cast<http::status>(done.status), std::move(done.body));
}

// GET /admin/keys: every key, its limits and its budget's spend this period. No secrets.
awaitable<void> server::admin_keys_list(exchange& ex) {
  co_await answer_on_control(ex, [this] { return keys_listing(); });
}

server::admin_answer server::keys_listing() {
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
      return api_error{error_kind::unavailable,
                       {},
                       "The key store cannot be read: " + qe->message,
                       "ledger_unavailable"};
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
  return admin_body{200, out.dump()};
}

// POST /admin/keys: a new key, stored in the ledger's database (so it survives restarts and
// every gateway sharing the database serves it). A generated secret is shown once, here.
awaitable<void> server::admin_keys_create(exchange& ex) {
  auto parsed = parse_new_key(ex.req.body(), *ex.snap.cfg);
  if (auto* pe = std::get_if<key_request_error>(&parsed)) {
    const api_error failure{error_kind::invalid_request, pe->param, pe->message, "invalid_value"};
    co_await send_error(ex, failure);
    co_return;
  }
  auto made = std::get<new_key>(std::move(parsed));
  co_await answer_on_control(ex, [this, &made] { return key_creation(made); });
}

server::admin_answer server::key_creation(const new_key& made) {
  const auto snap = snap_.load();
  auto conflict = [](const std::string& message) {
    return api_error{error_kind::conflict, "name", message, "key_exists"};
  };
  if (!ledger_)
    return api_error{error_kind::unavailable,
                     {},
                     "Admin keys are kept in the ledger database; set stats.ledger to "
                     "sqlite:PATH or postgres://…",
                     "ledger_unavailable"};
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
    return api_error{error_kind::unavailable,
                     {},
                     "The key could not be stored: " + qe->message,
                     "ledger_unavailable"};
  if (!std::get<bool>(added)) return conflict("An active key named '" + made.key.name + "' exists");
  if (auto problem = refresh_admin_keys(); !problem.empty())
    log(log_level::warn, "admin keys not refreshed: " + problem);
  nlohmann::json j = key_json(made.key);
  if (!made.secret.empty()) j["key"] = made.secret;
  j["created_ms"] = stored.created_ms;
  log(log_level::info, "admin: key created", "\"key\":" + nlohmann::json(made.key.name).dump());
  return admin_body{201, j.dump()};
}

// DELETE /admin/keys?name=N: revokes an admin key at once on this gateway, and within the
// refresh interval on every other gateway sharing the database.
awaitable<void> server::admin_keys_revoke(exchange& ex) {
  auto query = parse_query(ex.req.target());
  auto it = query.find("name");
  if (it == query.end() || it->second.empty()) {
    const api_error failure{error_kind::invalid_request, "name",
                            "Give the key to revoke as ?name=", "missing_name"};
    co_await send_error(ex, failure);
    co_return;
  }
  const std::string name = it->second;
  co_await answer_on_control(ex, [this, &name] { return key_revocation(name); });
}

server::admin_answer server::key_revocation(const std::string& name) {
  const auto snap = snap_.load();
  auto not_found = [&] {
    return api_error{error_kind::not_found, "name", "No active admin key named '" + name + "'",
                     "key_not_found"};
  };
  if (snap->keys.by_name(name))
    return api_error{error_kind::conflict, "name",
                     "Key '" + name + "' is defined in the config file; remove it there",
                     "config_key"};
  if (!ledger_) return not_found();
  auto revoked = ledger_->revoke_key(name, wall_clock::now());
  if (auto* qe = std::get_if<stats::query_error>(&revoked))
    return api_error{error_kind::unavailable,
                     {},
                     "The key could not be revoked: " + qe->message,
                     "ledger_unavailable"};
  if (!std::get<bool>(revoked)) return not_found();
  refresh_admin_keys();
  log(log_level::info, "admin: key revoked", "\"key\":" + nlohmann::json(name).dump());
  nlohmann::json out = nlohmann::json::object();
  out["name"] = name;
  out["revoked"] = true;
  return admin_body{200, out.dump()};
}

}  // namespace meridian::gateway::detail
