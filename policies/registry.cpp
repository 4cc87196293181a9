// The strategy table: every ranking strategy by name, listed here explicitly so the set is
// visible in one place and nothing depends on static initialisation order.
#include <algorithm>
#include <array>

#include "policies/strategy.hpp"

namespace meridian::policies {

namespace {

struct entry {
  std::string_view name;
  std::unique_ptr<strategy> (*make)();
};

constexpr std::array<entry, 8> k_strategies{{
    {"balanced", make_balanced_strategy},
    {"cost", make_cost_strategy},
    {"latency", make_latency_strategy},
    {"ordered", make_ordered_strategy},
    {"price_weighted", make_price_weighted_strategy},
    {"quality", make_quality_strategy},
    {"throughput", make_throughput_strategy},
    {"weighted", make_weighted_strategy},
}};

// One instance per entry, built on first use; strategies hold no state, so sharing is safe.
const std::array<std::unique_ptr<strategy>, k_strategies.size()>& instances() {
  static const auto all = [] {
    std::array<std::unique_ptr<strategy>, k_strategies.size()> out;
    for (std::size_t i = 0; i < k_strategies.size(); ++i) out[i] = k_strategies[i].make();
    return out;
  }();
  return all;
}

const strategy& shared(std::string_view name) {
  for (std::size_t i = 0; i < k_strategies.size(); ++i)
    if (k_strategies[i].name == name) return *instances()[i];
  return *instances()[0];  // unreachable for the names used below
}

}  // namespace

std::unique_ptr<strategy> make_strategy(std::string_view name) {
  for (const auto& e : k_strategies)
    if (e.name == name) return e.make();
  return nullptr;
}

std::vector<std::string_view> strategy_names() {
  std::vector<std::string_view> out;
  for (const auto& e : k_strategies) out.push_back(e.name);
  return out;
}

const strategy& builtin_strategy(config::route_policy policy) {
  return shared(config::to_string(policy));
}

const strategy& price_weighted_strategy() {
  return shared("price_weighted");
}

}  // namespace meridian::policies
