// The routes section: each route's match, policy, weights, candidates and requirements, then the
// provider and region names they use, checked against the whole document.
#include "config/detail.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace meridian::config::detail {

void parser::parse_routes(const located& at, config& out) const {
  references refs;
  std::set<std::string> matches;
  collect([&] {
    for (const auto& item : items(at)) {
      collect([&] {
        out.routes.push_back(route(item, refs));
        if (!matches.insert(out.routes.back().match).second)
          fail_entry(item, "duplicate route for match '" + out.routes.back().match +
                               "'; the first would hide this one");
      });
    }
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

route_config parser::route(const located& at, references& refs) const {
  route_config out;
  out.line = line_of(at);
  if (!at.node.IsMap()) fail(at, "expected a map, got " + std::string(kind_name(at.node)));
  bool has_match = false, has_candidates = false, has_weights = false;
  const located* weighted_candidate = nullptr;
  std::vector<located> candidate_items;
  located weights_at;
  for (const auto& [key, value] : entries(
           at, {"match", "policy", "weights", "candidates", "require", "retries", "fallback"})) {
    if (key == "match") {
      out.match = non_empty(value);
      has_match = true;
    } else if (key == "policy") {
      std::string text = scalar(value);
      out.policy = parse_route_policy(text);
      if (!out.policy)
        fail(value, "unknown policy '" + text + "'; expected one of " + enum_names<route_policy>());
    } else if (key == "weights") {
      has_weights = true;
      weights_at = value;
      out.weights = route_weights{0, 0, 0};
      for (const auto& [w_key, w_value] : entries(value, {"cost", "latency", "quality"})) {
        double w = non_negative(w_value, "a relative weight");
        if (w_key == "cost") out.weights.cost = w;
        if (w_key == "latency") out.weights.latency = w;
        if (w_key == "quality") out.weights.quality = w;
      }
      if (out.weights.cost + out.weights.latency + out.weights.quality <= 0)
        fail(value, "at least one weight must be greater than zero");
    } else if (key == "candidates") {
      has_candidates = true;
      candidate_items = items(value);
      if (candidate_items.empty()) fail(value, "must list at least one provider/model candidate");
    } else if (key == "require") {
      out.require = require(value, refs);
    } else if (key == "retries") {
      out.retries = static_cast<unsigned>(unsigned_int(value, 10));
    } else {
      out.fallback = boolean(value);
    }
  }
  if (!has_match) fail_entry(at, "a route needs a match (the model name clients send)");
  if (!has_candidates) fail_entry(at, "a route needs candidates");
  for (const auto& item : candidate_items) {
    out.candidates.push_back(candidate(item));
    if (item.node.IsMap() && item.node["weight"] && !weighted_candidate) weighted_candidate = &item;
  }
  // Settings another policy would ignore are almost always a mistake in the policy line.
  if (has_weights && out.policy != route_policy::balanced)
    fail(weights_at, "weights apply only to policy balanced");
  if (weighted_candidate && out.policy != route_policy::weighted)
    fail(*weighted_candidate, "a candidate weight applies only to policy weighted");
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
