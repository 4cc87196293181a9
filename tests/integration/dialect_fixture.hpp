// What the dialect tests share (test_dialects.cpp, test_responses.cpp): a simulator with one
// provider per backend dialect (OpenAI, Anthropic, Gemini), the gateway config in front of it,
// and the OpenAI chat body both compare against.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

namespace meridian::test {

inline const char* const k_dialect_sim = R"(
providers:
  fast:
    port: 0
    models: [m-fast, embed-small]
    ttft: 0ms
    tokens_per_second: 0
    reply_tokens: 8
  claude:
    dialect: anthropic
    port: 0
    models: [claude-sonnet-4-5]
    ttft: 0ms
    tokens_per_second: 200
    reply_tokens: 6
    api_key: sk-ant-sim
  gem:
    dialect: gemini
    port: 0
    models: [gemini-2.5-flash, gemini-2.5-pro]
    ttft: 0ms
    tokens_per_second: 200
    reply_tokens: 7
    api_key: gem-sim-key
)";

inline std::string dialect_gateway_yaml(sim& s) {
  auto port = [&](const char* p) { return std::to_string(s.ports.at(p)); };
  return "server: { listen: 127.0.0.1:0, threads: 1 }\n"
         "providers:\n"
         "  fast:\n    base_url: http://127.0.0.1:" +
         port("fast") +
         "/v1\n    region: cn\n"
         "    models: { m-fast: { input: 0.5, output: 1 }, embed-small: { input: 0.02 } }\n"
         "  claude:\n    preset: anthropic\n    base_url: http://127.0.0.1:" +
         port("claude") +
         "/v1\n"
         "    api_key_env: SIM_ANTHROPIC_KEY\n"
         "    models: { claude-sonnet-4-5: { input: 3, output: 15, cache_read: 0.3, cache_write: "
         "3.75 } }\n"
         "  gem:\n    preset: gemini\n    base_url: http://127.0.0.1:" +
         port("gem") +
         "/v1beta\n"
         "    api_key_env: SIM_GEMINI_KEY\n"
         "    models: { gemini-2.5-flash: { input: 0.3, output: 2.5 }, gemini-2.5-pro: { input: "
         "1.25, output: 10 } }\n";
}

// One more provider for the end of dialect_gateway_yaml's providers: "native", the "fast" sim
// again, declared as serving the Responses API too, so Responses clients pass through to it.
inline std::string native_responses_provider_yaml(sim& s) {
  return "  native:\n    base_url: http://127.0.0.1:" + std::to_string(s.ports.at("fast")) +
         "/v1\n    region: us\n    api: [chat, responses]\n"
         "    models: { m-fast: { input: 0.5, output: 1 } }\n";
}

inline const std::map<std::string, std::string> k_dialect_env = {
    {"SIM_ANTHROPIC_KEY", "sk-ant-sim"}, {"SIM_GEMINI_KEY", "gem-sim-key"}};

inline std::string openai_body(const std::string& model, bool stream,
                               const std::string& text = "Hello there") {
  nlohmann::json b = {
      {"model", model},
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", text}}}}};
  if (stream) {  // asking for the usage chunk, which the gateway relays only when asked
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b.dump();
}

}  // namespace meridian::test
