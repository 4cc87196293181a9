// The extension point for ranking: a strategy orders the candidates that survived every hard
// constraint, best first. Implementations live in strategies.cpp; registry.cpp names them.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "policies/facts.hpp"
#include "policies/health.hpp"
#include "providers/catalog.hpp"

namespace meridian::policies {

// One deployment (provider + model) the router may try.
struct candidate {
  const providers::provider* provider = nullptr;
  const providers::model_info* model = nullptr;
  const deployment_health* health = nullptr;  // null: never observed
  double weight = 1.0;                        // the route's share for policy weighted
  double cache_share = 0;  // observed share of prompt tokens read from its cache on this route
  std::uint32_t order = 0;                    // position in the candidate list; breaks every tie
  std::uint32_t group = 0;  // 0: the requested model or route; n: the n-th `models` fallback
  double score = 0;         // the strategy's sort key, shown by the dry run
};

// Everything a strategy may look at besides the candidates.
struct rank_context {
  const request_facts& facts;
  const health_snapshot& health;
  const config::route_weights& weights;  // for balanced
  std::mt19937_64& rng;                  // for weighted and the price-weighted default
};

// Expected cost of the request on a model, in micro-dollars (prices are USD per million tokens):
// estimated prompt tokens times the input price plus max_tokens (or k_default_completion_tokens)
// times the output price. Divide by 1e6 for USD.
double expected_cost(const request_facts& f, const providers::model_info& m);
// The same for a candidate at its effective price: the share of the prompt its cache has been
// serving on this route (cache_share) at the cache-read price, the rest at the input price.
// What the cost-aware strategies rank by.
double expected_cost(const candidate& c, const request_facts& f);

// The model's quality for this request's task (`quality: {code: 88}`), else its quality.
int quality_for(const providers::model_info& m, const request_facts& f);

class strategy {
 public:
  virtual ~strategy() = default;
  virtual std::string_view name() const = 0;
  // Reorders `c` best first and sets each score. Must be deterministic given the rng state:
  // equal keys keep candidate list order (`order`).
  virtual void rank(std::span<candidate> c, const rank_context& ctx) const = 0;
};

// The registry (registry.cpp). Names: cost, latency, throughput, quality, balanced, weighted,
// ordered and price_weighted (OpenRouter's default: one draw weighted by 1/price², then the
// rest by price). nullptr / empty for an unknown name.
std::unique_ptr<strategy> make_strategy(std::string_view name);
std::vector<std::string_view> strategy_names();
// Shared stateless instances, so routing builds none per request.
const strategy& builtin_strategy(config::route_policy policy);
const strategy& price_weighted_strategy();

// The individual factories; registry.cpp lists them.
std::unique_ptr<strategy> make_cost_strategy();
std::unique_ptr<strategy> make_latency_strategy();
std::unique_ptr<strategy> make_throughput_strategy();
std::unique_ptr<strategy> make_quality_strategy();
std::unique_ptr<strategy> make_balanced_strategy();
std::unique_ptr<strategy> make_weighted_strategy();
std::unique_ptr<strategy> make_ordered_strategy();
std::unique_ptr<strategy> make_price_weighted_strategy();

}  // namespace meridian::policies
