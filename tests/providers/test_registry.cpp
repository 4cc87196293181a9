// The dialect registry and the shared retry classification.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "providers/dialect.hpp"

using namespace meridian;

TEST_CASE("registry: each wire format has its dialect") {
  for (auto k : {config::dialect_kind::openai, config::dialect_kind::anthropic,
                 config::dialect_kind::gemini})
    CHECK(providers::dialect_for(k).kind() == k);
}

TEST_CASE("registry: which upstream errors are worth another try") {
  const auto& d = providers::dialect_for(config::dialect_kind::openai);
  CHECK(d.retryable(429, R"({"error":{"message":"slow down"}})"));
  CHECK_FALSE(d.retryable(429, R"({"error":{"code":"insufficient_quota"}})"));
  CHECK_FALSE(d.retryable(429, R"({"error":{"code":"1113","message":"no balance"}})"));
  CHECK(d.retryable(500, ""));
  CHECK(d.retryable(503, ""));
  CHECK(d.retryable(408, ""));
  CHECK_FALSE(d.retryable(400, ""));
  CHECK_FALSE(d.retryable(401, ""));
  CHECK_FALSE(d.retryable(404, ""));
}

TEST_CASE("registry: each provider's documented error bodies are classified by kind") {
  namespace fs = std::filesystem;
  int seen = 0;
  for (const auto& entry :
       fs::directory_iterator(std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/errors")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".json") continue;
    // <provider>__<kind>__<status>[variant].json
    const auto first = name.find("__"), second = name.find("__", first + 2);
    REQUIRE(second != std::string::npos);
    const std::string provider = name.substr(0, first);
    const std::string kind = name.substr(first + 2, second - first - 2);
    const unsigned status = static_cast<unsigned>(std::stoul(name.substr(second + 2, 3)));
    std::ifstream in(entry.path());
    std::stringstream body;
    body << in.rdbuf();
    const auto dialect = provider == "anthropic" ? config::dialect_kind::anthropic
                         : provider == "gemini"  ? config::dialect_kind::gemini
                                                 : config::dialect_kind::openai;
    const auto got = providers::dialect_for(dialect).classify(status, body.str());
    const std::string got_name(providers::to_string(got));
    INFO(name);
    CHECK(got_name == kind);
    ++seen;
  }
  CHECK(seen >= 30);
  // The markers count only on error statuses: a 200 mentioning content_filter is an answer.
  const auto& d = providers::dialect_for(config::dialect_kind::openai);
  CHECK(d.classify(401, R"({"error":{"code":"content_filter"}})") ==
        providers::upstream_error::final);
}
