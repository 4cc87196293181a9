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
  // A typo gets the nearest name.
  auto typo = config::parse_config("providers:\n  x: { preset: deepsek }\n", "f.yaml");
  CHECK_THROWS_WITH_AS(providers::build_catalog(typo, env_with({})),
                       doctest::Contains("unknown preset 'deepsek' (did you mean 'deepseek'?)"),
                       config::config_error);
  CHECK(config::closest_name("antropic", {"anthropic", "openai"}) == "anthropic");
  CHECK(config::closest_name("zzz", {"anthropic", "openai"}).empty());
  CHECK(config::closest_name("retention", {"retention"}) == "retention");
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

TEST_CASE("catalog: preset models carry capabilities and YAML replaces them") {
  auto cfg = config::parse_config(R"(
providers:
  openai: { preset: openai }
  qwen: { preset: qwen }
  local:
    base_url: http://127.0.0.1:11434/v1
    models:
      "llava:7b": { capabilities: [images] }
      "qwen2.5:7b": { quality: 55 }
models:
  openai/gpt-4o-mini: { capabilities: [tools] }
  openai/gpt-4o: { quality: 89 }
)");
  auto cat = providers::build_catalog(
      cfg, env_with({{"OPENAI_API_KEY", "k"}, {"DASHSCOPE_API_KEY", "k"}}));
  const auto* openai = cat.find("openai");
  REQUIRE(openai);
  const auto* gpt4o = openai->find_model("gpt-4o");
  REQUIRE(gpt4o);
  // An override of other facts keeps the preset's capabilities.
  CHECK(gpt4o->tools);
  CHECK(gpt4o->images);
  CHECK(gpt4o->json);
  const auto* mini = openai->find_model("gpt-4o-mini");
  REQUIRE(mini);
  CHECK(mini->tools);
  CHECK_FALSE(mini->images);
  CHECK_FALSE(mini->json);
  const auto* qwen_plus = cat.find("qwen")->find_model("qwen-plus");
  REQUIRE(qwen_plus);
  CHECK(qwen_plus->tools);
  CHECK_FALSE(qwen_plus->images);
  const auto* local = cat.find("local");
  REQUIRE(local);
  const auto* llava = local->find_model("llava:7b");
  CHECK(llava->images);
  CHECK_FALSE(llava->tools);
  const auto* plain = local->find_model("qwen2.5:7b");
  CHECK(plain->tools);
  CHECK(plain->json);
  CHECK_FALSE(plain->images);
}

TEST_CASE("catalog: image input is recognised by preset model id") {
  CHECK(providers::preset_model_sees_images("gpt-4.1-mini"));
  CHECK(providers::preset_model_sees_images("claude-haiku-4-5"));
  CHECK(providers::preset_model_sees_images("gemini-2.5-pro"));
  CHECK_FALSE(providers::preset_model_sees_images("deepseek-chat"));
  CHECK_FALSE(providers::preset_model_sees_images("qwen-max"));
}

TEST_CASE("catalog: regional variants resolve to their own endpoints and regions") {
  auto cfg = config::parse_config(R"(
providers:
  qwen: { preset: qwen }
  qwen-intl: { preset: qwen-intl }
  moonshot: { preset: moonshot }
  moonshot-intl: { preset: moonshot-intl }
  zhipu: { preset: zhipu }
  zhipu-intl: { preset: zhipu-intl }
  minimax: { preset: minimax }
  minimax-cn: { preset: minimax-cn }
)");
  auto cat = providers::build_catalog(cfg, env_with({{"DASHSCOPE_API_KEY", "k1"},
                                                     {"MOONSHOT_API_KEY", "k2"},
                                                     {"ZHIPU_API_KEY", "k3"},
                                                     {"ZAI_API_KEY", "k4"},
                                                     {"MINIMAX_API_KEY", "k5"}}));
  REQUIRE(cat.skipped.empty());
  struct expected {
    const char* name;
    const char* host;
    const char* path;
    const char* region;
  };
  for (const auto& e :
       {expected{"qwen", "dashscope.aliyuncs.com", "/compatible-mode/v1", "cn"},
        expected{"qwen-intl", "dashscope-intl.aliyuncs.com", "/compatible-mode/v1", "intl"},
        expected{"moonshot", "api.moonshot.cn", "/v1", "cn"},
        expected{"moonshot-intl", "api.moonshot.ai", "/v1", "intl"},
        expected{"zhipu", "open.bigmodel.cn", "/api/paas/v4", "cn"},
        expected{"zhipu-intl", "api.z.ai", "/api/paas/v4", "intl"},
        expected{"minimax", "api.minimax.io", "/v1", "intl"},
        expected{"minimax-cn", "api.minimax.chat", "/v1", "cn"}}) {
    CAPTURE(e.name);
    const auto* p = cat.find(e.name);
    REQUIRE(p);
    CHECK(p->url.tls);
    CHECK(p->url.host == e.host);
    CHECK(p->url.path == e.path);
    CHECK(p->region == e.region);
    CHECK(p->auth == providers::auth_style::bearer);
    CHECK_FALSE(p->models.empty());
  }
  CHECK(cat.find("zhipu-intl")->api_key == "k4");  // z.ai keys are separate from bigmodel.cn's
  // Mainland DashScope bills in CNY, so the same model is listed cheaper there.
  CHECK(cat.find("qwen")->find_model("qwen-plus")->input <
        cat.find("qwen-intl")->find_model("qwen-plus")->input);
}

TEST_CASE("catalog: every preset carries an as_of date and the providers built from it too") {
  for (const auto& name : providers::preset_names()) {
    CAPTURE(name);
    auto d = providers::describe_preset(name);
    REQUIRE(d);
    CHECK(d->name == name);
    REQUIRE(d->as_of.size() == 7);  // "YYYY-MM"
    CHECK(d->as_of[4] == '-');
    CHECK(providers::parse_base_url(d->base_url));
  }
  CHECK_FALSE(providers::describe_preset("nosuch"));
  auto cfg = config::parse_config(R"(
providers:
  ds: { preset: deepseek }
  local: { base_url: "http://127.0.0.1:1/v1", models: { m: {} } }
)");
  auto cat = providers::build_catalog(cfg, env_with({{"DEEPSEEK_API_KEY", "k"}}));
  CHECK(cat.find("ds")->as_of == providers::describe_preset("deepseek")->as_of);
  CHECK(cat.find("local")->as_of.empty());
}

TEST_CASE("catalog: provenance marks catalog, file and overridden values") {
  auto cfg = config::parse_config(R"(
providers:
  ds:
    preset: deepseek
    region: us
    models:
      deepseek-chat: { input: 0.5 }
      my-finetune: { input: 1, output: 2 }
  oa:
    preset: openai
    base_url: https://proxy.example.com/v1
  local:
    base_url: http://127.0.0.1:1/v1
    models: { m: { quality: 40 } }
models:
  oa/gpt-4o: { quality: 90 }
  oa/gpt-4o-x: { input: 3 }
)");
  auto cat =
      providers::build_catalog(cfg, env_with({{"DEEPSEEK_API_KEY", "k"}, {"OPENAI_API_KEY", "k"}}));
  const auto* ds = cat.find("ds");
  REQUIRE(ds);
  CHECK(ds->url_source == "catalog");
  CHECK(ds->region_source == "file");
  CHECK(ds->region == "us");
  CHECK(ds->find_model("deepseek-chat")->source == "catalog+file");
  CHECK(ds->find_model("deepseek-chat")->input == doctest::Approx(0.5));
  // Fields the file leaves alone keep the catalog's value.
  CHECK(ds->find_model("deepseek-chat")->quality == 80);
  CHECK(ds->find_model("deepseek-reasoner")->source == "catalog");
  CHECK(ds->find_model("my-finetune")->source == "file");
  const auto* oa = cat.find("oa");
  REQUIRE(oa);
  CHECK(oa->url_source == "file");
  CHECK(oa->url.host == "proxy.example.com");
  CHECK(oa->region_source == "catalog");
  CHECK(oa->find_model("gpt-4o")->source == "catalog+file");
  CHECK(oa->find_model("gpt-4o-mini")->source == "catalog");
  CHECK(oa->find_model("gpt-4o-x")->source == "file");
  const auto* local = cat.find("local");
  REQUIRE(local);
  CHECK(local->url_source == "file");
  CHECK(local->region_source == "default");
  CHECK(local->region == "any");
  CHECK(local->find_model("m")->source == "file");
}

TEST_CASE("catalog: a preset pointed at a loopback server runs without its key variable") {
  auto cfg = config::parse_config(R"(
providers:
  claude: { preset: anthropic, base_url: "http://127.0.0.1:9105/v1" }
  gem: { preset: gemini, base_url: "http://localhost:9106/v1beta" }
  v6: { preset: openai, base_url: "http://[::1]:9103/v1" }
  keyed: { preset: deepseek, base_url: "http://127.0.0.1:9101/v1" }
  asked: { preset: moonshot, base_url: "http://127.0.0.1:9102/v1", api_key_env: LOCAL_KEY }
  remote: { preset: zhipu, base_url: "http://10.0.0.5:8000/v1" }
  default_url: { preset: minimax }
)");
  auto cat = providers::build_catalog(cfg, env_with({{"DEEPSEEK_API_KEY", "sk-set"}}));
  for (const char* name : {"claude", "gem", "v6"}) {
    CAPTURE(name);
    const auto* p = cat.find(name);
    REQUIRE(p);
    CHECK(p->keyless_loopback);
    CHECK(p->api_key.empty());
    CHECK(p->auth == providers::auth_style::none);
  }
  // A key that is set is still used, even on loopback.
  const auto* keyed = cat.find("keyed");
  REQUIRE(keyed);
  CHECK_FALSE(keyed->keyless_loopback);
  CHECK(keyed->api_key == "sk-set");
  CHECK(keyed->auth == providers::auth_style::bearer);
  // Skipped: a variable the file names itself, a non-loopback host, the preset's own URL.
  std::map<std::string, std::string> skipped;
  for (const auto& s : cat.skipped) skipped[s.name] = s.reason;
  CHECK(skipped.size() == 3);
  CHECK(skipped["asked"] == "LOCAL_KEY is not set");
  CHECK(skipped["remote"] == "ZHIPU_API_KEY is not set");
  CHECK(skipped["default_url"] == "MINIMAX_API_KEY is not set");
}

TEST_CASE("catalog: loopback hosts") {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1"}) {
    CAPTURE(h);
    CHECK(providers::is_loopback_host(h));
  }
  for (const char* h :
       {"10.0.0.1", "128.0.0.1", "example.com", "::2", "", "127.0.0.1.example.com"}) {
    CAPTURE(h);
    CHECK_FALSE(providers::is_loopback_host(h));
  }
}
