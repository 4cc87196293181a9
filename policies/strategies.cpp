// The built-in ranking strategies. Each computes one key per candidate and sorts by it, with
// the candidate list order as the final tie-breaker so equal keys rank the same on every call.
#include <algorithm>
#include <cmath>
#include <limits>

#include "policies/strategy.hpp"

namespace meridian::policies {

namespace {

enum class direction { ascending, descending };

// Sorts by score (set beforehand), then by list order.
void sort_scored(std::span<candidate> c, direction d) {
  std::sort(c.begin(), c.end(), [d](const candidate& a, const candidate& b) {
    if (a.score != b.score)
      return d == direction::ascending ? a.score < b.score : a.score > b.score;
    return a.order < b.order;
  });
}

// A health metric per candidate. A deployment never observed ranks first: otherwise the
// first one measured would win every tie and the others would never be measured at all.
template <typename Metric>
void score_observed(std::span<candidate> c, Metric metric, bool lower_is_better) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& x : c)
    if (auto v = x.health ? metric(*x.health) : std::nullopt) {
      lo = std::min(lo, *v);
      hi = std::max(hi, *v);
    }
  const double unknown = lo > hi ? 0 : lower_is_better ? lo - 1 : hi + 1;
  for (auto& x : c) {
    auto v = x.health ? metric(*x.health) : std::nullopt;
    x.score = v ? *v : unknown;
  }
}

std::optional<double> ttft(const deployment_health& h) {
  return h.ttft_ms;
}
std::optional<double> throughput(const deployment_health& h) {
  return h.tokens_per_s;
}

// Min-max normalisation to 0..1; a constant column contributes nothing.
struct range {
  double lo = std::numeric_limits<double>::infinity(),
         hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  double norm(double v) const { return hi > lo ? (v - lo) / (hi - lo) : 0; }
};

class cost_strategy final : public strategy {
 public:
  std::string_view name() const override { return "cost"; }
  void rank(std::span<candidate> c, const rank_context& ctx) const override {
    for (auto& x : c) x.score = expected_cost(x, ctx.facts);
    sort_scored(c, direction::ascending);
  }
};

class latency_strategy final : public strategy {
 public:
  std::string_view name() const override { return "latency"; }
  void rank(std::span<candidate> c, const rank_context&) const override {
    score_observed(c, ttft, true);
    sort_scored(c, direction::ascending);
  }
};

class throughput_strategy final : public strategy {
 public:
  std::string_view name() const override { return "throughput"; }
  void rank(std::span<candidate> c, const rank_context&) const override {
    score_observed(c, throughput, false);
    sort_scored(c, direction::descending);
  }
};

}  // namespace

int quality_for(const providers::model_info& m, const request_facts& f) {
  if (m.task_quality.empty()) return m.quality;
  auto it = m.task_quality.find(to_string(f.task.what));
  return it == m.task_quality.end() ? m.quality : it->second;
}

namespace {

class quality_strategy final : public strategy {
 public:
  std::string_view name() const override { return "quality"; }
  void rank(std::span<candidate> c, const rank_context& ctx) const override {
    for (auto& x : c) x.score = quality_for(*x.model, ctx.facts);
    sort_scored(c, direction::descending);
  }
};

// Score = weighted mean of cheapness, speed (time to first token) and quality, each scaled to
// 0..1 across the candidates; higher is better.
class balanced_strategy final : public strategy {
 public:
  std::string_view name() const override { return "balanced"; }
  void rank(std::span<candidate> c, const rank_context& ctx) const override {
    // The cost column is parked in `score` while the latency column is computed.
    range cost, latency, quality;
    for (auto& x : c) cost.add(expected_cost(x, ctx.facts));
    score_observed(c, ttft, true);
    for (auto& x : c) {
      latency.add(x.score);
      quality.add(quality_for(*x.model, ctx.facts));
    }
    const auto& w = ctx.weights;
    double total = w.cost + w.latency + w.quality;
    if (total <= 0) total = 1;
    for (auto& x : c) {
      double s = w.cost * (1 - cost.norm(expected_cost(x, ctx.facts))) +
                 w.latency * (1 - latency.norm(x.score)) +
                 w.quality * quality.norm(quality_for(*x.model, ctx.facts));
      x.score = s / total;
    }
    sort_scored(c, direction::descending);
  }
};

// Weighted random order without replacement (Efraimidis-Spirakis): key = ln(u) / weight, the
// largest first. The first pick is proportional to weight; a zero weight always goes last.
class weighted_strategy final : public strategy {
 public:
  std::string_view name() const override { return "weighted"; }
  void rank(std::span<candidate> c, const rank_context& ctx) const override {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (auto& x : c) {
      double u = 1.0 - uniform(ctx.rng);  // (0, 1], so the log is finite
      x.score = x.weight > 0 ? std::log(u) / x.weight : -std::numeric_limits<double>::infinity();
    }
    sort_scored(c, direction::descending);
  }
};

class ordered_strategy final : public strategy {
 public:
  std::string_view name() const override { return "ordered"; }
  void rank(std::span<candidate> c, const rank_context&) const override {
    for (auto& x : c) x.score = x.order;
    sort_scored(c, direction::ascending);
  }
};

// OpenRouter's default: deployments that failed in the last 30 s step aside; one of the rest is
// drawn with probability proportional to 1/price², and the others follow by price.
class inverse_square_strategy final : public strategy {
 public:
  std::string_view name() const override { return "price_weighted"; }
  void rank(std::span<candidate> c, const rank_context& ctx) const override {
    if (c.empty()) return;
    // A free deployment would divide by zero; a tiny floor makes it win every draw instead.
    constexpr double k_floor = 1e-9;
    auto failed = [&](const candidate& x) {
      return x.health && ctx.health.failed_recently(*x.health);
    };
    bool any_healthy =
        std::any_of(c.begin(), c.end(), [&](const candidate& x) { return !failed(x); });
    double total = 0;
    for (auto& x : c) {
      x.score = expected_cost(x, ctx.facts);
      if (!any_healthy || !failed(x)) total += 1 / std::pow(std::max(x.score, k_floor), 2);
    }
    double r = std::uniform_real_distribution<double>(0.0, total)(ctx.rng);
    std::uint32_t pick = c.front().order;
    for (const auto& x : c) {
      if (any_healthy && failed(x)) continue;
      pick = x.order;
      r -= 1 / std::pow(std::max(x.score, k_floor), 2);
      if (r < 0) break;
    }
    std::sort(c.begin(), c.end(), [&](const candidate& a, const candidate& b) {
      bool a_pick = a.order == pick, b_pick = b.order == pick;
      if (a_pick != b_pick) return a_pick;
      bool a_failed = any_healthy && failed(a), b_failed = any_healthy && failed(b);
      if (a_failed != b_failed) return b_failed;
      if (a.score != b.score) return a.score < b.score;
      return a.order < b.order;
    });
  }
};

}  // namespace

double expected_cost(const request_facts& f, const providers::model_info& m) {
  double completion =
      static_cast<double>(f.max_tokens ? *f.max_tokens : k_default_completion_tokens);
  return static_cast<double>(f.est_prompt_tokens) * m.input + completion * m.output;
}

double expected_cost(const candidate& c, const request_facts& f) {
  const auto& m = *c.model;
  if (c.cache_share <= 0) return expected_cost(f, m);
  const double h = std::min(c.cache_share, 1.0);
  const double completion =
      static_cast<double>(f.max_tokens ? *f.max_tokens : k_default_completion_tokens);
  return static_cast<double>(f.est_prompt_tokens) * ((1 - h) * m.input + h * m.cache_read) +
         completion * m.output;
}

std::unique_ptr<strategy> make_cost_strategy() {
  return std::make_unique<cost_strategy>();
}
std::unique_ptr<strategy> make_latency_strategy() {
  return std::make_unique<latency_strategy>();
}
std::unique_ptr<strategy> make_throughput_strategy() {
  return std::make_unique<throughput_strategy>();
}
std::unique_ptr<strategy> make_quality_strategy() {
  return std::make_unique<quality_strategy>();
}
std::unique_ptr<strategy> make_balanced_strategy() {
  return std::make_unique<balanced_strategy>();
}
std::unique_ptr<strategy> make_weighted_strategy() {
  return std::make_unique<weighted_strategy>();
}
std::unique_ptr<strategy> make_ordered_strategy() {
  return std::make_unique<ordered_strategy>();
}
std::unique_ptr<strategy> make_price_weighted_strategy() {
  return std::make_unique<inverse_square_strategy>();
}

}  // namespace meridian::policies
