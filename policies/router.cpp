// Routing: expand the route or model into deployments, drop those a hard constraint forbids,
// rank the rest with a strategy, then apply OpenRouter's ordering and the route's retry cap.
#include "policies/router.hpp"

#include <algorithm>
#include <limits>
#include <variant>

#include "policies/resolve.hpp"
#include "policies/strategy.hpp"

namespace meridian::policies {

namespace {

using providers::model_info;
using providers::provider;

bool contains(const std::vector<std::string>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// Splits "provider/model-glob" at the first '/'; model ids may contain further slashes.
std::pair<std::string_view, std::string_view> split_pattern(std::string_view pattern) {
  auto slash = pattern.find('/');
  if (slash == std::string_view::npos) return {pattern, {}};
  return {pattern.substr(0, slash), pattern.substr(slash + 1)};
}

// ":floor" and ":nitro" are routing hints, not part of the name; other colons ("qwen2.5:7b")
// belong to the model.
std::string_view strip_suffix(std::string_view model, sort_by& hint) {
  constexpr std::string_view floor = ":floor", nitro = ":nitro";
  if (model.size() > floor.size() && model.ends_with(floor)) {
    hint = sort_by::price;
    return model.substr(0, model.size() - floor.size());
  }
  if (model.size() > nitro.size() && model.ends_with(nitro)) {
    hint = sort_by::throughput;
    return model.substr(0, model.size() - nitro.size());
  }
  return model;
}

bool has(const model_info& m, config::capability c) {
  switch (c) {
    case config::capability::tools:
      return m.tools;
    case config::capability::images:
      return m.images;
    case config::capability::json:
      return m.json;
    case config::capability::reasoning:
      return m.reasoning;
  }
  return false;
}

class planner {
 public:
  planner(const request_facts& f, const providers::catalog& cat, const health_snapshot& h,
          const constraints& key, plan_result& out)
      : facts_(f), cat_(cat), health_(h), key_(key), out_(out) {}

  // The route the candidates being added belong to, for their observed cache share.
  void set_route(std::string_view route) { route_ = route; }

  void add(const provider& p, const model_info& m, double weight, std::uint32_t group) {
    for (const auto& c : cands_)
      if (c.provider == &p && c.model == &m) return;  // overlapping globs or repeated models
    candidate c;
    c.provider = &p;
    c.model = &m;
    c.health = health_.find(p.name, m.id);
    if (c.health)
      if (auto share = c.health->cache_share_for(route_)) c.cache_share = *share;
    c.weight = weight;
    c.order = static_cast<std::uint32_t>(cands_.size());
    c.group = group;
    cands_.push_back(c);
  }

  void expand_route(const config::route_config& r) {
    std::size_t n = 0;
    for (const auto& rc : r.candidates) n += rc.pattern.find('*') == std::string::npos ? 1 : 8;
    cands_.reserve(n);
    for (const auto& rc : r.candidates) {
      auto [pp, mp] = split_pattern(rc.pattern);
      if (rc.pattern.find('*') == std::string::npos) {  // the common case: one deployment
        if (const auto* p = cat_.find(pp))
          if (const auto* m = p->find_model(mp)) add(*p, *m, rc.weight, rc.tier);
        continue;
      }
      for (const auto& p : cat_.providers) {
        if (!glob_match(pp, p.name)) continue;
        for (const auto& m : p.models)
          if (glob_match(mp, m.id)) add(p, m, rc.weight, rc.tier);
      }
    }
  }

  // A model as a client names it: "provider/model" is that deployment; a bare name is every
  // provider serving it. Returns resolve_model's message when nothing serves it.
  std::optional<std::string> expand_model(std::string_view name, std::uint32_t group) {
    auto [pp, mp] = split_pattern(name);
    if (!mp.empty())
      if (const auto* p = cat_.find(pp))
        if (const auto* m = p->find_model(mp)) {
          add(*p, *m, 1, group);
          return std::nullopt;
        }
    bool found = false;
    for (const auto& p : cat_.providers)
      if (const auto* m = p.find_model(name)) {
        add(p, *m, 1, group);
        found = true;
      }
    if (found) return std::nullopt;
    auto r = resolve_model(cat_, name);
    if (const auto* e = std::get_if<resolve_error>(&r)) return e->message;
    return "The model '" + std::string(name) + "' is not available";
  }

  // The first hard constraint `c` fails, or empty.
  std::string_view violated(const candidate& c, const config::route_config* route) const {
    const provider& p = *c.provider;
    const model_info& m = *c.model;
    const provider_prefs& pref = facts_.provider;
    if (!key_.regions.empty() && !contains(key_.regions, p.region)) return "key.regions";
    if (!key_.models.empty() &&
        std::none_of(key_.models.begin(), key_.models.end(), [&](const std::string& g) {
          const auto [gp, gm] = split_pattern(g);
          return glob_match(gp, p.name) && glob_match(gm, m.id);
        }))
      return "key.models";
    if (route) {
      const auto& req = route->require;
      if (!req.regions.empty() && !contains(req.regions, p.region)) return "route.require.regions";
      if (!req.providers.empty() && !contains(req.providers, p.name))
        return "route.require.providers";
      if (contains(req.exclude_providers, p.name)) return "route.require.exclude_providers";
      if (req.min_quality && quality_for(m, facts_) < *req.min_quality)
        return "route.require.min_quality";
      if (req.max_prompt_price && m.input > *req.max_prompt_price)
        return "route.require.max_price.prompt";
      if (req.max_completion_price && m.output > *req.max_completion_price)
        return "route.require.max_price.completion";
      for (auto need : req.capabilities)
        if (!has(m, need)) return "route.require.capabilities";
    }
    if (!pref.only.empty() && !contains(pref.only, p.name)) return "provider.only";
    if (contains(pref.ignore, p.name)) return "provider.ignore";
    if (!pref.allow_fallbacks && !contains(pref.order, p.name)) return "provider.allow_fallbacks";
    if (pref.max_prompt_price && m.input > *pref.max_prompt_price)
      return "provider.max_price.prompt";
    if (pref.max_completion_price && m.output > *pref.max_completion_price)
      return "provider.max_price.completion";
    // What the request itself uses: a model without it would reject or silently ignore it.
    if (facts_.needs_tools && !m.tools) return "capability.tools";
    if (facts_.needs_images && !m.images) return "capability.images";
    if (facts_.needs_json && !m.json) return "capability.json";
    if (m.context != 0 && facts_.est_prompt_tokens > m.context) return "context_length";
    return {};
  }

  void filter(const config::route_config* route) {
    auto keep = cands_.begin();
    for (auto& c : cands_) {
      if (auto why = violated(c, route); !why.empty()) {
        out_.excluded.push_back({c.provider, c.model, why});
        continue;
      }
      *keep++ = c;
    }
    cands_.erase(keep, cands_.end());
  }

  // The error when constraints removed everything: the constraint that removed the most names
  // the kind and param; all are listed.
  plan_error emptied(std::string_view asked) const {
    std::vector<std::pair<std::string_view, int>> counts;
    for (const auto& e : out_.excluded) {
      auto it = std::find_if(counts.begin(), counts.end(),
                             [&](const auto& kv) { return kv.first == e.constraint; });
      if (it == counts.end())
        counts.emplace_back(e.constraint, 1);
      else
        ++it->second;
    }
    std::stable_sort(counts.begin(), counts.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    plan_error err;
    std::string_view top = counts.empty() ? std::string_view("model") : counts.front().first;
    // Choosing providers by name or region that nobody serves is "not found", as OpenRouter
    // answers; a price, quality or size limit nothing meets is a bad request.
    bool selection = top == "provider.only" || top == "provider.ignore" ||
                     top == "provider.allow_fallbacks" || top == "key.regions" ||
                     top.starts_with("route.require.regions") ||
                     top.starts_with("route.require.providers") ||
                     top.starts_with("route.require.exclude_providers");
    err.what = selection ? plan_error::kind::not_found : plan_error::kind::unsatisfiable;
    if (top == "key.models") {
      err.what = plan_error::kind::forbidden;
      err.code = "model_not_allowed";
    }
    err.param = top.starts_with("provider.") ? "provider" : top == "key.regions" ? "" : "model";
    // Blame the request field that asked for the capability, so the client knows what to drop.
    if (top == "capability.tools") err.param = "tools";
    if (top == "capability.images") err.param = "messages";
    if (top == "capability.json") err.param = "response_format";
    err.message = "No provider can serve '" + std::string(asked) + "': ";
    for (std::size_t i = 0; i < counts.size(); ++i) {
      if (i) err.message += ", ";
      err.message += std::string(counts[i].first) + " excluded " + std::to_string(counts[i].second);
    }
    if (counts.empty()) err.message += "no candidate is configured or available";
    return err;
  }

  std::vector<candidate>& candidates() { return cands_; }
  void clear() { cands_.clear(); }

 private:
  const request_facts& facts_;
  const providers::catalog& cat_;
  const health_snapshot& health_;
  const constraints& key_;
  plan_result& out_;
  std::vector<candidate> cands_;
  std::string_view route_;
};

// Moves the elements satisfying `pred` to the front, keeping both parts' order, in place:
// std::stable_partition may allocate, and the spans here are a handful of elements.
template <typename Pred>
std::size_t stable_front(std::span<candidate> c, std::size_t from, Pred pred) {
  std::size_t k = from;
  for (std::size_t i = from; i < c.size(); ++i)
    if (pred(c[i])) {
      std::rotate(c.begin() + k, c.begin() + i, c.begin() + i + 1);
      ++k;
    }
  return k;
}

// Soft preferences: misses go last; never-observed deployments are not misses.
void apply_soft(std::span<candidate> c, const provider_prefs& pref) {
  if (!pref.preferred_max_latency_s && !pref.preferred_min_throughput) return;
  stable_front(c, 0, [&](const candidate& x) {
    if (!x.health) return true;
    if (pref.preferred_max_latency_s && x.health->ttft_ms &&
        *x.health->ttft_ms > *pref.preferred_max_latency_s * 1000)
      return false;
    if (pref.preferred_min_throughput && x.health->tokens_per_s &&
        *x.health->tokens_per_s < *pref.preferred_min_throughput)
      return false;
    return true;
  });
}

// provider.order: the named providers first, in the given order, then everyone else as ranked.
void apply_order(std::span<candidate> c, const provider_prefs& pref) {
  std::size_t k = 0;
  for (const auto& name : pref.order)
    k = stable_front(c, k, [&](const candidate& x) { return x.provider->name == name; });
}

const config::route_tier* tier_of(const config::route_config* route, std::uint32_t group) {
  return route && group < route->tiers.size() ? &route->tiers[group] : nullptr;
}

const strategy& choose(sort_by sort, const config::route_config* route, std::uint32_t group) {
  switch (sort) {
    case sort_by::price:
      return builtin_strategy(config::route_policy::cost);
    case sort_by::throughput:
      return builtin_strategy(config::route_policy::throughput);
    case sort_by::latency:
      return builtin_strategy(config::route_policy::latency);
    case sort_by::none:
      break;
  }
  if (const auto* tier = tier_of(route, group); tier && tier->policy)
    return builtin_strategy(*tier->policy);
  if (route && route->policy) return builtin_strategy(*route->policy);
  return price_weighted_strategy();
}

bool any_glob(const std::vector<std::string>& globs, std::string_view name) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return glob_match(g, name); });
}

bool holds(const config::route_when& w, const request_facts& facts, const constraints& who) {
  for (const auto& [name, want] : w.headers) {
    std::optional<std::string_view> v;
    if (who.header) v = who.header(name);
    if (!v || !glob_match(want, *v)) return false;
  }
  if (!w.keys.empty() && (who.key.empty() || !any_glob(w.keys, who.key))) return false;
  for (const auto& condition : w.metadata) {  // named, not bound: clang 14 cannot capture it
    auto it = std::find_if(facts.metadata.begin(), facts.metadata.end(),
                           [&](const auto& kv) { return kv.first == condition.first; });
    if (it == facts.metadata.end() || !glob_match(condition.second, it->second)) return false;
  }
  return true;
}

std::string joined(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// One route's share of a plan: the route that planned it (null for a model addressed
// directly) and its candidates, filtered, then ranked.
struct segment {
  const config::route_config* route = nullptr;
  std::vector<candidate> cands;
  std::vector<std::string_view> policies;  // the strategy that ranked each group
};

// Open circuits step aside unless every survivor of every segment is open; then trying beats
// refusing, and all stay. True in that case.
bool drop_open_circuits(std::vector<segment>& segments, const health_snapshot& health,
                        plan_result& out) {
  auto open = [&](const candidate& c) { return c.health && !health.admits(*c.health); };
  bool any = false, all = true;
  for (const auto& seg : segments)
    for (const auto& c : seg.cands) {
      any = true;
      all &= open(c);
    }
  if (any && all) return true;
  for (auto& seg : segments) {
    auto keep = seg.cands.begin();
    for (auto& c : seg.cands) {
      if (open(c)) {
        out.excluded.push_back({c.provider, c.model, "circuit_open"});
        continue;
      }
      *keep++ = c;
    }
    seg.cands.erase(keep, seg.cands.end());
  }
  return false;
}

}  // namespace

const config::route_config* find_route(const std::vector<config::route_config>& routes,
                                       std::string_view name, const request_facts& facts,
                                       const constraints& who) {
  for (const auto& r : routes)
    if (glob_match(r.match, name) && holds(r.when, facts, who)) return &r;
  return nullptr;
}

plan_result plan(const request_facts& facts, const providers::catalog& catalog,
                 const health_snapshot& health, const std::vector<config::route_config>& routes,
                 const constraints& key_constraints, std::mt19937_64& rng) {
  plan_result out;
  sort_by hint = sort_by::none;
  std::string_view asked = strip_suffix(facts.model, hint);
  if (asked.empty()) {
    out.error = plan_error{plan_error::kind::unsatisfiable, "model", "The request names no model"};
    return out;
  }
  const auto& allowed_routes = key_constraints.routes;
  const config::route_config* route = find_route(routes, asked, facts, key_constraints);
  if (!allowed_routes.empty() &&
      !(route ? any_glob(allowed_routes, route->match) : !key_constraints.models.empty())) {
    std::string what = route ? "This key may not use the route '" + route->match + "'"
                             : "This key may not address models directly";
    out.error = plan_error{plan_error::kind::forbidden, "model",
                           what + "; it may use the routes: " + joined(allowed_routes),
                           route ? "route_not_allowed" : "model_not_allowed"};
    return out;
  }

  std::vector<segment> segments;
  planner p(facts, catalog, health, key_constraints, out);
  if (route) {
    out.route = route->match;
    p.set_route(route->match);
    p.expand_route(*route);
  } else {
    p.candidates().reserve(4 + facts.models.size());
    if (auto missing = p.expand_model(asked, 0)) {
      out.error = plan_error{plan_error::kind::not_found, "model", std::move(*missing)};
      return out;
    }
    // A bare name several providers serve is ambiguous unless the client opted into choosing
    // among them, with OpenRouter's `provider` preferences or a :floor / :nitro suffix.
    if (p.candidates().size() > 1 && !facts.provider.stated() && hint == sort_by::none) {
      auto r = resolve_model(catalog, asked);
      if (const auto* e = std::get_if<resolve_error>(&r);
          e && e->what == resolve_error::kind::ambiguous) {
        out.error =
            plan_error{plan_error::kind::unsatisfiable, "model", e->message, "ambiguous_model"};
        return out;
      }
    }
    for (std::size_t i = 0; i < facts.models.size(); ++i) {
      sort_by ignored = sort_by::none;
      if (auto missing = p.expand_model(strip_suffix(facts.models[i], ignored),
                                        static_cast<std::uint32_t>(i + 1))) {
        out.error = plan_error{plan_error::kind::unsatisfiable, "models",
                               "models[" + std::to_string(i) + "]: " + *missing};
        return out;
      }
    }
  }
  p.filter(route);
  segments.push_back({route, std::move(p.candidates()), {}});
  // fallback_route: the next route's candidates after these, as if the client had asked for
  // its model; each route once, and only routes the key may use.
  for (const auto* r = route; r && !r->fallback_route.empty();) {
    const auto* next = find_route(routes, r->fallback_route, facts, key_constraints);
    if (!next || std::any_of(segments.begin(), segments.end(),
                             [&](const segment& s) { return s.route == next; }))
      break;
    if (!allowed_routes.empty() && !any_glob(allowed_routes, next->match)) break;
    p.clear();
    p.set_route(next->match);
    p.expand_route(*next);
    p.filter(next);
    segments.push_back({next, std::move(p.candidates()), {}});
    r = next;
  }

  const bool all_open = drop_open_circuits(segments, health, out);
  std::size_t total = 0;
  for (const auto& seg : segments) total += seg.cands.size();
  if (total == 0) {
    out.error = p.emptied(facts.model);
    return out;
  }

  // Each group is ranked on its own: a route's tiers, or the `models` fallbacks, in order.
  for (auto& seg : segments) {
    std::span<candidate> all(seg.cands);
    for (std::size_t begin = 0; begin < all.size();) {
      std::size_t end = begin;
      while (end < all.size() && all[end].group == all[begin].group) ++end;
      const std::uint32_t g = all[begin].group;
      const strategy& s = choose(hint != sort_by::none ? hint : facts.provider.sort, seg.route, g);
      const auto* tier = tier_of(seg.route, g);
      config::route_weights default_weights;
      const config::route_weights& weights = tier && tier->weights ? *tier->weights
                                             : seg.route           ? seg.route->weights
                                                                   : default_weights;
      rank_context ctx{facts, health, weights, rng};
      auto group = all.subspan(begin, end - begin);
      s.rank(group, ctx);
      apply_soft(group, facts.provider);
      apply_order(group, facts.provider);
      seg.policies.resize(std::max<std::size_t>(seg.policies.size(), g + 1));
      seg.policies[g] = s.name();
      begin = end;
    }
  }

  out.attempts.reserve(total);
  const segment* first_segment = nullptr;
  for (std::size_t si = 0; si < segments.size(); ++si) {
    const auto& seg = segments[si];
    std::size_t cap = std::numeric_limits<std::size_t>::max();
    if (seg.route) cap = seg.route->fallback ? 1 + std::size_t{seg.route->retries} : 1;
    std::size_t taken = 0;
    for (const auto& c : seg.cands) {
      // A deployment an earlier route already planned is not tried twice.
      if (std::any_of(out.attempts.begin(), out.attempts.end(), [&](const attempt& a) {
            return a.provider == c.provider && a.model == c.model;
          }))
        continue;
      if (taken >= cap) {
        out.excluded.push_back(
            {c.provider, c.model, seg.route->fallback ? "route.retries" : "route.fallback"});
        continue;
      }
      ++taken;
      std::string_view reason = "fallback";
      if (out.attempts.empty())
        reason = "primary";
      else if (si > 0)
        reason = "route fallback";
      else if (c.group != seg.cands.front().group)
        reason = seg.route ? "tier fallback" : "models fallback";
      if (all_open) reason = "circuit open (all candidates are)";
      if (out.attempts.empty()) {
        out.policy = seg.policies[c.group];
        first_segment = &seg;
      }
      out.attempts.push_back({c.provider, c.model, reason, seg.route, c.group});
    }
  }

  const auto& first = out.attempts.front();
  out.explain.reserve(96);
  if (route) out.explain.append("route=").append(route->match).append(" ");
  if (first.route && first.route != route)
    out.explain.append("via=").append(first.route->match).append(" ");
  out.explain.append("policy=").append(out.policy).append(" chose=").append(first.provider->name);
  out.explain.append("/").append(first.model->id);
  if (first_segment->route && first_segment->route->tiers.size() > 1)
    out.explain.append(" tier=").append(std::to_string(first.tier + 1));
  out.explain.append(" of=").append(std::to_string(total));
  out.explain.append(" excluded=").append(std::to_string(out.excluded.size()));
  if (segments.size() > 1)
    out.explain.append(" fallback_route=").append(segments.back().route->match);
  if (all_open) out.explain.append(" all_circuits_open");
  return out;
}

std::vector<std::string> validate_routes(const config::config& cfg,
                                         const providers::catalog& catalog) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
    const auto& route = cfg.routes[i];
    for (std::size_t j = 0; j < route.candidates.size(); ++j) {
      const auto& rc = route.candidates[j];
      // Named, not a structured binding: clang 14 (the fuzz build) cannot capture bindings.
      const auto split = split_pattern(rc.pattern);
      const std::string_view pp = split.first, mp = split.second;
      auto fail = [&](const std::string& what) {
        out.push_back(cfg.source + ": routes[" + std::to_string(i) + "].candidates[" +
                      std::to_string(j) + "] (line " + std::to_string(rc.line) + "): " + what);
      };
      bool declared = std::any_of(cfg.providers.begin(), cfg.providers.end(),
                                  [&](const auto& p) { return glob_match(pp, p.name); });
      if (!declared) {
        fail(pp.find('*') == std::string_view::npos
                 ? "unknown provider '" + std::string(pp) + "'; declare it under providers"
                 : "'" + std::string(pp) + "' matches no declared provider");
        continue;
      }
      // Providers skipped for a missing key count too (their models are known from the preset
      // and the file): CI without secrets must reject what production would.
      bool matched = false;
      for (const auto& p : catalog.providers) {
        if (!glob_match(pp, p.name)) continue;
        for (const auto& m : p.models) matched |= glob_match(mp, m.id);
      }
      for (const auto& p : catalog.skipped) {
        if (!glob_match(pp, p.name)) continue;
        for (const auto& id : p.models) matched |= glob_match(mp, id);
      }
      if (!matched) fail("'" + rc.pattern + "' matches no model in the catalog");
    }
  }
  return out;
}

}  // namespace meridian::policies
