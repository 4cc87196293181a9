// `meridian route -c FILE REQ.json`: the dry run prints the attempt order, exclusions with their
// constraint and the expected cost, and exits 0, 1 (plan error) or 2 (usage).
#include <doctest/doctest.h>

#include <sstream>

#include "tests/integration/harness.hpp"

using namespace meridian::test;

namespace {

// No preset, so no key is needed; route never connects, so the ports need no listener.
constexpr const char* k_config = R"(
providers:
  deepseek:
    base_url: http://127.0.0.1:1/v1
    region: cn
    models:
      deepseek-chat: { input: 0.28, output: 0.42, quality: 80, context: 131072 }
  openai:
    base_url: http://127.0.0.1:2/v1
    region: us
    models:
      gpt-4o: { input: 2.5, output: 10, quality: 88, context: 128000 }
      gpt-4o-mini: { input: 0.15, output: 0.6, quality: 75, context: 128000 }
  claude:
    base_url: http://127.0.0.1:3/v1
    region: us
    models:
      sonnet: { input: 3, output: 15, quality: 92, context: 200000 }
  local:
    base_url: http://127.0.0.1:4/v1
    region: local
    models:
      "qwen2.5:7b": { input: 0, output: 0, quality: 55, context: 32768 }
routes:
  - match: cheap
    policy: cost
    candidates: [deepseek/*, openai/*, claude/*, local/*]
    retries: 4
  - match: best
    policy: quality
    candidates: [deepseek/*, openai/*, claude/*, local/*]
    retries: 4
  - match: capped
    policy: cost
    candidates: [deepseek/*, openai/*, claude/*]
    require: { max_price: { prompt: 1 } }
)";

struct run_result {
  int code;
  std::string out;
};

run_result run(const std::vector<std::string>& args) {
  std::string cmd = std::string("'") + MERIDIAN_BIN + "' ";
  for (const auto& a : args) cmd += "'" + a + "' ";
  process p({"/bin/sh", "-c", cmd + "2>&1"});  // stderr joins stdout so one pipe carries both
  auto code = p.wait_exit(10s);
  p.wait_line("\x01", 200ms);  // let the reader drain
  std::string out;
  for (const auto& l : p.lines()) out += l + "\n";
  return {code.value_or(-1), out};
}

std::string body(const std::string& model, int max_tokens) {
  return R"({"model": ")" + model + R"(", "max_tokens": )" + std::to_string(max_tokens) +
         R"(, "messages": [{"role": "user", "content": "Say hello in four words."}]})";
}

// The PROVIDER/MODEL column of the attempts table, in printed order.
std::vector<std::string> attempt_order(const std::string& out) {
  std::vector<std::string> names;
  std::istringstream in(out);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("attempts", 0) == 0) {
      inside = true;
      std::getline(in, line);  // the column headers
      continue;
    }
    if (!inside) continue;
    if (line.empty()) break;
    std::istringstream row(line);
    std::string index, name;
    row >> index >> name;
    names.push_back(name);
  }
  return names;
}

// The constraint printed for `name` in the exclusions table, or empty.
std::string exclusion_of(const std::string& out, const std::string& name) {
  auto table = out.find("\nexclusions\n");
  if (table == std::string::npos) return {};
  std::istringstream in(out.substr(table));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string first, constraint;
    row >> first >> constraint;
    if (first == name) return constraint;
  }
  return {};
}

}  // namespace

TEST_CASE("route cli: a cost route prints candidates cheapest first with expected costs") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  auto req = d.write("req.json", body("cheap", 1000));
  auto r = run({"route", "-c", config, req});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("route: cheap\n") != std::string::npos);
  CHECK(r.out.find("policy: cost\n") != std::string::npos);
  CHECK(r.out.find("explain: route=cheap policy=cost chose=local/qwen2.5:7b of=5 excluded=0") !=
        std::string::npos);
  CHECK(attempt_order(r.out) ==
        std::vector<std::string>{"local/qwen2.5:7b", "deepseek/deepseek-chat", "openai/gpt-4o-mini",
                                 "openai/gpt-4o", "claude/sonnet"});
  // "Say hello in four words." is 24 bytes, so 6 prompt tokens; 1000 completion tokens.
  // deepseek: 6 * 0.28 + 1000 * 0.42 = 421.68 micro-dollars.
  CHECK(r.out.find("0.00042168  fallback") != std::string::npos);
  CHECK(r.out.find("exclusions: none") != std::string::npos);
}

TEST_CASE("route cli: a quality route prints the best model first and no cost column") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  auto req = d.write("req.json", body("best", 100));
  auto r = run({"route", "-c", config, req});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("policy: quality\n") != std::string::npos);
  CHECK(attempt_order(r.out) == std::vector<std::string>{"claude/sonnet", "openai/gpt-4o",
                                                         "deepseek/deepseek-chat",
                                                         "openai/gpt-4o-mini", "local/qwen2.5:7b"});
  CHECK(r.out.find("EXPECTED_USD") == std::string::npos);
}

TEST_CASE("route cli: an exclusion by require.max_price names its constraint") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  auto req = d.write("req.json", body("capped", 100));
  auto r = run({"route", "-c", config, req});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(attempt_order(r.out) ==
        std::vector<std::string>{"deepseek/deepseek-chat", "openai/gpt-4o-mini"});
  CHECK(exclusion_of(r.out, "openai/gpt-4o") == "route.require.max_price.prompt");
  CHECK(exclusion_of(r.out, "claude/sonnet") == "route.require.max_price.prompt");
}

TEST_CASE("route cli: a model addressed directly skips the route table") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  auto req = d.write("req.json", body("openai/gpt-4o", 10));
  auto r = run({"route", "-c", config, req});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("route: none (addressed directly)") != std::string::npos);
  CHECK(attempt_order(r.out) == std::vector<std::string>{"openai/gpt-4o"});
}

TEST_CASE("route cli: an unknown model exits 1 with the plan error") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  auto req = d.write("req.json", body("nosuch/model", 10));
  auto r = run({"route", "-c", config, req});
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("error: status 404, param 'model'") != std::string::npos);
  CHECK(r.out.find("attempts") == std::string::npos);
}

TEST_CASE("route cli: a missing or invalid REQ.json is a usage error") {
  temp_dir d;
  auto config = d.write("m.yaml", k_config);
  CHECK(run({"route", "-c", config}).code == 2);
  auto missing = run({"route", "-c", config, d.path() + "/nope.json"});
  CHECK(missing.code == 2);
  CHECK(missing.out.find("nope.json: cannot read the file") != std::string::npos);
  auto bad = d.write("bad.json", "{\"model\": ");
  CHECK(run({"route", "-c", config, bad}).code == 2);
  // The positional argument belongs to route only.
  CHECK(run({"check", "-c", config, bad}).code == 2);
}

TEST_CASE("route cli: --key previews a key's limits and plans under its residency") {
  temp_dir d;
  auto config = d.write(
      "m.yaml", std::string(k_config) +
                    "keys:\n"
                    "  - { name: eu-team, key_sha256: \"" +
                    std::string(64, 'a') +
                    "\", rpm: 60, budget: { usd: 5, period: day }, allow: { regions: [us, local] } }\n"
                    "  - { name: open, key_sha256: \"" +
                    std::string(64, 'b') + "\" }\n");
  auto req = d.write("req.json", body("cheap", 1000));
  auto r = run({"route", "-c", config, req, "--key", "eu-team"});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("key: eu-team, rpm 60, tpm unlimited, budget $5.00 per day, regions [us, "
                   "local] only\n") != std::string::npos);
  // The CN candidate is never tried for this key: excluded by its residency.
  CHECK(attempt_order(r.out) == std::vector<std::string>{"local/qwen2.5:7b", "openai/gpt-4o-mini",
                                                         "openai/gpt-4o", "claude/sonnet"});
  CHECK_FALSE(exclusion_of(r.out, "deepseek/deepseek-chat").empty());
  auto open = run({"route", "-c", config, req, "--key", "open"});
  CHECK(open.code == 0);
  CHECK(open.out.find("key: open, rpm unlimited, tpm unlimited, no budget, any region\n") !=
        std::string::npos);
  CHECK(attempt_order(open.out).size() == 5);
  auto unknown = run({"route", "-c", config, req, "--key", "nobody"});
  CHECK(unknown.code == 2);
  CHECK(unknown.out.find("declares no key 'nobody' (keys: eu-team, open)") != std::string::npos);
}

TEST_CASE("route cli: tiers, a route chosen by --header, a fallback route and allow-lists") {
  temp_dir d;
  auto config = d.write(
      "m.yaml", std::string(k_config) +
                    "  - match: tiered\n"
                    "    tiers:\n"
                    "      - { policy: cost, candidates: [deepseek/*, local/*] }\n"
                    "      - { policy: quality, candidates: [openai/*, claude/*] }\n"
                    "    retries: 4\n"
                    "  - { match: team, when: { header: { x-team: research } }, candidates: "
                    "[claude/sonnet] }\n"
                    "  - { match: team, candidates: [local/*], fallback_route: best, retries: 0 }\n"
                    "keys:\n"
                    "  - { name: us, key_sha256: \"" +
                    std::string(64, 'a') +
                    "\", allow: { models: [\"openai/*\"], routes: [tiered] } }\n");
  auto tiered = d.write("tiered.json", body("tiered", 1000));
  auto r = run({"route", "-c", config, tiered});
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(attempt_order(r.out) == std::vector<std::string>{"local/qwen2.5:7b",
                                                         "deepseek/deepseek-chat", "claude/sonnet",
                                                         "openai/gpt-4o", "openai/gpt-4o-mini"});
  CHECK(r.out.find("primary, tier 1 of 2") != std::string::npos);
  CHECK(r.out.find("session: prefix:") != std::string::npos);  // affinity's name for it
  CHECK(r.out.find("task: ") != std::string::npos);
  CHECK(r.out.find("tier fallback, tier 2 of 2") != std::string::npos);

  // Under the key: only openai/*, so the second tier leads; other routes are refused (403).
  auto keyed = run({"route", "-c", config, tiered, "--key", "us"});
  INFO(keyed.out);
  CHECK(keyed.out.find("models [openai/*] only, routes [tiered] only") != std::string::npos);
  CHECK(attempt_order(keyed.out) ==
        std::vector<std::string>{"openai/gpt-4o", "openai/gpt-4o-mini"});
  auto team = d.write("team.json", body("team", 1000));
  auto refused = run({"route", "-c", config, team, "--key", "us"});
  CHECK(refused.code == 1);
  CHECK(refused.out.find("error: status 403") != std::string::npos);

  // --header picks the research route; without it the plain one, then best's candidates.
  auto research = run({"route", "-c", config, team, "--header", "X-Team: research"});
  CHECK(attempt_order(research.out) == std::vector<std::string>{"claude/sonnet"});
  auto plain = run({"route", "-c", config, team});
  INFO(plain.out);
  const auto order = attempt_order(plain.out);
  REQUIRE(order.size() >= 2);
  CHECK(order[0] == "local/qwen2.5:7b");
  CHECK(order[1] == "claude/sonnet");
  CHECK(plain.out.find("route fallback (route best)") != std::string::npos);
  CHECK(run({"route", "-c", config, team, "--header", "nocolon"}).code == 2);
}
