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
