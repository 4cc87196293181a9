// Tests for config/: the value parsers, the example files, and that every invalid file under
// tests/config/invalid/ fails with the message its "# expect:" line promises.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace cfg = meridian::config;
using namespace std::chrono_literals;

namespace {

const std::filesystem::path k_root = MERIDIAN_SOURCE_DIR;

const cfg::provider_config& find_provider(const cfg::config& c, const std::string& name) {
  auto it = std::find_if(c.providers.begin(), c.providers.end(),
                         [&](const cfg::provider_config& p) { return p.name == name; });
  REQUIRE_MESSAGE(it != c.providers.end(), "no provider " << name);
  return *it;
}

std::string error_of(const std::string& yaml) {
  try {
    cfg::parse_config(yaml, "test.yaml");
  } catch (const cfg::config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("parse_duration accepts ms, s, m, h and d and requires a unit") {
  CHECK(cfg::parse_duration("250ms") == 250ms);
  CHECK(cfg::parse_duration("10s") == 10s);
  CHECK(cfg::parse_duration("2m") == 2min);
  CHECK(cfg::parse_duration("1h") == 1h);
  CHECK(cfg::parse_duration("0s") == 0ms);
  CHECK_THROWS_AS(cfg::parse_duration("10"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_duration("-5s"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_duration("10 s"), std::invalid_argument);
  CHECK(cfg::parse_duration("30d") == 720h);
  CHECK_THROWS_AS(cfg::parse_duration("10w"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_duration(""), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_duration("99999999999999999999h"), std::invalid_argument);
  CHECK_THROWS_WITH(cfg::parse_duration("60"), doctest::Contains("no unit"));
}

TEST_CASE("parse_size accepts decimal and binary units and plain bytes") {
  CHECK(cfg::parse_size("1000") == 1000);
  CHECK(cfg::parse_size("512B") == 512);
  CHECK(cfg::parse_size("512KiB") == 512ull * 1024);
  CHECK(cfg::parse_size("8MiB") == 8ull << 20);
  CHECK(cfg::parse_size("2GiB") == 2ull << 30);
  CHECK(cfg::parse_size("3KB") == 3000);
  CHECK(cfg::parse_size("3MB") == 3'000'000);
  CHECK(cfg::parse_size("1GB") == 1'000'000'000);
  CHECK_THROWS_AS(cfg::parse_size("8XB"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_size("-1"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_size("MiB"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_size("99999999999GiB"), std::invalid_argument);
}

TEST_CASE("parse_endpoint splits host and port") {
  auto e = cfg::parse_endpoint("127.0.0.1:8080");
  CHECK(e.host == "127.0.0.1");
  CHECK(e.port == 8080);
  e = cfg::parse_endpoint(":9000");
  CHECK(e.host == "0.0.0.0");
  CHECK(e.port == 9000);
  e = cfg::parse_endpoint("localhost:0");
  CHECK(e.host == "localhost");
  CHECK(e.port == 0);
  e = cfg::parse_endpoint("[::1]:443");
  CHECK(e.host == "::1");
  CHECK(e.port == 443);
  CHECK_THROWS_AS(cfg::parse_endpoint("localhost"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_endpoint("host:"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_endpoint("host:65536"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_endpoint("host:-1"), std::invalid_argument);
  CHECK_THROWS_AS(cfg::parse_endpoint("::1:80"), std::invalid_argument);
}

TEST_CASE("to_string names every dialect") {
  CHECK(cfg::to_string(cfg::dialect_kind::openai) == "openai");
  CHECK(cfg::to_string(cfg::dialect_kind::anthropic) == "anthropic");
  CHECK(cfg::to_string(cfg::dialect_kind::gemini) == "gemini");
}

TEST_CASE("an empty document is an error, whatever makes it empty") {
  // `: > meridian.yaml` (an editor truncating before it writes) must never be applied.
  for (const char* text : {"", "\n\n", "# only a comment\n", "---\n", "~\n", "null\n"}) {
    INFO(text);
    try {
      cfg::parse_config(text, "empty.yaml");
      FAIL("an empty config was accepted");
    } catch (const cfg::config_error& e) {
      CHECK(std::string(e.what()).find("empty.yaml") != std::string::npos);
      CHECK(std::string(e.what()).find("the config is empty") != std::string::npos);
    }
  }
}

TEST_CASE("one section gives the defaults for the rest") {
  auto c = cfg::parse_config("server: {}\n", "empty.yaml");
  CHECK(c.source == "empty.yaml");
  CHECK(c.server.listen.host == "0.0.0.0");
  CHECK(c.server.listen.port == 8080);
  CHECK_FALSE(c.server.admin_listen);
  CHECK(c.server.limits.max_body_bytes == 8ull << 20);
  CHECK(c.server.timeouts.total == 600s);
  CHECK(c.providers.empty());
  CHECK(c.models.empty());
}

TEST_CASE("the reference example parses with the documented values") {
  auto path = (k_root / "config/examples/meridian.yaml").string();
  auto c = cfg::load_config(path);
  CHECK(c.source == path);

  CHECK(c.server.listen.host == "0.0.0.0");
  CHECK(c.server.listen.port == 8080);
  REQUIRE(c.server.admin_listen);
  CHECK(c.server.admin_listen->host == "127.0.0.1");
  CHECK(c.server.admin_listen->port == 8081);
  CHECK(c.server.threads == 0);
  CHECK(c.server.limits.max_body_bytes == 8ull << 20);
  CHECK(c.server.limits.max_header_bytes == 64u << 10);
  CHECK(c.server.limits.max_connections == 10000);
  CHECK(c.server.timeouts.header == 10s);
  CHECK(c.server.timeouts.connect == 5s);
  CHECK(c.server.timeouts.first_byte == 60s);
  CHECK(c.server.timeouts.idle_chunk == 60s);
  CHECK(c.server.timeouts.total == 600s);
  CHECK(c.server.timeouts.drain == 30s);

  REQUIRE(c.providers.size() == 4);
  CHECK(c.providers[0].name == "deepseek");  // file order is kept
  CHECK(c.providers[3].name == "local");

  const auto& deepseek = find_provider(c, "deepseek");
  CHECK(deepseek.preset == "deepseek");
  CHECK_FALSE(deepseek.dialect);
  CHECK(deepseek.api_key_env == "DEEPSEEK_API_KEY");
  CHECK(deepseek.line > 0);

  const auto& qwen = find_provider(c, "qwen");
  CHECK(qwen.region == "cn");

  const auto& openai = find_provider(c, "openai");
  CHECK(openai.api_key_file == "/run/secrets/openai_key");
  CHECK(openai.headers.at("OpenAI-Organization") == "org-example");

  const auto& local = find_provider(c, "local");
  CHECK(local.preset.empty());
  REQUIRE(local.dialect);
  CHECK(*local.dialect == cfg::dialect_kind::openai);
  CHECK(local.base_url == "http://127.0.0.1:11434/v1");
  CHECK(local.region == "local");
  CHECK(local.tls.verify);
  CHECK(local.tls.ca_file.empty());
  REQUIRE(local.models.count("qwen2.5:7b") == 1);
  const auto& qwen7b = local.models.at("qwen2.5:7b");
  CHECK(qwen7b.input == 0.0);
  CHECK(qwen7b.output == 0.0);
  CHECK(qwen7b.quality == 55);
  CHECK(qwen7b.context == 32768u);
  CHECK(qwen7b.line > local.line);

  REQUIRE(c.models.count("deepseek/deepseek-chat") == 1);
  const auto& chat = c.models.at("deepseek/deepseek-chat");
  CHECK(chat.input == doctest::Approx(0.27));
  CHECK(chat.output == doctest::Approx(1.10));
  CHECK(chat.cache_read == doctest::Approx(0.07));
  CHECK_FALSE(chat.cache_write);
  CHECK(chat.quality == 80);
  CHECK_FALSE(chat.context);
  CHECK(chat.line > 0);
  CHECK(c.models.at("openai/gpt-4o-mini").context == 128000u);
}

TEST_CASE("the demo config describes six simulated providers") {
  auto c = cfg::load_config((k_root / "config/examples/demo.yaml").string());
  CHECK(c.server.listen.host == "127.0.0.1");
  CHECK(c.server.listen.port == 8080);
  REQUIRE(c.providers.size() == 6);
  for (const auto& p : c.providers) {
    CAPTURE(p.name);
    // Keys never appear in the demo: the simulator needs none.
    CHECK(p.api_key_env.empty());
    CHECK(p.api_key_file.empty());
    // claude and gemini take their dialect from a preset; the rest spell out the OpenAI one.
    if (p.name == "claude" || p.name == "gemini") {
      CHECK(p.preset == (p.name == "claude" ? "anthropic" : "gemini"));
      CHECK(p.base_url.rfind("http://127.0.0.1:910", 0) == 0);
      continue;
    }
    CHECK(p.preset.empty());
    REQUIRE(p.dialect);
    CHECK(*p.dialect == cfg::dialect_kind::openai);
  }
  const auto& deepseek = find_provider(c, "deepseek");
  CHECK(deepseek.base_url == "http://127.0.0.1:9101/v1");
  CHECK(deepseek.region == "cn");
  CHECK(deepseek.models.at("deepseek-chat").cache_read == doctest::Approx(0.07));
  CHECK(deepseek.models.at("deepseek-reasoner").output == doctest::Approx(2.19));
  CHECK(find_provider(c, "qwen").models.at("qwen-plus").context == 131072u);
  CHECK(find_provider(c, "openai").models.at("gpt-4o").quality == 88);
  CHECK(find_provider(c, "local").models.at("qwen2.5:7b").quality == 55);
  // The bare name shared-7b is served twice on purpose, to demonstrate ambiguity.
  CHECK(find_provider(c, "qwen").models.count("shared-7b") == 1);
  CHECK(find_provider(c, "local").models.count("shared-7b") == 1);
  // The product: an auto route by cost across CN, US and local, a quality route, a tiered route
  // (CN by cost, then the US by quality), a key bound to US and local, and a baseline for the
  // savings figure.
  REQUIRE(c.routes.size() == 3);
  CHECK(c.routes[0].match == "auto");
  CHECK(c.routes[0].policy == cfg::route_policy::cost);
  CHECK(c.routes[1].policy == cfg::route_policy::quality);
  REQUIRE(c.routes[2].tiers.size() == 2);
  CHECK(c.routes[2].tiers[0].policy == cfg::route_policy::cost);
  CHECK(c.routes[2].tiers[1].policy == cfg::route_policy::quality);
  REQUIRE(c.keys.size() == 1);
  CHECK(c.keys[0].allow_regions == std::vector<std::string>{"us", "local"});
  CHECK(c.stats.baseline == "openai/gpt-4o");
}

TEST_CASE("errors name the source, the path and the line") {
  CHECK(error_of("server:\n  threads: 4\n  listen: nope\n") ==
        "test.yaml: server.listen (line 3): expected host:port or :port, got 'nope'");
  CHECK(error_of("keys: [{ name: a }]\n") ==
        "test.yaml: keys[0] (line 1): give either key_sha256 or key_env (exactly one)");
  CHECK(error_of("- a\n- b\n") ==
        "test.yaml: (document) (line 1): expected a map of sections, got a list");
  CHECK(error_of("server: {}\n---\nserver: {}\n").find("single YAML document") !=
        std::string::npos);
  CHECK(error_of("providers:\n  p:\n    base_url: http://x\n    api_key_env: A\n"
                 "    api_key_file: /f\n")
            .find("providers.p (line 2)") != std::string::npos);
  CHECK_THROWS_AS(cfg::load_config("/nonexistent/meridian.yaml"), cfg::config_error);
}

TEST_CASE("every file under tests/config/invalid fails as its first line expects") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(k_root / "tests/config/invalid"))
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 12);

  for (const auto& file : files) {
    SUBCASE(file.filename().string().c_str()) {
      std::ifstream in(file);
      std::string first_line;
      std::getline(in, first_line);
      const std::string marker = "# expect: ";
      REQUIRE_MESSAGE(first_line.rfind(marker, 0) == 0, file << " lacks a '# expect:' line");
      std::string expected = first_line.substr(marker.size());

      std::string message;
      try {
        cfg::load_config(file.string());
      } catch (const cfg::config_error& e) {
        message = e.what();
      }
      INFO("message: " << message);
      REQUIRE_MESSAGE(!message.empty(), file << " was accepted");
      CHECK(message.rfind(file.string() + ": ", 0) == 0);
      CHECK(message.find("(line ") != std::string::npos);
      CHECK(message.find(expected) != std::string::npos);
    }
  }
}

TEST_CASE("the stats section and energy overrides parse into typed values") {
  auto c = cfg::parse_config(
      "providers:\n"
      "  openai: { preset: openai, api_key_env: K, kwh_per_million_tokens: 2.5 }\n"
      "  local:\n"
      "    base_url: http://127.0.0.1:1/v1\n"
      "    models: { m: { input: 0, output: 0, kwh_per_million_tokens: 0.3 } }\n"
      "models:\n"
      "  openai/gpt-4o: { kwh_per_million_tokens: 4 }\n"
      "stats:\n"
      "  ledger: sqlite:/tmp/x.db\n"
      "  flush_interval: 250ms\n"
      "  retention: 7d\n"
      "  baseline: openai/gpt-4o\n"
      "  max_queue: 50\n",
      "test.yaml");
  CHECK(c.stats.ledger_path == "/tmp/x.db");
  CHECK(c.stats.flush_interval == 250ms);
  CHECK(c.stats.retention == 168h);
  CHECK(c.stats.baseline == "openai/gpt-4o");
  CHECK(c.stats.max_queue == 50u);
  CHECK(*find_provider(c, "openai").kwh_per_million_tokens == doctest::Approx(2.5));
  CHECK(*find_provider(c, "local").models.at("m").kwh_per_million_tokens == doctest::Approx(0.3));
  CHECK(*c.models.at("openai/gpt-4o").kwh_per_million_tokens == doctest::Approx(4));

  auto defaults = cfg::parse_config("server: {}\n", "test.yaml");
  CHECK(defaults.stats.ledger_path == "meridian-ledger.db");
  CHECK(defaults.stats.retention == 720h);
  CHECK(cfg::parse_config("stats: { ledger: none }\n").stats.ledger_path.empty());
  CHECK(error_of("stats: { ledger: mysql://x }\n").find("expected sqlite:PATH, postgres") !=
        std::string::npos);
  auto pg = cfg::parse_config("stats: { ledger: \"postgres://meridian@127.0.0.1:5432/m\" }\n");
  CHECK(pg.stats.ledger_path.empty());
  CHECK(pg.stats.ledger_postgres == "postgres://meridian@127.0.0.1:5432/m");
}

TEST_CASE("auth, keys and state parse into typed values") {
  auto c = cfg::parse_config(
      "auth: { required: true, admin_token_env: ADMIN_T }\n"
      "keys:\n"
      "  - name: team-web\n"
      "    key_sha256: \"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"\n"
      "    rpm: 600\n"
      "    tpm: 2000000\n"
      "    budget: { usd: 200, period: month }\n"
      "    allow: { regions: [us, local] }\n"
      "  - name: batch\n"
      "    key_env: BATCH_KEY\n"
      "    budget: { usd: 1.5, period: day }\n"
      "state: { url: \"redis://127.0.0.1:6379\", on_error: open, timeout: 50ms, "
      "reserve_tokens: 1000 }\n",
      "test.yaml");
  CHECK(c.auth.required);
  CHECK(c.auth.admin_token_env == "ADMIN_T");
  REQUIRE(c.keys.size() == 2);
  CHECK(c.keys[0].name == "team-web");
  CHECK(c.keys[0].key_sha256 ==
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");  // lower-cased
  CHECK(*c.keys[0].rpm == 600u);
  CHECK(*c.keys[0].tpm == 2000000u);
  REQUIRE(c.keys[0].budget);
  CHECK(c.keys[0].budget->usd == doctest::Approx(200));
  CHECK(c.keys[0].budget->period == cfg::budget_period::month);
  CHECK(c.keys[0].allow_regions == std::vector<std::string>{"us", "local"});
  CHECK(c.keys[1].key_env == "BATCH_KEY");
  CHECK_FALSE(c.keys[1].rpm);
  CHECK(c.keys[1].budget->period == cfg::budget_period::day);
  CHECK(c.keys[1].allow_regions.empty());
  CHECK(c.state.url == "redis://127.0.0.1:6379");
  CHECK(c.state.fail_open);
  CHECK(c.state.timeout == 50ms);
  CHECK(c.state.reserve_tokens == 1000u);

  auto defaults = cfg::parse_config("state: local\n");
  CHECK(defaults.state.url == "local");
  CHECK_FALSE(defaults.state.fail_open);
  CHECK_FALSE(defaults.auth.required);
  CHECK(defaults.auth.admin_token_env == "MERIDIAN_ADMIN_TOKEN");
}

TEST_CASE("the health section and model capabilities parse into typed values") {
  auto c = cfg::parse_config(
      "providers:\n"
      "  local:\n"
      "    base_url: http://127.0.0.1:1/v1\n"
      "    models: { vl: { capabilities: [images, tools] }, plain: { capabilities: [] } }\n"
      "models:\n"
      "  local/vl: { quality: 70 }\n"
      "health:\n"
      "  failure_threshold: 5\n"
      "  cooldown: 2m\n"
      "  recent_failure: 0s\n"
      "  alpha: 1\n",
      "test.yaml");
  CHECK(c.health.failure_threshold == 5u);
  CHECK(c.health.cooldown == 120s);
  CHECK(c.health.recent_failure == 0s);
  CHECK(c.health.alpha == doctest::Approx(1.0));
  const auto& models = find_provider(c, "local").models;
  REQUIRE(models.at("vl").capabilities);
  CHECK(*models.at("vl").capabilities ==
        std::vector<cfg::capability>{cfg::capability::images, cfg::capability::tools});
  REQUIRE(models.at("plain").capabilities);
  CHECK(models.at("plain").capabilities->empty());
  CHECK_FALSE(c.models.at("local/vl").capabilities);

  CHECK(error_of("health: { alpha: 0 }\n").find("health.alpha (line 1)") != std::string::npos);
  CHECK(error_of("health: { cooldown: 0s }\n").find("must be greater than zero") !=
        std::string::npos);
}

TEST_CASE("a root tag or anchor followed by a comma is an error, not a hang") {
  // yaml-cpp 0.7 loops forever on these (found by fuzz_yaml); the loader must refuse them.
  for (const char* text : {"!,", "!a,", "&x ,", "---\n&x ,\n", "---\n!b ,"}) {
    INFO(text);
    CHECK_THROWS_AS(meridian::config::parse_config(text, "t.yaml"), meridian::config::config_error);
  }
}
