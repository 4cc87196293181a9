// The energy model: arithmetic, the override order and the region's electricity price.
#include <doctest/doctest.h>

#include "stats/energy.hpp"

using namespace meridian;

TEST_CASE("energy: kWh from all tokens and electricity from the region price") {
  auto f = stats::energy_for(2'500'000, 1.2, 0.076);
  CHECK(f.kwh == doctest::Approx(3.0));
  CHECK(f.electricity_usd == doctest::Approx(0.228));
  auto none = stats::energy_for(0, 1.2, 0.076);
  CHECK(none.kwh == 0);
  CHECK(none.electricity_usd == 0);
}

TEST_CASE("energy: a model override beats its provider, which beats the energy section") {
  auto c = config::parse_config(
      "providers:\n"
      "  openai: { preset: openai, api_key_env: K, kwh_per_million_tokens: 2 }\n"
      "  local:\n"
      "    base_url: http://127.0.0.1:1/v1\n"
      "    models: { small: { input: 0, output: 0, kwh_per_million_tokens: 0.25 }, big: {} }\n"
      "models:\n"
      "  openai/gpt-4o: { kwh_per_million_tokens: 3 }\n"
      "regions:\n"
      "  moon: { electricity_usd_per_kwh: 0.5 }\n"
      "energy: { kwh_per_million_tokens: 0.9 }\n");
  CHECK(stats::kwh_per_million_tokens(c, "openai", "gpt-4o") == 3);
  CHECK(stats::kwh_per_million_tokens(c, "openai", "gpt-4o-mini") == 2);
  CHECK(stats::kwh_per_million_tokens(c, "local", "small") == 0.25);
  CHECK(stats::kwh_per_million_tokens(c, "local", "big") == 0.9);
  CHECK(stats::kwh_per_million_tokens(c, "elsewhere", "x") == 0.9);
  CHECK(stats::electricity_usd_per_kwh(c, "moon") == 0.5);
  CHECK(stats::electricity_usd_per_kwh(c, "cn") == doctest::Approx(0.076));
  CHECK(stats::electricity_usd_per_kwh(c, "atlantis") == 0);

  stats::usage_event e;
  e.provider = "local";
  e.model = "small";
  e.region = "moon";
  e.tokens = {1'000'000, 500'000, 100'000, 300'000, 100'000};  // 2 million in all
  stats::apply_energy(c, e);
  CHECK(e.energy_kwh == doctest::Approx(0.5));
  CHECK(e.electricity_usd == doctest::Approx(0.25));
}
