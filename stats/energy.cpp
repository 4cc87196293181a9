// The energy model over the typed config: overrides from the most to the least specific.
#include "stats/energy.hpp"

#include <algorithm>
#include <string>

namespace meridian::stats {

energy_figures energy_for(std::uint64_t tokens, double kwh_per_million_tokens, double usd_per_kwh) {
  energy_figures out;
  out.kwh = static_cast<double>(tokens) * kwh_per_million_tokens / 1e6;
  out.electricity_usd = out.kwh * usd_per_kwh;
  return out;
}

double kwh_per_million_tokens(const config::config& cfg, std::string_view provider,
                              std::string_view model) {
  std::string qualified = std::string(provider) + "/" + std::string(model);
  if (auto it = cfg.models.find(qualified);
      it != cfg.models.end() && it->second.kwh_per_million_tokens)
    return *it->second.kwh_per_million_tokens;
  auto p = std::find_if(cfg.providers.begin(), cfg.providers.end(),
                        [&](const config::provider_config& pc) { return pc.name == provider; });
  if (p != cfg.providers.end()) {
    if (auto it = p->models.find(std::string(model));
        it != p->models.end() && it->second.kwh_per_million_tokens)
      return *it->second.kwh_per_million_tokens;
    if (p->kwh_per_million_tokens) return *p->kwh_per_million_tokens;
  }
  return cfg.energy.kwh_per_million_tokens;
}

double electricity_usd_per_kwh(const config::config& cfg, std::string_view region) {
  auto it = cfg.regions.find(std::string(region));
  return it == cfg.regions.end() ? 0.0 : it->second.electricity_usd_per_kwh;
}

void apply_energy(const config::config& cfg, usage_event& event) {
  auto figures =
      energy_for(event.tokens.total(), kwh_per_million_tokens(cfg, event.provider, event.model),
                 electricity_usd_per_kwh(cfg, event.region));
  event.energy_kwh = figures.kwh;
  event.electricity_usd = figures.electricity_usd;
}

}  // namespace meridian::stats
