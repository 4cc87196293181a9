// The router: from a request's facts, the catalog, health and the route table to an ordered
// list of deployments to try. Pure and sans-I/O; the gateway performs the attempts.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "policies/facts.hpp"
#include "policies/health.hpp"
#include "providers/catalog.hpp"

namespace meridian::policies {

// Who is asking: the API key's limits, which only ever narrow the candidate set, and what
// routes' `when` conditions look at besides the request body.
struct constraints {
  std::vector<std::string> regions;  // allow-list; empty = any region
  std::vector<std::string> models;   // allow-list of provider/model globs; empty = any
  std::vector<std::string> routes;   // allow-list of route-match globs; empty = any, or none
  std::string_view key;              // the key's name; empty without a key
  // A request header's value by lowercase name; empty function: no header is known.
  std::function<std::optional<std::string_view>(std::string_view)> header;
};

struct attempt {
  const providers::provider* provider = nullptr;
  const providers::model_info* model = nullptr;
  std::string_view reason;  // "primary", "fallback", "tier fallback", "route fallback", ...
  const config::route_config* route = nullptr;  // what planned it (maybe a fallback_route's)
  std::uint32_t tier = 0;                       // its tier in that route, from 0
};

// A deployment that will not be tried and the constraint that removed it, named as the client
// or operator wrote it: "provider.ignore", "route.require.min_quality", "key.regions", ...
struct exclusion {
  const providers::provider* provider = nullptr;
  const providers::model_info* model = nullptr;
  std::string_view constraint;
};

struct plan_error {
  // unsatisfiable: a constraint nothing meets (a price, quality or size limit, a capability, no
  // model named); not_found: no such model, or providers chosen by name or region that nobody
  // serves, as OpenRouter answers; forbidden: the key's allow.models or allow.routes.
  enum class kind { unsatisfiable, not_found, forbidden };
  kind what = kind::unsatisfiable;
  std::string param;  // the request field to blame, e.g. "provider" or "model"
  std::string message;
  std::string code;  // a machine-readable reason beyond the kind, e.g. ambiguous_model
};

struct plan_result {
  std::vector<attempt> attempts;  // best first; the gateway stops at the first success
  std::vector<exclusion> excluded;
  std::string route;        // the route's match, or empty when the model was addressed
  std::string_view policy;  // the strategy that ranked, e.g. "balanced" or "price_weighted"
  std::string explain;      // for the x-meridian-route header
  std::optional<plan_error> error;

  bool ok() const { return !error; }
};

// Plans one request. `routes` are tried in order: the first whose match fits the model (after a
// ":floor" or ":nitro" suffix is removed) and whose `when` holds wins. Its candidates come tier
// by tier, each tier ranked by its own policy; then those of its fallback_route's route, and so
// on. Never throws for request-level problems; see plan_result.error.
plan_result plan(const request_facts& facts, const providers::catalog& catalog,
                 const health_snapshot& health, const std::vector<config::route_config>& routes,
                 const constraints& key_constraints, std::mt19937_64& rng);

// Route candidates that name an undeclared provider or match no model of the catalog, as
// "source: routes[i].candidates[j] (line N): ..." messages. Empty when all is well.
std::vector<std::string> validate_routes(const config::config& cfg,
                                         const providers::catalog& catalog);

using config::glob_match;

// The route a request for model `name` takes: the first whose match fits and whose `when`
// holds; nullptr for none.
const config::route_config* find_route(const std::vector<config::route_config>& routes,
                                       std::string_view name, const request_facts& facts,
                                       const constraints& who);

}  // namespace meridian::policies
