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

  void add(const provider& p, const model_info& m, double weight, std::uint32_t group) {
    for (const auto& c : cands_)
      if (c.provider == &p && c.model == &m) return;  // overlapping globs or repeated models
    candidate c;
    c.provider = &p;
    c.model = &m;
    c.health = health_.find(p.name, m.id);
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
          if (const auto* m = p->find_model(mp)) add(*p, *m, rc.weight, 0);
        continue;
      }
      for (const auto& p : cat_.providers) {
        if (!glob_match(pp, p.name)) continue;
        for (const auto& m : p.models)
          if (glob_match(mp, m.id)) add(p, m, rc.weight, 0);
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
    if (route) {
      const auto& req = route->require;
      if (!req.regions.empty() && !contains(req.regions, p.region)) return "route.require.regions";
      if (!req.providers.empty() && !contains(req.providers, p.name))
        return "route.require.providers";
      if (contains(req.exclude_providers, p.name)) return "route.require.exclude_providers";
      if (req.min_quality && m.quality < *req.min_quality) return "route.require.min_quality";
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

  // Open circuits step aside unless every survivor is open; then trying beats refusing.
  bool drop_open_circuits() {
    auto open = [&](const candidate& c) { return c.health && !health_.admits(*c.health); };
    if (std::all_of(cands_.begin(), cands_.end(), open)) return !cands_.empty();
    auto keep = cands_.begin();
    for (auto& c : cands_) {
      if (open(c)) {
        out_.excluded.push_back({c.provider, c.model, "circuit_open"});
        continue;
      }
      *keep++ = c;
    }
    cands_.erase(keep, cands_.end());
    return false;
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

 private:
  const request_facts& facts_;
  const providers::catalog& cat_;
  const health_snapshot& health_;
  const constraints& key_;
  plan_result& out_;
  std::vector<candidate> cands_;
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

const strategy& choose(sort_by sort, const config::route_config* route) {
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
  if (route && route->policy) return builtin_strategy(*route->policy);
  return price_weighted_strategy();
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
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
  const config::route_config* route = nullptr;
  for (const auto& r : routes)
    if (glob_match(r.match, asked)) {
      route = &r;
      break;
    }

  planner p(facts, catalog, health, key_constraints, out);
  if (route) {
    out.route = route->match;
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
  bool all_open = p.drop_open_circuits();
  auto& cands = p.candidates();
  if (cands.empty()) {
    out.error = p.emptied(facts.model);
    return out;
  }

  const strategy& s = choose(hint != sort_by::none ? hint : facts.provider.sort, route);
  out.policy = s.name();
  config::route_weights default_weights;
  rank_context ctx{facts, health, route ? route->weights : default_weights, rng};
  // Each model group is ranked on its own: `models` fallbacks are tried in the order given.
  std::span<candidate> all(cands);
  for (std::size_t begin = 0; begin < all.size();) {
    std::size_t end = begin;
    while (end < all.size() && all[end].group == all[begin].group) ++end;
    auto group = all.subspan(begin, end - begin);
    s.rank(group, ctx);
    apply_soft(group, facts.provider);
    apply_order(group, facts.provider);
    begin = end;
  }

  std::size_t cap = std::numeric_limits<std::size_t>::max();
  if (route) cap = route->fallback ? 1 + std::size_t{route->retries} : 1;
  out.attempts.reserve(std::min(cap, cands.size()));
  for (std::size_t i = 0; i < cands.size(); ++i) {
    const auto& c = cands[i];
    if (i >= cap) {
      out.excluded.push_back(
          {c.provider, c.model, route->fallback ? "route.retries" : "route.fallback"});
      continue;
    }
    std::string_view reason = i == 0 ? "primary" : c.group == 0 ? "fallback" : "models fallback";
    if (all_open) reason = "circuit open (all candidates are)";
    out.attempts.push_back({c.provider, c.model, reason});
  }

  const auto& first = out.attempts.front();
  out.explain.reserve(96);
  if (route) out.explain.append("route=").append(route->match).append(" ");
  out.explain.append("policy=").append(out.policy).append(" chose=").append(first.provider->name);
  out.explain.append("/").append(first.model->id);
  out.explain.append(" of=").append(std::to_string(cands.size()));
  out.explain.append(" excluded=").append(std::to_string(out.excluded.size()));
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
