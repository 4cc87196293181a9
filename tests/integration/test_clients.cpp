// Real clients are the proof: the official `openai` SDK, the AI SDK (its OpenAI, Anthropic and
// Google providers), Codex CLI, the official `@google/genai` SDK, the official
// `@anthropic-ai/sdk` and Claude Code, installed from npm by scripts/bootstrap.sh into
// tests/clients/node_modules, driven against meridian + meridian-sim. Each run must exit 0; its
// output and stderr are shown when it fails. Nothing reaches the internet: the clients get a
// dead proxy for everything but loopback.
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

// `claude -p PROMPT --model MODEL --output-format json` (print mode: one prompt, no onboarding
// or login) against the gateway on `port`, with HOME in `home` and `work` as its directory; the
// JSON result, checked to be a success. Its environment goes through env(1)'s -u and NAME=VALUE,
// so that the same names in the caller's environment (a developer's HOME, config dir, token or
// base URL) cannot win. Nonessential traffic (telemetry, error reports, update checks) is off and
// the dead proxy catches the rest: Meridian is the only host it reaches. No retries, so that a
// failure shows at once. ENABLE_TOOL_SEARCH=false: model names Claude Code does not know get a
// deferred-loading placeholder tool first otherwise, which the sims would call before Bash.
nlohmann::json claude_code(std::uint16_t port, const temp_dir& home, const temp_dir& work,
                           const std::string& model, const std::string& prompt,
                           const std::vector<std::string>& extra = {},
                           const std::vector<std::string>& more_env = {}) {
  std::vector<std::string> argv;
  for (const char* name : {"HOME", "CLAUDE_CONFIG_DIR", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
                           "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL",
                           "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                           "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_SMALL_FAST_MODEL"}) {
    argv.push_back("-u");
    argv.push_back(name);
  }
  for (const auto& v :
       {"HOME=" + home.path(), "ANTHROPIC_BASE_URL=http://127.0.0.1:" + std::to_string(port),
        std::string("ANTHROPIC_API_KEY=none"),
        std::string("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"),
        std::string("DISABLE_AUTOUPDATER=1"), std::string("CLAUDE_CODE_MAX_RETRIES=0"),
        std::string("ENABLE_TOOL_SEARCH=false")})
    argv.push_back(v);
  for (const auto& v : more_env) argv.push_back(v);
  for (const auto& a : {(k_clients / "node_modules/.bin/claude").string(), std::string("-p"),
                        prompt, std::string("--model"), model, std::string("--output-format"),
                        std::string("json")})
    argv.push_back(a);
  for (const auto& a : extra) argv.push_back(a);
  const std::string out = run_client(argv, {}, work.path());
  INFO("claude -p --model " << model << ":\n" << out);
  auto result = nlohmann::json::parse(out, nullptr, false);
  REQUIRE(result.is_object());
  CHECK(result["type"] == "result");
  CHECK(result["subtype"] == "success");
  CHECK(result["is_error"] == false);
  return result;
}

bool says(const nlohmann::json& result, const std::string& text) {
  INFO("result: " << result.dump());
  return result.value("result", std::string()).find(text) != std::string::npos;
}

// The last request the sim's `provider` received, parsed.
nlohmann::json last_sent(sim& s, const std::string& provider) {
  return nlohmann::json::parse(
      nlohmann::json::parse(s.stats(provider))["last_request"]["body"].get<std::string>());
}

// Checks that the last request `provider` (of `dialect`: anthropic, openai or gemini) received
// ends with a call of the tool `name` with `argument` = `value` and, after it, that call's result
// holding `output`: a tool round trip carried in the backend's own dialect.
void check_round_trip(sim& s, const std::string& provider, const std::string& dialect,
                      const std::string& name, const std::string& argument,
                      const std::string& value, const std::string& output) {
  const auto sent = last_sent(s, provider);
  INFO(provider << " received: " << sent.dump());
  if (dialect == "anthropic") {
    const auto& messages = sent["messages"];
    REQUIRE(messages.size() >= 3);
    REQUIRE(messages.back()["content"].is_array());
    const auto& result = messages.back()["content"][0];
    CHECK(result["type"] == "tool_result");
    nlohmann::json call;
    for (const auto& block : messages[messages.size() - 2]["content"])
      if (block.value("type", "") == "tool_use") call = block;
    REQUIRE(call.is_object());
    CHECK(call["name"] == name);
    CHECK(result["tool_use_id"] == call["id"]);
    CHECK(call["input"][argument] == value);
    CHECK(result.value("is_error", false) == false);
    CHECK(result["content"].dump().find(output) != std::string::npos);
  } else if (dialect == "openai") {
    const auto& messages = sent["messages"];
    REQUIRE(messages.size() >= 3);
    const auto& result = messages.back();
    const auto& asked = messages[messages.size() - 2];
    CHECK(result["role"] == "tool");
    CHECK(asked["role"] == "assistant");
    REQUIRE(asked["tool_calls"].is_array());
    const auto& call = asked["tool_calls"][0];
    CHECK(call["function"]["name"] == name);
    CHECK(result["tool_call_id"] == call["id"]);
    CHECK(nlohmann::json::parse(call["function"]["arguments"].get<std::string>())[argument] ==
          value);
    CHECK(result["content"].dump().find(output) != std::string::npos);
  } else if (dialect == "responses") {  // the client's own items, passed through
    const auto& input = sent["input"];
    REQUIRE(input.is_array());
    REQUIRE(input.size() >= 3);
    const auto& result = input.back();
    nlohmann::json call;
    for (const auto& item : input)
      if (item.value("type", "") == "function_call") call = item;
    REQUIRE(call.is_object());
    CHECK(result["type"] == "function_call_output");
    CHECK(call["name"] == name);
    CHECK(result["call_id"] == call["call_id"]);
    CHECK(nlohmann::json::parse(call["arguments"].get<std::string>())[argument] == value);
    CHECK(result["output"].dump().find(output) != std::string::npos);
  } else {
    const auto& contents = sent["contents"];
    REQUIRE(contents.size() >= 3);
    const auto& call = contents[contents.size() - 2]["parts"][0];
    const auto& response = contents.back()["parts"][0];
    REQUIRE(call.contains("functionCall"));
    REQUIRE(response.contains("functionResponse"));
    CHECK(call["functionCall"]["name"] == name);
    CHECK(response["functionResponse"]["name"] == name);
    CHECK(call["functionCall"]["args"][argument] == value);
    CHECK(response["functionResponse"]["response"].dump().find(output) != std::string::npos);
  }
}

// The three backends of dialect_fixture.hpp, one per dialect, and the name of the provider's sim.
const struct backend {
  const char* model;
  const char* provider;
  const char* dialect;
  const char* reply;
} k_backends[] = {
    {"claude/claude-sonnet-4-5", "claude", "anthropic",
     "Hello from claude-sonnet-4-5 via claude (sim)"},
    {"fast/m-fast", "fast", "openai", "Hello from m-fast via fast (sim)"},
    {"gem/gemini-2.5-flash", "gem", "gemini", "Hello from gemini-2.5-flash via gem (sim)"},
};

}  // namespace

TEST_CASE("clients: the openai SDK and the AI SDK speak the Responses API to every backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string base = "http://127.0.0.1:" + std::to_string(g.port) + "/v1";
  std::vector<std::string> argv = {"node", (k_clients / "responses.mjs").string(), base};
  for (const auto& b : k_backends) argv.push_back(b.model);
  const std::string out = run_client(argv);
  for (const auto& b : k_backends)
    for (const char* check :
         {"ok openai responses ", "ok openai tools ", "ok openai stored ", "ok ai-sdk "}) {
      const std::string line = check + std::string(b.model);
      CHECK_MESSAGE(out.find(line) != std::string::npos, line);
    }
}

TEST_CASE("clients: Codex CLI runs its shell tool through Meridian on every backend dialect and on a Responses backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s) + native_responses_provider_yaml(s), k_dialect_env);
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
  // "weather" makes every sim call Codex's exec_command with {"cmd":"echo meridian-tool-ok"};
  // Codex runs it and answers with a function_call_output holding the command's output, which
  // must reach the backend as its dialect's tool result for the next turn, answered in plain
  // text.
  for (const auto& b : k_backends) {
    CAPTURE(b.model);
    const std::string out = exec(b.model, "What is the weather in Paris?");
    CHECK(out.find(b.reply) != std::string::npos);
    check_round_trip(s, b.provider, b.dialect, "exec_command", "cmd", "echo meridian-tool-ok",
                     "meridian-tool-ok");
    check_round_trip(s, b.provider, b.dialect, "exec_command", "cmd", "echo meridian-tool-ok",
                     "exited with code 0");
  }
  // A backend that serves Responses itself gets Codex's own requests, tool round trip included.
  const std::string out = exec("native/m-fast", "What is the weather in Paris?");
  CHECK(out.find("Hello from m-fast via fast (sim)") != std::string::npos);
  const auto up = nlohmann::json::parse(s.stats("fast"))["last_request"];
  CHECK(up["target"] == "/v1/responses");
  check_round_trip(s, "fast", "responses", "exec_command", "cmd", "echo meridian-tool-ok",
                   "meridian-tool-ok");
}

TEST_CASE("clients: the Anthropic SDK on every backend dialect") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  // The SDK's base URL is the root: it adds /v1/messages itself.
  std::vector<std::string> argv = {"node", (k_clients / "anthropic.mjs").string(),
                                   "http://127.0.0.1:" + std::to_string(g.port)};
  for (const auto& b : k_backends) argv.push_back(b.model);
  const std::string out = run_client(argv);
  // Every sim calls get_weather when asked about the weather: a round trip on every lane.
  for (const auto& b : k_backends)
    for (const char* check :
         {"ok anthropic-sdk ", "ok anthropic-sdk stream ", "ok anthropic-sdk tools "}) {
      const std::string line = check + std::string(b.model);
      CHECK_MESSAGE(out.find(line) != std::string::npos, line);
    }
}

TEST_CASE("clients: Claude Code answers through Meridian on every backend dialect") {
  sim s(k_dialect_sim);
  // Opus-class names, as Claude Code remaps them (claude-opus-4-1 becomes its newest Opus id),
  // reach a route that matches them by glob.
  gateway g(
      dialect_gateway_yaml(s) +
          "routes:\n  - { match: \"claude-opus-*\", candidates: [claude/claude-sonnet-4-5] }\n",
      k_dialect_env);
  temp_dir home, work;
  // Claude Code streams /v1/messages?beta=true with its system prompt, tools, thinking and
  // context_management; the sim's reply names the model and provider that served it.
  const struct {
    const char* model;
    const char* reply;
  } asked[] = {
      // A bare upstream name, as Claude Code users type it, and an Opus-class one via a route.
      {"claude-sonnet-4-5", "Hello from claude-sonnet-4-5 via claude (sim)"},
      {"claude-opus-4-1", "Hello from claude-sonnet-4-5 via claude (sim)"},
  };
  for (const auto& b : k_backends) {
    CAPTURE(b.model);
    auto r = claude_code(g.port, home, work, b.model, "Say hello");
    CHECK(r["num_turns"] == 1);
    CHECK(says(r, b.reply));
  }
  for (const auto& d : asked) {
    CAPTURE(d.model);
    auto r = claude_code(g.port, home, work, d.model, "Say hello");
    CHECK(r["num_turns"] == 1);
    CHECK(says(r, d.reply));
  }
  // Claude Code's own aliases resolve client-side to its newest model names, which Meridian
  // does not serve; ANTHROPIC_DEFAULT_SONNET_MODEL points "sonnet" at a Meridian model.
  CHECK(says(claude_code(g.port, home, work, "sonnet", "Say hello", {},
                         {"ANTHROPIC_DEFAULT_SONNET_MODEL=fast/m-fast"}),
             "Hello from m-fast via fast (sim)"));
}

TEST_CASE("clients: Claude Code runs its Bash tool on every backend dialect, Opus and Sonnet") {
  // A tool round trip: with Bash the only tool (and allowed), "weather" makes every sim call it
  // with {"command":"echo meridian-tool-ok"}; Claude Code runs it and its tool_result, with the
  // command's output, must reach the backend in its own dialect for the second turn, answered
  // in plain text. Claude Code's Opus-class names (claude-opus-4-1 is remapped to its newest
  // Opus id, sent with the mid-conversation-system beta, thinking, context_management and
  // output_config) and Sonnet-class names reach each backend through a route.
  const std::vector<std::string> bash = {"--tools", "Bash", "--allowedTools", "Bash"};
  for (const auto& b : k_backends) {
    CAPTURE(b.model);
    sim s(k_dialect_sim);
    gateway g(dialect_gateway_yaml(s) + "routes:\n  - { match: \"claude-*\", candidates: [" +
                  b.model + "] }\n",
              k_dialect_env);
    temp_dir home, work;
    for (const char* model : {"claude-opus-4-1", "claude-sonnet-4-5"}) {
      CAPTURE(model);
      auto r = claude_code(g.port, home, work, model, "What is the weather in Paris?", bash);
      CHECK(r["num_turns"] == 2);
      CHECK(says(r, b.reply));
      check_round_trip(s, b.provider, b.dialect, "Bash", "command", "echo meridian-tool-ok",
                       "meridian-tool-ok");
    }
  }
}

TEST_CASE("clients: the Google GenAI SDK on v1beta speaks the Gemini API to every backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  // The SDK's base URL is the root: it adds /v1beta/models/MODEL:METHOD, the provider/model
  // name's slash as it is.
  std::vector<std::string> argv = {"node", (k_clients / "genai.mjs").string(),
                                   "--api-version=v1beta",
                                   "http://127.0.0.1:" + std::to_string(g.port)};
  for (const auto& b : k_backends) argv.push_back(b.model);
  const std::string out = run_client(argv);
  for (const auto& b : k_backends)
    for (const char* check : {"ok genai ", "ok genai stream ", "ok genai tools ", "ok genai count "}) {
      const std::string line = check + std::string(b.model);
      CHECK_MESSAGE(out.find(line) != std::string::npos, line);
    }
}

TEST_CASE("clients: the Google GenAI SDK with its default API version (v1)") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  // @google/genai 3 sends POST /v1/models/MODEL:generateContent (and :streamGenerateContent,
  // :countTokens) unless told otherwise.
  const std::string base = "http://127.0.0.1:" + std::to_string(g.port);
  const std::string out = run_client({"node", (k_clients / "genai.mjs").string(), base,
                                      "claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"});
  for (const char* line :
       {"ok genai claude/claude-sonnet-4-5 ", "ok genai stream claude/claude-sonnet-4-5 ",
        "ok genai tools claude/claude-sonnet-4-5", "ok genai count claude/claude-sonnet-4-5 ",
        "ok genai gem/gemini-2.5-flash ", "ok genai stream gem/gemini-2.5-flash ",
        "ok genai tools gem/gemini-2.5-flash", "ok genai count gem/gemini-2.5-flash "})
    CHECK_MESSAGE(out.find(line) != std::string::npos, line);
}

TEST_CASE(
    "clients: a Gemini SDK tool's schema reaches chat and Anthropic backends as JSON Schema") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string base = "http://127.0.0.1:" + std::to_string(g.port);
  // genai.mjs declares get_weather with Gemini's Schema (type: Type.OBJECT, i.e. "OBJECT");
  // the last request each of these backends gets from it carries the tool.
  run_client({"node", (k_clients / "genai.mjs").string(), "--api-version=v1beta", base,
              "claude/claude-sonnet-4-5", "fast/m-fast"});
  const auto claude = nlohmann::json::parse(
      nlohmann::json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>());
  REQUIRE(claude.contains("tools"));
  const auto& input_schema = claude["tools"][0]["input_schema"];
  CHECK(input_schema["type"] == "object");
  CHECK(input_schema["properties"]["location"]["type"] == "string");
  const auto fast = nlohmann::json::parse(
      nlohmann::json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  REQUIRE(fast.contains("tools"));
  const auto& parameters = fast["tools"][0]["function"]["parameters"];
  CHECK(parameters["type"] == "object");
  CHECK(parameters["properties"]["location"]["type"] == "string");
}

TEST_CASE("clients: the AI SDK's Anthropic and Google providers on every backend dialect") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  std::string tool_models;
  for (const auto& b : k_backends) tool_models += (tool_models.empty() ? "" : ",") + std::string(b.model);
  std::vector<std::string> argv = {"node", (k_clients / "ai-sdk-native.mjs").string(),
                                   "http://127.0.0.1:" + std::to_string(g.port), tool_models};
  for (const auto& b : k_backends) argv.push_back(b.model);
  const std::string out = run_client(argv);
  for (const char* provider : {"ai-sdk-anthropic", "ai-sdk-google"})
    for (const auto& b : k_backends)
      for (const char* check : {" ", " stream ", " tools "}) {
        const std::string line = std::string("ok ") + provider + check + b.model;
        CHECK_MESSAGE(out.find(line) != std::string::npos, line);
      }
}
