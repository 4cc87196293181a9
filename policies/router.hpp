// The router: from a request's facts, the catalog, health and the route table to an ordered
// list of deployments to try. Pure and sans-I/O; the gateway performs the attempts.
#pragma once

#include <cstdint>
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

// Limits attached to the API key. They only ever narrow the candidate set.
struct constraints {
  std::vector<std::string> regions;  // allow-list; empty = any region
};

struct attempt {
  const providers::provider* provider = nullptr;
  const providers::model_info* model = nullptr;
  std::string_view reason;  // "primary", "fallback", "models fallback", ...
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
  // serves, as OpenRouter answers.
  enum class kind { unsatisfiable, not_found };
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

// Plans one request. `routes` are tried in order, first match wins (after a ":floor" or
// ":nitro" suffix is removed). Never throws for request-level problems; see plan_result.error.
plan_result plan(const request_facts& facts, const providers::catalog& catalog,
                 const health_snapshot& health, const std::vector<config::route_config>& routes,
                 const constraints& key_constraints, std::mt19937_64& rng);

// Route candidates that name an undeclared provider or match no model of the catalog, as
// "source: routes[i].candidates[j] (line N): ..." messages. Empty when all is well.
std::vector<std::string> validate_routes(const config::config& cfg,
                                         const providers::catalog& catalog);

// '*' matches any run of characters (including none); everything else matches itself.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace meridian::policies
