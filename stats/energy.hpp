// The energy model: kWh from tokens, electricity cost from the serving region's price.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "stats/usage_event.hpp"

namespace meridian::stats {

struct energy_figures {
  double kwh = 0;
  double electricity_usd = 0;
};

// kWh = tokens × kwh_per_million_tokens / 1e6; electricity = kWh × usd_per_kwh.
energy_figures energy_for(std::uint64_t tokens, double kwh_per_million_tokens, double usd_per_kwh);

// The most specific kWh per million tokens: models["provider/model"], then the provider's
// models entry, then the provider, then energy.kwh_per_million_tokens.
double kwh_per_million_tokens(const config::config& cfg, std::string_view provider,
                              std::string_view model);

// USD per kWh in `region`; 0 for a region the config does not know, so an unpriced region
// shows energy but no electricity cost rather than a made-up one.
double electricity_usd_per_kwh(const config::config& cfg, std::string_view region);

// Fills event.energy_kwh and event.electricity_usd from its tokens, provider, model and region.
void apply_energy(const config::config& cfg, usage_event& event);

}  // namespace meridian::stats
