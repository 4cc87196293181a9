// The regions section (electricity prices, with the built-in defaults) and the energy section.
#include "config/detail.hpp"

namespace meridian::config {

std::map<std::string, region_config> default_regions() {
  return {{"cn", {0.076, 0}}, {"eu", {0.175, 0}}, {"local", {0.14, 0}}, {"us", {0.14, 0}}};
}

namespace detail {

void parser::regions(const located& at, std::map<std::string, region_config>& out) const {
  for (const auto& [name, value] : entries(at)) {
    if (name.empty()) fail_entry(value, "a region name must not be empty");
    region_config region;
    region.line = line_of(value);
    bool has_price = false;
    for (const auto& [key, price_value] : entries(value, {"electricity_usd_per_kwh"})) {
      (void)key;
      region.electricity_usd_per_kwh = non_negative(price_value, "USD per kWh");
      has_price = true;
    }
    if (!has_price) fail_entry(value, "a region needs electricity_usd_per_kwh");
    out[name] = region;
  }
}

energy_config parser::energy(const located& at) const {
  energy_config out;
  for (const auto& [key, value] : entries(at, {"kwh_per_million_tokens"})) {
    (void)key;
    out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
  }
  return out;
}

}  // namespace detail

}  // namespace meridian::config
