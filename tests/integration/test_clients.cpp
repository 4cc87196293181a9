// Real clients are the proof: the official `openai` SDK and the AI SDK, installed from npm by
// scripts/bootstrap.sh into tests/clients/node_modules, driven against meridian + meridian-sim.
// Each script asserts what it sees and exits non-zero at the first failure; its output and
// stderr are shown when it fails.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/dialect_fixture.hpp"

using namespace meridian::test;
namespace fs = std::filesystem;

namespace {

const fs::path k_clients = fs::path(MERIDIAN_SOURCE_DIR) / "tests/clients";

// Runs `node SCRIPT args...`; returns its stdout, failing the test on a non-zero exit.
std::string run_client(const std::string& script, const std::vector<std::string>& args) {
  REQUIRE_MESSAGE(fs::exists(k_clients / "node_modules/openai"),
                  "tests/clients/node_modules is missing: run scripts/bootstrap.sh");
  temp_dir dir;
  const std::string err = dir.path() + "/stderr";
  std::vector<std::string> argv = {"/usr/bin/env", "node", (k_clients / script).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  process node(argv, {}, k_clients.string(), err);
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
  const std::string out = run_client(
      "responses.mjs", {base, "claude/claude-sonnet-4-5", "fast/m-fast", "gem/gemini-2.5-flash"});
  for (const char* line :
       {"ok openai responses claude/claude-sonnet-4-5", "ok openai responses fast/m-fast",
        "ok openai responses gem/gemini-2.5-flash", "ok openai tools claude/claude-sonnet-4-5",
        "ok ai-sdk claude/claude-sonnet-4-5", "ok ai-sdk fast/m-fast",
        "ok ai-sdk gem/gemini-2.5-flash"})
    CHECK_MESSAGE(out.find(line) != std::string::npos, line);
}
