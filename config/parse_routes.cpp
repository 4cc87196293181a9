// The routes section: each route's match, policy, weights, candidates and requirements, then the
// provider and region names they use, checked against the whole document.
#include "config/detail.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace meridian::config::detail {

void parser::parse_routes(const located& at, config& out) const {
  references refs;
  std::set<std::string> unconditional;  // matches of routes without `when`
  collect([&] {
    for (const auto& item : items(at)) {
      collect([&] {
        out.routes.push_back(route(item, refs));
        const auto& r = out.routes.back();
        if (unconditional.count(r.match))
          fail_entry(item, "duplicate route for match '" + r.match +
                               "'; the first, which has no when, would hide this one");
        if (r.when.empty()) unconditional.insert(r.match);
      });
    }
  });
  for (const auto& ref : refs.routes)
    collect([&] {
      const std::string& name = ref.node.Scalar();
      if (std::none_of(out.routes.begin(), out.routes.end(),
                       [&](const route_config& r) { return glob_match(r.match, name); }))
        fail(ref, "no route matches '" + name + "'; fallback_route names another route's match");
    });
  for (const auto& ref : refs.providers) {
    collect([&] {
      const std::string& name = ref.node.Scalar();
      if (std::none_of(out.providers.begin(), out.providers.end(),
                       [&](const provider_config& p) { return p.name == name; }))
        fail(ref, "unknown provider '" + name + "'; declare it under providers");
    });
  }
  for (const auto& ref : refs.regions)
    collect([&] {
      if (!out.regions.count(ref.node.Scalar()))
        fail(ref, "unknown region '" + ref.node.Scalar() +
                      "'; use cn, us, eu, local or a name declared under regions");
    });
}

// `affinity: false`, or a map with enabled, ttl, max_sessions and header.
affinity_config parser::affinity(const located& at) const {
  affinity_config out;
  if (at.node.IsScalar()) {
    out.enabled = boolean(at);
    return out;
  }
  for (const auto& [key, value] : entries(at, {"enabled", "ttl", "max_sessions", "header"})) {
    if (key == "enabled") {
      out.enabled = boolean(value);
    } else if (key == "ttl") {
      out.ttl = convert(value, parse_duration);
      if (out.ttl.count() == 0) fail(value, "must be greater than zero");
    } else if (key == "max_sessions") {
      out.max_sessions = unsigned_int(value, 100'000'000);
      if (out.max_sessions == 0) fail(value, "must be greater than zero; use enabled: false");
    } else {
      out.header = non_empty(value);
      std::transform(out.header.begin(), out.header.end(), out.header.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
  }
  return out;
}

route_config parser::route(const located& at, references& refs) const {
  route_config out;
  out.line = line_of(at);
  if (!at.node.IsMap()) fail(at, "expected a map, got " + std::string(kind_name(at.node)));
  bool has_match = false;
  std::optional<located> weights_at, candidates_at, tiers_at;
  for (const auto& [key, value] :
       entries(at, {"match", "when", "policy", "weights", "candidates", "tiers", "require",
                    "retries", "fallback", "fallback_route"})) {
    if (key == "match") {
      out.match = non_empty(value);
      has_match = true;
    } else if (key == "when") {
      out.when = when(value);
    } else if (key == "policy") {
      out.policy = policy(value);
    } else if (key == "weights") {
      weights_at = value;
      out.weights = weights(value);
    } else if (key == "candidates") {
      candidates_at = value;
    } else if (key == "tiers") {
      tiers_at = value;
    } else if (key == "require") {
      out.require = require(value, refs);
    } else if (key == "retries") {
      out.retries = static_cast<unsigned>(unsigned_int(value, 10));
    } else if (key == "fallback_route") {
      out.fallback_route = non_empty(value);
      refs.routes.push_back(value);
    } else {
      out.fallback = boolean(value);
    }
  }
  if (!has_match) fail_entry(at, "a route needs a match (the model name clients send)");
  if (candidates_at && tiers_at)
    fail(*tiers_at, "give candidates or tiers, not both (tiers hold their own candidates)");
  if (!candidates_at && !tiers_at) fail_entry(at, "a route needs candidates (or tiers)");
  // Settings another policy would ignore are almost always a mistake in the policy line.
  auto check_policy = [&](std::optional<route_policy> policy, const std::optional<located>& w,
                          const std::vector<located>& items) {
    if (w && policy != route_policy::balanced) fail(*w, "weights apply only to policy balanced");
    for (const auto& item : items)
      if (item.node.IsMap() && item.node["weight"] && policy != route_policy::weighted)
        fail(item, "a candidate weight applies only to policy weighted");
  };
  if (candidates_at) {
    auto items = candidate_items(*candidates_at);
    for (const auto& item : items) out.candidates.push_back(candidate(item));
    check_policy(out.policy, weights_at, items);
    return out;
  }
  if (weights_at) fail(*weights_at, "with tiers, weights go in the tier whose policy is balanced");
  const auto tier_items = items(*tiers_at);
  if (tier_items.empty()) fail(*tiers_at, "must list at least one tier");
  for (const auto& tier_at : tier_items) {
    route_tier tier;
    tier.line = line_of(tier_at);
    std::optional<located> tier_weights, tier_candidates;
    for (const auto& [key, value] : entries(tier_at, {"candidates", "policy", "weights"})) {
      if (key == "candidates") {
        tier_candidates = value;
      } else if (key == "policy") {
        tier.policy = policy(value);
      } else {
        tier_weights = value;
        tier.weights = weights(value);
      }
    }
    if (!tier_candidates) fail_entry(tier_at, "a tier needs candidates");
    auto items = candidate_items(*tier_candidates);
    for (const auto& item : items) {
      out.candidates.push_back(candidate(item));
      out.candidates.back().tier = static_cast<std::uint32_t>(out.tiers.size());
    }
    check_policy(tier.policy ? tier.policy : out.policy, tier_weights, items);
    out.tiers.push_back(tier);
  }
  return out;
}

std::optional<route_policy> parser::policy(const located& at) const {
  std::string text = scalar(at);
  auto out = parse_route_policy(text);
  if (!out)
    fail(at, "unknown policy '" + text + "'; expected one of " + enum_names<route_policy>());
  return out;
}

route_weights parser::weights(const located& at) const {
  route_weights out{0, 0, 0};
  for (const auto& [key, value] : entries(at, {"cost", "latency", "quality"})) {
    double w = non_negative(value, "a relative weight");
    if (key == "cost") out.cost = w;
    if (key == "latency") out.latency = w;
    if (key == "quality") out.quality = w;
  }
  if (out.cost + out.latency + out.quality <= 0)
    fail(at, "at least one weight must be greater than zero");
  return out;
}

std::vector<located> parser::candidate_items(const located& at) const {
  auto out = items(at);
  if (out.empty()) fail(at, "must list at least one provider/model candidate");
  return out;
}

// `when: {header: {x-team: research}, key: [team-a], metadata: {task: code}}`; a single key
// name may be written without the list.
route_when parser::when(const located& at) const {
  route_when out;
  auto pairs = [&](const located& map, bool lowercase_names) {
    std::vector<std::pair<std::string, std::string>> list;
    for (const auto& [name, value] : entries(map)) {
      std::string n = name;
      if (lowercase_names)
        std::transform(n.begin(), n.end(), n.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      list.emplace_back(std::move(n), scalar(value));
    }
    if (list.empty()) fail(map, "must name at least one member");
    return list;
  };
  for (const auto& [key, value] : entries(at, {"header", "key", "metadata"})) {
    if (key == "header") {
      out.headers = pairs(value, true);
    } else if (key == "metadata") {
      out.metadata = pairs(value, false);
    } else if (value.node.IsScalar()) {
      out.keys.push_back(non_empty(value));
    } else {
      out.keys = names(value);
      if (out.keys.empty()) fail(value, "must name at least one key");
    }
  }
  if (out.empty()) fail(at, "give at least one of header, key or metadata");
  return out;
}

route_candidate parser::candidate(const located& at) const {
  route_candidate out;
  out.line = line_of(at);
  if (at.node.IsMap()) {
    bool has_model = false;
    for (const auto& [key, value] : entries(at, {"model", "weight"})) {
      if (key == "model") {
        out.pattern = non_empty(value);
        has_model = true;
      } else {
        out.weight = non_negative(value, "a relative weight");
      }
    }
    if (!has_model) fail(at, "a candidate map needs a model, as in {model: p/m, weight: 3}");
  } else {
    out.pattern = non_empty(at);
  }
  auto slash = out.pattern.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == out.pattern.size())
    fail(at, "expected provider/model or provider/*, got '" + out.pattern + "'");
  return out;
}

route_require parser::require(const located& at, references& refs) const {
  route_require out;
  for (const auto& [key, value] : entries(at, {"min_quality", "regions", "providers",
                                               "exclude_providers", "max_price", "capabilities"})) {
    if (key == "min_quality") {
      out.min_quality = quality(value);
    } else if (key == "regions") {
      // Region names are checked once the whole document, and so `regions`, is known.
      for (auto& item : items(value)) {
        out.regions.push_back(non_empty(item));
        refs.regions.push_back(std::move(item));
      }
    } else if (key == "providers" || key == "exclude_providers") {
      auto& list = key == "providers" ? out.providers : out.exclude_providers;
      for (auto& item : items(value)) {
        list.push_back(non_empty(item));
        refs.providers.push_back(std::move(item));
      }
    } else if (key == "max_price") {
      for (const auto& [price_key, price_value] : entries(value, {"prompt", "completion"})) {
        if (price_key == "prompt") out.max_prompt_price = price(price_value);
        if (price_key == "completion") out.max_completion_price = price(price_value);
      }
    } else {
      out.capabilities = capabilities(value);
    }
  }
  return out;
}

}  // namespace meridian::config::detail
