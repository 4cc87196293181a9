// Ranking strategies: exact orders per policy including ties, the unknown-is-middle rule, and
// seeded statistical checks of the weighted and price-weighted draws.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "policies/strategy.hpp"

using namespace meridian;
using namespace meridian::policies;

namespace {

// Models by id with prices and quality; candidates point into it, so it must outlive them.
struct fixture {
  providers::provider p;
  std::vector<deployment_health> health;
  request_facts facts;
  health_snapshot snapshot;
  config::route_weights weights;
  std::mt19937_64 rng{42};

  explicit fixture(std::vector<providers::model_info> models) {
    p.name = std::string("p");  // assigning the literal trips a GCC 12 -Wrestrict false positive
    p.models = std::move(models);
    health.resize(p.models.size());
    facts.est_prompt_tokens = 1000;
    facts.max_tokens = 0;
  }

  std::vector<candidate> candidates(bool with_health = false) {
    std::vector<candidate> out;
    for (std::size_t i = 0; i < p.models.size(); ++i) {
      candidate c;
      c.provider = &p;
      c.model = &p.models[i];
      c.order = static_cast<std::uint32_t>(i);
      if (with_health) c.health = &health[i];
      out.push_back(c);
    }
    return out;
  }

  std::string ranked(std::string_view name, std::vector<candidate> c) {
    auto s = make_strategy(name);
    REQUIRE(s);
    s->rank(c, rank_context{facts, snapshot, weights, rng});
    std::string ids;
    for (const auto& x : c) ids += x.model->id;
    return ids;
  }
};

providers::model_info model(std::string id, double input, double output, int quality = 50) {
  providers::model_info m;
  m.id = std::move(id);
  m.input = input;
  m.output = output;
  m.quality = quality;
  return m;
}

}  // namespace

TEST_CASE("cost ranks by expected cost for the estimated tokens, ties in list order") {
  fixture f({model("A", 3, 0), model("B", 1, 0), model("C", 2, 0), model("D", 1, 0)});
  CHECK(f.ranked("cost", f.candidates()) == "BDCA");
  // Output tokens count too: with 1000 completion tokens, A's free output beats C's.
  fixture g({model("A", 2, 0), model("C", 1, 5)});
  g.facts.max_tokens = 1000;
  CHECK(g.ranked("cost", g.candidates()) == "AC");
  // Without max_tokens the default completion estimate applies.
  g.facts.max_tokens.reset();
  g.facts.est_prompt_tokens = 10'000;
  CHECK(g.ranked("cost", g.candidates()) == "CA");
}

TEST_CASE("expected_cost uses max_tokens or the default completion estimate") {
  fixture f({model("A", 2, 10)});
  auto c = f.candidates();
  f.facts.est_prompt_tokens = 100;
  f.facts.max_tokens = 50;
  CHECK(expected_cost(c[0], f.facts) == doctest::Approx(100 * 2 + 50 * 10));
  f.facts.max_tokens.reset();
  CHECK(expected_cost(c[0], f.facts) == doctest::Approx(100 * 2 + 256 * 10));
}

TEST_CASE("latency ranks by TTFT EWMA with unknown deployments first to be measured") {
  fixture f({model("A", 0, 0), model("B", 0, 0), model("C", 0, 0), model("D", 0, 0)});
  f.health[0].ttft_ms = 100;
  f.health[2].ttft_ms = 300;
  f.health[3].ttft_ms = 200;  // B is unknown: it goes first so that it gets measured
  CHECK(f.ranked("latency", f.candidates(true)) == "BADC");
  // Nothing observed: list order.
  CHECK(f.ranked("latency", f.candidates(false)) == "ABCD");
}

TEST_CASE("throughput ranks by tokens per second, highest first") {
  fixture f({model("A", 0, 0), model("B", 0, 0), model("C", 0, 0), model("D", 0, 0)});
  f.health[0].tokens_per_s = 20;
  f.health[1].tokens_per_s = 80;
  f.health[3].tokens_per_s = 80;  // ties B by list order; C is unknown and goes first
  CHECK(f.ranked("throughput", f.candidates(true)) == "CBDA");
}

TEST_CASE("quality ranks highest first with ties in list order") {
  fixture f(
      {model("A", 0, 0, 70), model("B", 0, 0, 90), model("C", 0, 0, 70), model("D", 0, 0, 10)});
  CHECK(f.ranked("quality", f.candidates()) == "BACD");
}

TEST_CASE("balanced combines normalised cost, latency and quality by weight") {
  fixture f({model("A", 1, 0, 50), model("B", 2, 0, 100), model("C", 3, 0, 60)});
  f.weights = {0.5, 0, 0.5};
  // cheapness A 1, B .5, C 0; quality A 0, B 1, C .2 -> A .5, B .75, C .1
  auto c = f.candidates();
  CHECK(f.ranked("balanced", c) == "BAC");
  f.weights = {1, 0, 0};
  CHECK(f.ranked("balanced", c) == "ABC");
  f.weights = {0, 1, 0};
  f.health[0].ttft_ms = 900;
  f.health[1].ttft_ms = 100;
  f.health[2].ttft_ms = 500;
  CHECK(f.ranked("balanced", f.candidates(true)) == "BCA");
  // All columns constant: every score is equal and list order decides.
  fixture g({model("X", 1, 1, 50), model("Y", 1, 1, 50)});
  CHECK(g.ranked("balanced", g.candidates()) == "XY");
}

TEST_CASE("ordered keeps the candidate list order") {
  fixture f({model("C", 9, 9, 1), model("A", 0, 0, 99), model("B", 1, 1, 50)});
  auto c = f.candidates();
  std::swap(c[0], c[2]);  // input arrives shuffled; `order` is what counts
  CHECK(f.ranked("ordered", c) == "CAB");
}

TEST_CASE("weighted draws the first candidate in proportion to its weight") {
  fixture f({model("A", 0, 0), model("B", 0, 0), model("Z", 0, 0)});
  auto base = f.candidates();
  base[0].weight = 3;
  base[1].weight = 1;
  base[2].weight = 0;
  auto s = make_strategy("weighted");
  int a_first = 0, z_last = 0;
  constexpr int k_draws = 20'000;
  for (int i = 0; i < k_draws; ++i) {
    auto c = base;
    s->rank(c, rank_context{f.facts, f.snapshot, f.weights, f.rng});
    a_first += c[0].model->id == "A";
    z_last += c[2].model->id == "Z";
  }
  CHECK(a_first / double(k_draws) == doctest::Approx(0.75).epsilon(0.03));
  CHECK(z_last == k_draws);
}

TEST_CASE("the same seed gives the same weighted order") {
  fixture f({model("A", 0, 0), model("B", 0, 0), model("C", 0, 0), model("D", 0, 0)});
  auto c1 = f.candidates(), c2 = f.candidates();
  std::mt19937_64 r1(7), r2(7);
  auto s = make_strategy("weighted");
  s->rank(c1, rank_context{f.facts, f.snapshot, f.weights, r1});
  s->rank(c2, rank_context{f.facts, f.snapshot, f.weights, r2});
  for (std::size_t i = 0; i < c1.size(); ++i) CHECK(c1[i].order == c2[i].order);
}

TEST_CASE("price_weighted draws by inverse square of price then orders the rest by price") {
  fixture f({model("B", 2, 0), model("A", 1, 0), model("C", 4, 0)});
  auto base = f.candidates();
  auto s = make_strategy("price_weighted");
  int first_a = 0, first_b = 0;
  constexpr int k_draws = 20'000;
  for (int i = 0; i < k_draws; ++i) {
    auto c = base;
    s->rank(c, rank_context{f.facts, f.snapshot, f.weights, f.rng});
    first_a += c[0].model->id == "A";
    first_b += c[0].model->id == "B";
    // Whatever was drawn, the rest follow cheapest first.
    for (std::size_t k = 2; k < c.size(); ++k) CHECK(c[k - 1].score <= c[k].score);
  }
  // Weights 1, 1/4, 1/16 -> shares 16/21, 4/21, 1/21.
  CHECK(first_a / double(k_draws) == doctest::Approx(16.0 / 21).epsilon(0.02));
  CHECK(first_b / double(k_draws) == doctest::Approx(4.0 / 21).epsilon(0.05));
}

TEST_CASE("price_weighted with prices 1 and 2 splits about 0.8 and 0.2") {
  fixture f({model("one", 1, 0), model("two", 2, 0)});
  auto base = f.candidates();
  auto s = make_strategy("price_weighted");
  int one = 0;
  constexpr int k_draws = 20'000;
  for (int i = 0; i < k_draws; ++i) {
    auto c = base;
    s->rank(c, rank_context{f.facts, f.snapshot, f.weights, f.rng});
    one += c[0].model->id == "one";
  }
  CHECK(one / double(k_draws) == doctest::Approx(0.8).epsilon(0.02));
}

TEST_CASE("price_weighted skips deployments that failed in the last 30 seconds") {
  fixture f({model("cheap", 1, 0), model("dear", 5, 0)});
  health_book book;
  auto t0 = health_clock::time_point{} + std::chrono::hours(1);
  book.record_failure("p", "cheap", t0);
  f.snapshot = book.snapshot(t0 + std::chrono::seconds(10));
  auto c = f.candidates();
  c[0].health = f.snapshot.find("p", "cheap");
  REQUIRE(c[0].health);
  for (int i = 0; i < 200; ++i) {
    auto copy = c;
    make_strategy("price_weighted")
        ->rank(copy, rank_context{f.facts, f.snapshot, f.weights, f.rng});
    REQUIRE(copy[0].model->id == "dear");
    REQUIRE(copy[1].model->id == "cheap");
  }
  // After 30 s the failure no longer counts and the cheap one wins most draws again.
  f.snapshot = book.snapshot(t0 + std::chrono::seconds(31));
  c[0].health = f.snapshot.find("p", "cheap");
  int cheap_first = 0;
  for (int i = 0; i < 1000; ++i) {
    auto copy = c;
    make_strategy("price_weighted")
        ->rank(copy, rank_context{f.facts, f.snapshot, f.weights, f.rng});
    cheap_first += copy[0].model->id == "cheap";
  }
  CHECK(cheap_first > 900);
}

TEST_CASE("a free deployment wins every price-weighted draw") {
  fixture f({model("paid", 1, 0), model("free", 0, 0)});
  for (int i = 0; i < 100; ++i) CHECK(f.ranked("price_weighted", f.candidates()) == "freepaid");
}

TEST_CASE("the registry builds every strategy by name and rejects unknown names") {
  for (auto name : strategy_names()) {
    auto s = make_strategy(name);
    REQUIRE(s);
    CHECK(s->name() == name);
  }
  CHECK(strategy_names().size() == 8);
  CHECK_FALSE(make_strategy("cheapest"));
  for (auto p :
       {config::route_policy::cost, config::route_policy::latency, config::route_policy::throughput,
        config::route_policy::quality, config::route_policy::balanced,
        config::route_policy::weighted, config::route_policy::ordered})
    CHECK(builtin_strategy(p).name() == config::to_string(p));
  CHECK(price_weighted_strategy().name() == "price_weighted");
}

TEST_CASE("an empty candidate set is left alone by every strategy") {
  fixture f({});
  for (auto name : strategy_names()) CHECK(f.ranked(name, {}).empty());
}
