// Session affinity: the bounded, expiring table, the soft preference that never leaves the
// first attempt's route and tier, and the conversation's name.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>

#include "config/config.hpp"
#include "policies/affinity.hpp"
#include "policies/router.hpp"

using namespace meridian;
using namespace meridian::policies;

namespace {

constexpr const char* k_yaml = R"(
providers:
  deepseek: { base_url: "http://127.0.0.1:1/v1", region: cn, models: { deepseek-chat: { input: 0.27, output: 1.1 } } }
  qwen: { base_url: "http://127.0.0.1:2/v1", region: cn, models: { qwen-plus: { input: 0.4, output: 1.2 } } }
  openai:
    base_url: http://127.0.0.1:3/v1
    region: us
    models:
      gpt-4o: { input: 2.5, output: 10, quality: 90 }
      gpt-4o-mini: { input: 0.15, output: 0.6, quality: 75 }
routes:
  - match: auto
    tiers:
      - { policy: cost, candidates: [deepseek/deepseek-chat, qwen/qwen-plus] }
      - { policy: quality, candidates: [openai/gpt-4o-mini, openai/gpt-4o] }
    retries: 3
)";

struct world {
  config::config cfg = config::parse_config(k_yaml, "affinity.yaml");
  providers::catalog cat =
      providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  std::mt19937_64 rng{7};
  plan_result route(std::string model) {
    request_facts f;
    f.model = std::move(model);
    return plan(f, cat, {}, cfg.routes, {}, rng);
  }
};

std::string attempts(const plan_result& r) {
  std::string out;
  for (const auto& a : r.attempts)
    out += (out.empty() ? "" : ",") + a.provider->name + "/" + a.model->id;
  return out;
}

}  // namespace

TEST_CASE("affinity: a bounded, expiring table; stickiness only within the first attempt's tier") {
  const auto t0 = health_clock::time_point{} + std::chrono::hours(1);
  affinity_table table(2, std::chrono::minutes(5));
  table.remember("s1", "deepseek/deepseek-chat", t0);
  CHECK(table.find("s1", t0 + std::chrono::minutes(4)) == "deepseek/deepseek-chat");
  CHECK_FALSE(table.find("s1", t0 + std::chrono::minutes(5)));  // expired
  table.remember("s2", "a/m", t0);
  table.remember("s3", "b/m", t0);
  table.remember("s4", "c/m", t0 + std::chrono::seconds(1));
  CHECK(table.size() <= 2);
  CHECK(table.find("s4", t0 + std::chrono::seconds(2)) == "c/m");
  CHECK_FALSE(table.find("s2", t0 + std::chrono::seconds(2)));  // the oldest went first

  world w;
  auto r = w.route("auto");  // tier 1: deepseek, qwen (cost); tier 2: openai by quality
  REQUIRE(r.ok());
  CHECK(prefer_sticky(r, "qwen/qwen-plus"));
  CHECK(attempts(r) == "qwen/qwen-plus,deepseek/deepseek-chat,openai/gpt-4o,openai/gpt-4o-mini");
  CHECK(r.attempts[0].reason == "primary");
  CHECK(r.explain.find(" affinity=kept") != std::string::npos);
  // A later tier is not pulled ahead of an eligible earlier one, nor is an excluded deployment.
  auto again = w.route("auto");
  CHECK_FALSE(prefer_sticky(again, "openai/gpt-4o"));
  CHECK(again.attempts[0].model->id == "deepseek-chat");
  CHECK_FALSE(prefer_sticky(again, "nobody/none"));

  // The session a body names for itself, or the hash of its stable prefix.
  auto facts_of = [](std::string_view body) {  // literals: the facts keep views into them
    return std::get<request_facts>(facts_from_openai_body(body));
  };
  CHECK(conversation_name(facts_of(R"({"model":"m","prompt_cache_key":"k1","messages":[]})")) ==
        "prompt_cache_key:k1");
  CHECK(conversation_name(facts_of(R"({"model":"m","messages":[]})")).empty());
  const auto turn1 = facts_of(
      R"({"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"A"}]})");
  const auto turn2 = facts_of(
      R"({"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"A"},)"
      R"({"role":"assistant","content":"B"},{"role":"user","content":"C"}]})");
  const auto other = facts_of(
      R"({"model":"m","messages":[{"role":"system","content":"T"},{"role":"user","content":"A"}]})");
  CHECK(conversation_name(turn1).starts_with("prefix:"));
  CHECK(conversation_name(turn1) == conversation_name(turn2));
  CHECK(conversation_name(turn1) != conversation_name(other));
}

// A conversation renewed on every request must cost nothing more each time: before, every
// request queued one more expiry entry, and a single hot session held ~15 MB after 200,000
// requests (docs/performance.md, the soak).
TEST_CASE("affinity: renewing a session does not grow the table's queue; expiry still holds") {
  using std::chrono::minutes;
  using std::chrono::seconds;
  const auto t0 = health_clock::time_point{} + std::chrono::hours(1);
  affinity_table table(100, minutes(5));
  for (int i = 0; i < 100000; ++i)
    table.remember("|prefix:0123456789abcdef", "deepseek/deepseek-chat",
                   t0 + std::chrono::milliseconds(i));
  CHECK(table.size() == 1);
  CHECK(table.queued() == 1);

  table.remember("cold", "a/m", t0 + seconds(100));
  CHECK(table.queued() == 2);
  // The hot session is renewed every 10 s for 20 minutes; the cold one is not.
  for (int s = 110; s <= 1300; s += 10)
    table.remember("|prefix:0123456789abcdef", "b/m", t0 + seconds(s));
  CHECK(table.find("|prefix:0123456789abcdef", t0 + seconds(1301)) == "b/m");  // lives on
  CHECK_FALSE(table.find("cold", t0 + seconds(1301)));                         // expired
  CHECK(table.size() == 1);  // and gone from the table, not only unseen
  CHECK(table.queued() == 1);

  // The bound holds with many sessions, each queued once.
  for (int i = 0; i < 1000; ++i) table.remember("s" + std::to_string(i), "a/m", t0 + seconds(2000));
  CHECK(table.size() == 100);
  CHECK(table.queued() == 100);
}
