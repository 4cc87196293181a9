// Real clients are the proof: the official `openai` SDK, the AI SDK and Codex CLI, installed from
// npm by scripts/bootstrap.sh into tests/clients/node_modules, driven against meridian +
// meridian-sim. Each run must exit 0; its output and stderr are shown when it fails. Nothing
// reaches the internet: the clients get a dead proxy for everything but loopback.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/dialect_fixture.hpp"

using namespace meridian::test;
namespace fs = std::filesystem;

namespace {

const fs::path k_clients = fs::path(MERIDIAN_SOURCE_DIR) / "tests/clients";

// Runs a client (argv) in `cwd` with `env` added; returns its stdout, failing the test unless it
// exits 0 within 90 seconds.
std::string run_client(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                       const std::string& cwd = k_clients.string()) {
  REQUIRE_MESSAGE(fs::exists(k_clients / "node_modules/.package-lock.json.installed"),
                  "tests/clients/node_modules is missing: run scripts/bootstrap.sh");
  env.emplace("HTTPS_PROXY", "http://127.0.0.1:9");  // the discard port: nothing answers
  env.emplace("HTTP_PROXY", "http://127.0.0.1:9");
  env.emplace("NO_PROXY", "127.0.0.1,localhost");
  temp_dir dir;
  const std::string err = dir.path() + "/stderr";
  argv.insert(argv.begin(), "/usr/bin/env");
  process node(argv, env, cwd, err);
  const auto status = node.wait_exit(std::chrono::seconds(90));
  const std::string out = node.output();
  std::ifstream f(err);
  std::stringstream stderr_text;
  stderr_text << f.rdbuf();
  INFO("stdout:\n" << out << "\nstderr:\n" << stderr_text.str());
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  return out;
}

}  // namespace

TEST_CASE("clients: the openai SDK and the AI SDK speak the Responses API to every backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string base = "http://127.0.0.1:" + std::to_string(g.port) + "/v1";
  const std::string out =
      run_client({"node", (k_clients / "responses.mjs").string(), base, "claude/claude-sonnet-4-5",
                  "fast/m-fast", "gem/gemini-2.5-flash"});
  for (const char* line :
       {"ok openai responses claude/claude-sonnet-4-5", "ok openai responses fast/m-fast",
        "ok openai responses gem/gemini-2.5-flash", "ok openai tools claude/claude-sonnet-4-5",
        "ok ai-sdk claude/claude-sonnet-4-5", "ok ai-sdk fast/m-fast",
        "ok ai-sdk gem/gemini-2.5-flash"})
    CHECK_MESSAGE(out.find(line) != std::string::npos, line);
}

TEST_CASE("clients: Codex CLI runs on a chat backend and on Anthropic, with a tool round trip") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  temp_dir home, work;
  // A custom provider, as Codex's docs configure one: the Responses wire API at Meridian.
  home.write("config.toml",
             "model_provider = \"meridian\"\n"
             "[model_providers.meridian]\n"
             "name = \"Meridian\"\n"
             "base_url = \"http://127.0.0.1:" +
                 std::to_string(g.port) +
                 "/v1\"\n"
                 "wire_api = \"responses\"\n"
                 "env_key = \"MERIDIAN_TEST_KEY\"\n");
  const std::map<std::string, std::string> env = {
      {"CODEX_HOME", home.path()}, {"HOME", home.path()}, {"MERIDIAN_TEST_KEY", "none"}};
  const std::string codex = (k_clients / "node_modules/.bin/codex").string();
  auto exec = [&](const std::string& model, const std::string& prompt) {
    return run_client({codex, "exec", "--skip-git-repo-check", "-m", model, prompt}, env,
                      work.path());
  };
  // Codex streams; the sim's reply names the model and provider that served it.
  CHECK(exec("fast/m-fast", "Say hello").find("Hello from m-fast via fast (sim)") !=
        std::string::npos);
  // "weather" makes the Anthropic sim call Codex's first tool; Codex answers the call with a
  // function_call_output (its tool rejects the sim's canned arguments), which must reach the
  // backend as a tool_result for the next turn, answered in plain text.
  const std::string out = exec("claude/claude-sonnet-4-5", "What is the weather in Paris?");
  CHECK(out.find("Hello from claude-sonnet-4-5 via claude (sim)") != std::string::npos);
  const auto sent = nlohmann::json::parse(
      nlohmann::json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>());
  const auto& messages = sent["messages"];
  REQUIRE(messages.size() >= 2);
  const auto& last = messages.back();
  REQUIRE(last["content"].is_array());
  CHECK(last["content"][0]["type"] == "tool_result");
  const auto& asked = messages[messages.size() - 2];
  bool called = false;
  for (const auto& block : asked["content"]) called = called || block["type"] == "tool_use";
  CHECK(called);
}
