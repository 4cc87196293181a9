// The catalog: presets, key lookup (missing key = skipped, not fatal), overrides, URLs.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "providers/catalog.hpp"

using namespace meridian;

namespace {

providers::env_lookup env_with(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("catalog: presets fill base URL, region, auth and prices") {
  auto cfg = config::parse_config(R"(
providers:
  deepseek: { preset: deepseek, api_key_env: DS_KEY }
  openai: { preset: openai }
  local:
    dialect: openai
    base_url: http://127.0.0.1:11434/v1
    region: local
    models:
      "qwen2.5:7b": { input: 0, output: 0, quality: 55, context: 32768 }
models:
  deepseek/deepseek-chat: { input: 0.27, quality: 81 }
)");
  auto cat = providers::build_catalog(cfg, env_with({{"DS_KEY", "sk-test"}}));
  REQUIRE(cat.providers.size() == 2);
  const auto* ds = cat.find("deepseek");
  REQUIRE(ds);
  CHECK(ds->region == "cn");
  CHECK(ds->url.tls);
  CHECK(ds->url.host == "api.deepseek.com");
  CHECK(ds->url.port == 443);
  CHECK(ds->url.path == "/v1");
  CHECK(ds->api_key == "sk-test");
  const auto* chat = ds->find_model("deepseek-chat");
  REQUIRE(chat);
  CHECK(chat->input == doctest::Approx(0.27));
  CHECK(chat->quality == 81);
  CHECK(chat->author == "deepseek");
  const auto* local = cat.find("local");
  REQUIRE(local);
  CHECK(local->auth == providers::auth_style::none);
  CHECK(local->url.port == 11434);
  CHECK(local->find_model("qwen2.5:7b")->author == "qwen");
  REQUIRE(cat.skipped.size() == 1);
  CHECK(cat.skipped[0].name == "openai");
  CHECK(cat.skipped[0].reason == "OPENAI_API_KEY is not set");
}

TEST_CASE("catalog: an unknown preset is a config error naming the path") {
  auto cfg = config::parse_config("providers:\n  x: { preset: nosuch }\n", "f.yaml");
  CHECK_THROWS_WITH_AS(providers::build_catalog(cfg, env_with({})),
                       doctest::Contains("providers.x.preset (line 2): unknown preset 'nosuch'"),
                       config::config_error);
}

TEST_CASE("catalog: base URLs") {
  auto u = providers::parse_base_url("http://[::1]:8000/v1/");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == 8000);
  CHECK(u->path == "/v1");
  CHECK_FALSE(providers::parse_base_url("ftp://x"));
  CHECK_FALSE(providers::parse_base_url("http://:80"));
  CHECK_FALSE(providers::parse_base_url("http://h:99999"));
  CHECK(providers::parse_base_url("https://h")->path.empty());
}

TEST_CASE("catalog: authors") {
  CHECK(providers::guess_author("gpt-4o-mini") == "openai");
  CHECK(providers::guess_author("meta-llama/Llama-3.1-8B") == "meta");
  CHECK(providers::guess_author("something") == "unknown");
}
