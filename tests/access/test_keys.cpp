// Virtual keys: digests, lookup by presented secret, config and admin key specs.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "access/keys.hpp"

using namespace meridian;
using access::key_table;

namespace {

providers::env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const char* k_test_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

}  // namespace

TEST_CASE("keys: SHA-256 digests and their hex form") {
  CHECK(access::to_hex(access::sha256("test")) == k_test_sha256);
  CHECK(access::to_hex(access::sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto d =
      access::digest_from_hex("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
  REQUIRE(d);
  CHECK(access::to_hex(*d) == k_test_sha256);
  CHECK_FALSE(access::digest_from_hex("abc"));
  CHECK_FALSE(access::digest_from_hex(std::string(64, 'g')));
}

TEST_CASE("keys: the secret comes from a Bearer header or from x-api-key") {
  CHECK(access::presented_secret("Bearer sk-1", "") == "sk-1");
  CHECK(access::presented_secret("bearer   sk-1 ", "") == "sk-1");
  CHECK(access::presented_secret("", "sk-2") == "sk-2");
  CHECK(access::presented_secret("Bearer sk-1", "sk-2") == "sk-1");
  CHECK(access::presented_secret("Basic dXNlcjpw", "sk-2") == "sk-2");
  CHECK(access::presented_secret("Basic dXNlcjpw", "") == "");
  CHECK(access::presented_secret("", "") == "");
}

TEST_CASE("keys: the config's keys authenticate by hash or by environment variable") {
  auto cfg = config::parse_config(
      "keys:\n"
      "  - { name: hashed, key_sha256: \"" +
      std::string(k_test_sha256) +
      "\", rpm: 5, allow: { regions: [us] } }\n"
      "  - { name: from-env, key_env: TEAM_KEY, budget: { usd: 2, period: day } }\n"
      "  - { name: unset, key_env: MISSING_KEY }\n");
  std::vector<std::string> problems;
  auto table = key_table::from_config(cfg, env_of({{"TEAM_KEY", "sk-team"}}), problems);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("MISSING_KEY is not set") != std::string::npos);
  CHECK(table.all().size() == 2);

  const auto* hashed = table.authenticate("test");
  REQUIRE(hashed);
  CHECK(hashed->name == "hashed");
  CHECK(*hashed->rpm == 5u);
  CHECK(hashed->allow_regions == std::vector<std::string>{"us"});
  const auto* team = table.authenticate("sk-team");
  REQUIRE(team);
  CHECK(team->name == "from-env");
  CHECK(team->budget->period == config::budget_period::day);
  CHECK_FALSE(table.authenticate("sk-tea"));
  CHECK_FALSE(table.authenticate("sk-team "));
  CHECK_FALSE(table.authenticate(""));
  CHECK(table.by_name("from-env") == team);
  CHECK_FALSE(table.by_name("unset"));
}

TEST_CASE("keys: a name or a secret can be in a table only once") {
  key_table t;
  access::virtual_key a;
  a.name = "a";
  a.hash = access::sha256("one");
  CHECK(t.add(a));
  auto same_name = a;
  same_name.hash = access::sha256("two");
  CHECK_FALSE(t.add(same_name));
  auto same_secret = a;
  same_secret.name = "b";
  CHECK_FALSE(t.add(same_secret));
  CHECK(t.all().size() == 1);
}

TEST_CASE("keys: an admin key's spec round-trips through the stored JSON") {
  access::virtual_key k;
  k.name = "n";
  k.rpm = 60;
  k.budget = config::key_budget{12.5, config::budget_period::day};
  k.allow_regions = {"eu", "local"};
  auto read = access::key_from_spec("n", access::sha256("s"), access::spec_json(k));
  REQUIRE(read);
  const auto& back = *read;
  CHECK(back.source == access::key_source::admin);
  CHECK(*back.rpm == 60u);
  CHECK_FALSE(back.tpm);
  CHECK(back.budget->usd == doctest::Approx(12.5));
  CHECK(back.budget->period == config::budget_period::day);
  CHECK(back.allow_regions == k.allow_regions);
  CHECK(access::spec_json(access::virtual_key{}) == "{}");
  // A spec that cannot be read whole (say, written by a newer version) is refused, never
  // served with the limits read before the problem.
  CHECK_FALSE(access::key_from_spec(
      "n", {}, R"({"budget":{"usd":1,"period":"week"},"allow":{"regions":["us"]}})"));
  CHECK_FALSE(access::key_from_spec("n", {}, "not json"));
}

TEST_CASE("keys: POST /admin/keys bodies are validated before anything is stored") {
  auto cfg = config::parse_config("server: {}\n");
  auto ok = access::parse_new_key(
      R"({"name":"team-web","rpm":600,"tpm":2000000,"budget":{"usd":200,"period":"month"},
          "allow":{"regions":["us","local"]}})",
      cfg);
  REQUIRE(std::holds_alternative<access::new_key>(ok));
  const auto& made = std::get<access::new_key>(ok);
  CHECK(made.secret.rfind("sk-mer-", 0) == 0);
  CHECK(made.secret.size() == 7 + 48);
  CHECK(made.key.hash == access::sha256(made.secret));
  CHECK(*made.key.tpm == 2000000u);
  CHECK(made.key.allow_regions.size() == 2);

  auto given = access::parse_new_key(
      std::string(R"({"name":"ext","key_sha256":")") + k_test_sha256 + "\"}", cfg);
  REQUIRE(std::holds_alternative<access::new_key>(given));
  CHECK(std::get<access::new_key>(given).secret.empty());

  auto error_param = [&](std::string_view body) {
    auto r = access::parse_new_key(body, cfg);
    REQUIRE(std::holds_alternative<access::key_request_error>(r));
    return std::get<access::key_request_error>(r).param;
  };
  CHECK(error_param("[]") == "");
  CHECK(error_param(R"({"rpm":5})") == "name");
  CHECK(error_param(R"({"name":"x","rpm":0})") == "rpm");
  CHECK(error_param(R"({"name":"x","rpm":-3})") == "rpm");
  CHECK(error_param(R"({"name":"x","budget":{"usd":-1}})") == "budget");
  CHECK(error_param(R"({"name":"x","budget":{"usd":1,"period":"week"}})") == "budget.period");
  CHECK(error_param(R"({"name":"x","allow":{"regions":["mars"]}})") == "allow.regions");
  CHECK(error_param(R"({"name":"x","allow":{"regions":[]}})") == "allow.regions");
  CHECK(error_param(R"({"name":"x","key_sha256":"zz"})") == "key_sha256");
  CHECK(error_param(R"({"name":"x","key":"sk-plain"})") == "key");
  // allow.models and allow.routes, as in the config's keys.
  CHECK(error_param(R"({"name":"x","allow":{"models":["gpt-4o"]}})") == "allow.models");
  CHECK(error_param(R"({"name":"x","allow":{"routes":[]}})") == "allow.routes");
  CHECK(error_param(R"({"name":"x","allow":{"planets":["mars"]}})") == "allow.planets");
  CHECK(error_param(R"({"name":"x","allow":{}})") == "allow");
  auto scoped = access::parse_new_key(
      R"({"name":"scoped","allow":{"models":["openai/*"],"routes":["auto"]}})", cfg);
  REQUIRE(std::holds_alternative<access::new_key>(scoped));
  const auto& key = std::get<access::new_key>(scoped).key;
  CHECK(key.allow_models == std::vector<std::string>{"openai/*"});
  CHECK(key.allow_routes == std::vector<std::string>{"auto"});
  // They survive the ledger's stored spec.
  auto again = access::key_from_spec("scoped", key.hash, access::spec_json(key));
  REQUIRE(again);
  CHECK(again->allow_models == key.allow_models);
  CHECK(again->allow_routes == key.allow_routes);
}

TEST_CASE("keys: generated secrets differ") {
  CHECK(access::generate_secret() != access::generate_secret());
}
