// Request facts: OpenRouter's routing fields, token limits, capabilities and the prompt
// estimate, read from an OpenAI chat body; bad shapes name their parameter.
#include <doctest/doctest.h>

#include "policies/facts.hpp"

using namespace meridian::policies;

TEST_CASE("facts_from_openai_body reads OpenRouter fields, limits and capabilities") {
  auto parsed = facts_from_openai_body(R"({
    "model": "auto:floor",
    "models": ["openai/gpt-4o", "sonnet"],
    "messages": [
      {"role": "system", "content": "12345678"},
      {"role": "user", "content": [{"type": "text", "text": "abc"},
                                   {"type": "image_url", "image_url": {"url": "data:x"}}]}
    ],
    "max_tokens": 100,
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "response_format": {"type": "json_object"},
    "provider": {"order": ["openai"], "allow_fallbacks": false, "only": ["openai", "claude"],
                 "ignore": ["local"], "sort": "throughput",
                 "max_price": {"prompt": 1, "completion": 2},
                 "preferred_max_latency": {"p50": 2.5}, "preferred_min_throughput": 30,
                 "data_collection": "deny", "require_parameters": true}
  })");
  REQUIRE(std::holds_alternative<request_facts>(parsed));
  const auto& f = std::get<request_facts>(parsed);
  CHECK(f.model == "auto:floor");
  CHECK(f.models == std::vector<std::string>{"openai/gpt-4o", "sonnet"});
  // 11 characters of text (3 tokens) and the tools' 48 characters of JSON (12): tool
  // definitions are prompt tokens too.
  CHECK(f.est_prompt_tokens == 15);
  CHECK(f.max_tokens == 100u);
  CHECK(f.needs_tools);
  CHECK(f.needs_images);
  CHECK(f.needs_json);
  CHECK(f.provider.order == std::vector<std::string>{"openai"});
  CHECK_FALSE(f.provider.allow_fallbacks);
  CHECK(f.provider.only.size() == 2);
  CHECK(f.provider.ignore == std::vector<std::string>{"local"});
  CHECK(f.provider.sort == sort_by::throughput);
  CHECK(f.provider.max_prompt_price == doctest::Approx(1));
  CHECK(f.provider.max_completion_price == doctest::Approx(2));
  CHECK(f.provider.preferred_max_latency_s == doctest::Approx(2.5));
  CHECK(f.provider.preferred_min_throughput == doctest::Approx(30));
  CHECK(f.provider.deny_data_collection);

  auto plain = std::get<request_facts>(
      facts_from_openai_body(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})"));
  CHECK(plain.est_prompt_tokens == 1);
  CHECK_FALSE(plain.max_tokens);
  CHECK_FALSE(plain.needs_tools);
  CHECK(plain.provider.allow_fallbacks);
  CHECK(plain.provider.sort == sort_by::none);
}

TEST_CASE("facts_from_openai_body names the parameter with a bad shape") {
  auto param = [](std::string_view body) {
    auto r = facts_from_openai_body(body);
    return std::holds_alternative<facts_error>(r) ? std::get<facts_error>(r).param : "(ok)";
  };
  CHECK(param(R"({"model": "m", "provider": {"sort": "cheapest"}})") == "provider.sort");
  CHECK(param(R"({"model": "m", "provider": {"order": "openai"}})") == "provider.order");
  CHECK(param(R"({"model": "m", "provider": {"allow_fallbacks": "no"}})") ==
        "provider.allow_fallbacks");
  CHECK(param(R"({"model": "m", "provider": {"max_price": {"prompt": -1}}})") ==
        "provider.max_price.prompt");
  CHECK(param(R"({"model": "m", "provider": {"data_collection": "maybe"}})") ==
        "provider.data_collection");
  CHECK(param(R"({"model": "m", "provider": []})") == "provider");
  CHECK(param(R"({"model": "m", "models": "a"})") == "models");
  CHECK(param(R"({"model": "m", "models": ["a", 3]})") == "models");
  CHECK(param(R"({"model": 5})") == "model");
  CHECK(param(R"({"model": "m", "max_tokens": -1})") == "max_tokens");
  CHECK(param(R"({"model": "m", "max_tokens": 1.5})") == "max_tokens");
  CHECK(param("{not json") == "");
  CHECK(param("[]") == "");
  CHECK(param(R"({"model": "m", "provider": {"sort": {"by": "latency"}}})") == "(ok)");
}
