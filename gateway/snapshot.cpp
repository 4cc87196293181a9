// Building a snapshot: every check that can reject a config runs here, before anything
// serves from it, so a bad reload changes nothing.
#include "gateway/snapshot.hpp"

#include "policies/router.hpp"

namespace meridian::gateway {
namespace {

std::shared_ptr<const snapshot> finish(config::config cfg, const providers::env_lookup& env) {
  auto snap = std::make_shared<snapshot>();
  snap->catalog = providers::build_catalog(cfg, env);
  auto problems = policies::validate_routes(cfg, snap->catalog);
  if (!problems.empty()) {
    std::string all = problems.front();
    for (std::size_t i = 1; i < problems.size(); ++i) all += "\n" + problems[i];
    throw config::config_error(all);
  }
  snap->keys = key_table::from_config(cfg, env, snap->key_problems);
  snap->cfg = std::make_shared<const config::config>(std::move(cfg));
  return snap;
}

}  // namespace

std::shared_ptr<const snapshot> make_snapshot(const std::string& yaml, const std::string& source,
                                              const providers::env_lookup& env) {
  return finish(config::parse_config(yaml, source), env);
}

namespace {

std::string listener_text(const config::endpoint& e) {
  return e.host + ":" + std::to_string(e.port);
}

std::string listener_text(const std::optional<config::endpoint>& e) {
  return e ? listener_text(*e) : "(none)";
}

// Everything about a key that decides whom it lets in and how far, as one comparable string.
std::string key_fingerprint(const virtual_key& k) {
  return std::string(reinterpret_cast<const char*>(k.hash.data()), k.hash.size()) + "|" +
         spec_json(k);
}

}  // namespace

reload_review review_reload(const snapshot& now, const snapshot& next) {
  reload_review out;
  const auto& a = *now.cfg;
  const auto& b = *next.cfg;
  if (a.auth.required && !b.auth.required) {
    if (!b.auth.required_written)
      out.refusal =
          "the new file no longer sets auth.required, which would switch authentication off; "
          "write `auth: { required: false }` to do that on purpose";
    else
      out.protective.push_back("auth.required switched off: requests without a key are served");
  } else if (!a.auth.required && b.auth.required) {
    out.protective.push_back("auth.required switched on: requests without a known key get 401");
  }
  if (a.auth.admin_token_env != b.auth.admin_token_env)
    out.protective.push_back("auth.admin_token_env changed from " + a.auth.admin_token_env +
                             " to " + b.auth.admin_token_env +
                             " (the admin token is read at start-up: restart to use it)");
  std::vector<std::string> added, removed, changed;
  for (const auto& k : next.keys.all()) {
    const auto* old = now.keys.by_name(k.name);
    if (!old)
      added.push_back(k.name);
    else if (key_fingerprint(*old) != key_fingerprint(k))
      changed.push_back(k.name);
  }
  for (const auto& k : now.keys.all())
    if (!next.keys.by_name(k.name)) removed.push_back(k.name);
  auto names = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  if (!added.empty()) out.protective.push_back("keys added: " + names(added));
  if (!removed.empty()) out.protective.push_back("keys removed: " + names(removed));
  if (!changed.empty())
    out.protective.push_back("keys changed (secret or limits): " + names(changed));
  const std::string listen_a = listener_text(a.server.listen),
                    listen_b = listener_text(b.server.listen);
  if (listen_a != listen_b) {
    out.protective.push_back("server.listen changed from " + listen_a + " to " + listen_b);
    out.restart_needed.push_back("server.listen");
  }
  const std::string admin_a = listener_text(a.server.admin_listen);
  const std::string admin_b = listener_text(b.server.admin_listen);
  if (admin_a != admin_b) {
    out.protective.push_back("server.admin_listen changed from " + admin_a + " to " + admin_b);
    out.restart_needed.push_back("server.admin_listen");
  }
  if (!now.catalog.providers.empty() && next.catalog.providers.empty())
    out.protective.push_back("every provider removed: every routed request will fail");
  if (a.server.threads != b.server.threads) out.restart_needed.push_back("server.threads");
  if (a.server.cpus != b.server.cpus) out.restart_needed.push_back("server.cpus");
  if (a.server.limits.max_connections != b.server.limits.max_connections)
    out.restart_needed.push_back("server.limits.max_connections");
  if (a.state.url != b.state.url) out.restart_needed.push_back("state");
  if (a.stats.ledger != b.stats.ledger) out.restart_needed.push_back("stats.ledger");
  const auto& ha = a.health;
  const auto& hb = b.health;
  out.health_changed = ha.failure_threshold != hb.failure_threshold || ha.cooldown != hb.cooldown ||
                       ha.recent_failure != hb.recent_failure || ha.alpha != hb.alpha;
  return out;
}

std::optional<stats::baseline> baseline_of(const snapshot& snap) {
  const std::string& name = snap.cfg->stats.baseline;
  if (name.empty()) return std::nullopt;
  auto slash = name.find('/');
  const auto* p = snap.catalog.find(name.substr(0, slash));
  const auto* m = p ? p->find_model(name.substr(slash + 1)) : nullptr;
  if (!m) return std::nullopt;
  return stats::baseline{name, {m->input, m->output, m->cache_read, m->cache_write}};
}

}  // namespace meridian::gateway
