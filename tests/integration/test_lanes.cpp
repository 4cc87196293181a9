// Lanes through the real binary: an Anthropic client on an Anthropic backend passes through
// (its bytes reach the upstream unchanged except `model`, its dialect headers with them, its
// credentials never; the answer comes back as the upstream wrote it, annotated), and on the
// other dialects it is translated, with what was left out listed in x-meridian-dropped.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "tests/integration/dialect_fixture.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// What Claude Code sends to a current Opus model: the mid-conversation system beta, thinking,
// cache breakpoints, context management, output config and members Meridian has never heard of.
// `model` is the placeholder MODEL; the spacing is deliberate (it must survive).
const std::string k_claude_code_call =
    R"({"model": "MODEL","max_tokens":2048,   "thinking":{"type":"enabled","budget_tokens":1024},)"
    R"("top_k":40,"metadata":{"user_id":"user_abc_session_1"},)"
    R"("context_management":{"edits":[{"type":"clear_thinking_20251015"}]},)"
    R"("output_config":{"effort":"high"},"a_member_from_2027":{"x":[1,2.50,null]},)"
    R"("system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],)"
    R"("messages":[{"role":"user","content":[{"type":"text","text":"Hello there",)"
    R"("cache_control":{"type":"ephemeral","ttl":"1h"}}]},)"
    R"({"role":"assistant","content":[{"type":"thinking","thinking":"Greet back.",)"
    R"("signature":"EqQBCgIYAhIM1gbc"},{"type":"text","text":"Hi!"}]},)"
    R"({"role":"system","content":"The user prefers short answers."},)"
    R"({"role":"user","content":"Tell me more"}]})";

std::string with_model(std::string body, const std::string& model) {
  body.replace(body.find("MODEL"), 5, model);
  return body;
}

const std::map<std::string, std::string> k_claude_headers = {
    {"x-api-key", "client-virtual-key"},
    {"anthropic-version", "2023-06-01"},
    {"anthropic-beta", "mid-conversation-system-2026-04-07,context-management-2025-06-27"}};

std::string fixture(const std::string& path) {
  std::ifstream f(std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/" + path, std::ios::binary);
  REQUIRE(f.good());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string raw_anthropic_yaml(std::uint16_t port) {
  return "server: { listen: 127.0.0.1:0, threads: 1 }\n"
         "providers:\n"
         "  claude:\n    preset: anthropic\n    base_url: http://127.0.0.1:" +
         std::to_string(port) +
         "/v1\n    api_key_env: SIM_ANTHROPIC_KEY\n"
         "    models: { claude-sonnet-4-5: { input: 3, output: 15, cache_read: 0.3, "
         "cache_write: 3.75 } }\n";
}

}  // namespace

TEST_CASE("lanes: an Anthropic pass-through reaches the upstream byte-identical except model") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string body = with_model(k_claude_code_call, "claude/claude-sonnet-4-5");
  auto r = http_call(g.port, "POST", "/v1/messages", body, k_claude_headers);
  REQUIRE(r.status == 200);
  CHECK(r.headers.count("x-meridian-dropped") == 0);  // nothing was left out
  auto st = json::parse(s.stats("claude"));
  const auto& sent = st["last_request"];
  CHECK(sent["target"] == "/v1/messages");
  CHECK(sent["body"] == with_model(k_claude_code_call, "claude-sonnet-4-5"));
  const auto& h = sent["headers"];
  CHECK(h["anthropic-version"] == "2023-06-01");
  CHECK(h["anthropic-beta"] == k_claude_headers.at("anthropic-beta"));
  CHECK(h["x-api-key"] == "sk-ant-sim");  // the provider's key, not the client's
  CHECK(sent.dump().find("client-virtual-key") == std::string::npos);
  // The cache breakpoints arrived, so the upstream read its cache: the answer says so, and the
  // gateway's annotations ride along.
  auto j = json::parse(r.body);
  CHECK(j["usage"]["cache_read_input_tokens"].get<int>() > 0);
  CHECK(j["provider"] == "claude");
  CHECK(j["usage"]["cost"].get<double>() > 0);
}

TEST_CASE("lanes: an Anthropic pass-through answer comes back as the upstream wrote it") {
  const std::string message = fixture("anthropic/message_thinking_tool_use.json");
  raw_upstream up([&](const std::string&, const raw_upstream::writer& write) {
    write(http_200(message));
    return true;
  });
  gateway g(raw_anthropic_yaml(up.port), k_dialect_env);
  auto r = http_call(g.port, "POST", "/v1/messages",
                     with_model(k_claude_code_call, "claude/claude-sonnet-4-5"), k_claude_headers);
  REQUIRE(r.status == 200);
  json got = json::parse(r.body), want = json::parse(message);
  CHECK(got["provider"] == "claude");
  // 472 input, 2048 cache reads, 161 output at 3 / 0.3 / 15 USD per million.
  CHECK(got["usage"]["cost"].get<double>() ==
        doctest::Approx((472 * 3 + 2048 * 0.3 + 161 * 15) / 1e6));
  got.erase("provider");
  got["usage"].erase("cost");
  CHECK(got == want);  // the thinking block keeps its signature, the model its dated id
  CHECK(up.last_head().find("client-virtual-key") == std::string::npos);
}

TEST_CASE("lanes: an Anthropic pass-through stream relays the upstream's own events") {
  const std::string events = fixture("anthropic/stream_thinking_tool_use.sse");
  raw_upstream up([&](const std::string&, const raw_upstream::writer& write) {
    write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
          std::to_string(events.size()) + "\r\n\r\n" + events);
    return true;
  });
  gateway g(raw_anthropic_yaml(up.port), k_dialect_env);
  std::string body = with_model(k_claude_code_call, "claude/claude-sonnet-4-5");
  body.insert(1, R"("stream":true,)");
  stream_client c(g.port, body, k_claude_headers, "/v1/messages");
  REQUIRE(c.status() == 200);
  std::vector<std::string> got;
  while (auto ev = c.next_event()) got.push_back(*ev);
  std::vector<std::string> want;
  for (std::size_t at = 0; (at = events.find("data: ", at)) != std::string::npos;) {
    const std::size_t end = events.find('\n', at);
    want.push_back(events.substr(at + 6, end - at - 6));
    at = end;
  }
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    if (got[i] == want[i]) continue;
    // Only the message_delta differs: the gateway's provider and cost were added.
    json g_ev = json::parse(got[i]), w_ev = json::parse(want[i]);
    CHECK(w_ev["type"] == "message_delta");
    CHECK(g_ev["provider"] == "claude");
    CHECK(g_ev["usage"]["cost"].get<double>() > 0);
    g_ev.erase("provider");
    g_ev["usage"].erase("cost");
    CHECK(g_ev == w_ev);
  }
  CHECK(up.last_head().find("anthropic-beta: mid-conversation-system-2026-04-07") !=
        std::string::npos);
}

TEST_CASE(
    "lanes: Claude Code's call on OpenAI and Gemini backends is translated and says what it left "
    "out") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string inbound = "cache_control,top_k,context_management,a_member_from_2027";
  // What the client's API has and the chat shape lacks, then what the backend's model or dialect
  // lacks: thinking (output_config's effort "high") became reasoning_effort, which m-fast does
  // not take and gemini-2.5-flash does (as a thinking budget); Gemini has no end-user id, takes
  // no reasoning back, and has one system instruction at the top.
  const std::pair<const char*, std::string> lanes[] = {
      {"fast/m-fast", inbound + ",thinking"},
      {"gem/gemini-2.5-flash", inbound + ",user,reasoning_content,system.position"}};
  for (const auto& [model, dropped] : lanes) {
    CAPTURE(model);
    auto r = http_call(g.port, "POST", "/v1/messages", with_model(k_claude_code_call, model),
                       k_claude_headers);
    REQUIRE(r.status == 200);  // the mid-conversation system message is no longer a 400
    CHECK(r.headers["x-meridian-dropped"] == dropped);
    auto j = json::parse(r.body);
    CHECK(j["type"] == "message");
    CHECK(j["content"].back()["type"] == "text");  // after Gemini's thinking block
  }
  // The OpenAI backend got the system messages where they stood, and none of the dropped members.
  auto sent = json::parse(json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  REQUIRE(sent["messages"].size() == 5);
  CHECK(sent["messages"][0] == json{{"role", "system"}, {"content", "You are Claude Code."}});
  CHECK(sent["messages"][3] ==
        json{{"role", "system"}, {"content", "The user prefers short answers."}});
  CHECK(sent["messages"][2]["reasoning_content"] == "Greet back.");
  for (const char* gone :
       {"thinking", "top_k", "context_management", "output_config", "reasoning_effort"})
    CHECK_FALSE(sent.contains(gone));
  CHECK(sent["user"] == "user_abc_session_1");
  // Gemini got the effort as a thinking budget, with the thoughts returned.
  auto gem = json::parse(json::parse(s.stats("gem"))["last_request"]["body"].get<std::string>());
  CHECK(gem["generationConfig"]["thinkingConfig"] ==
        json{{"thinkingBudget", 24576}, {"includeThoughts", true}});
}

TEST_CASE("lanes: an Anthropic client's thinking reaches a reasoning model as its effort and "
          "comes back as thinking") {
  sim s(k_dialect_sim);
  // m-fast declared as taking a reasoning control; gemini-2.5-flash is one by its name.
  std::string yaml = dialect_gateway_yaml(s);
  const std::string plain = "m-fast: { input: 0.5, output: 1 }";
  yaml.replace(yaml.find(plain), plain.size(),
               "m-fast: { input: 0.5, output: 1, capabilities: [tools, json, reasoning] }");
  gateway g(yaml, k_dialect_env);
  const struct {
    const char* thinking;
    const char* effort;
    int budget;
  } cases[] = {
      {R"({"type":"enabled","budget_tokens":1024})", "low", 1024},
      {R"({"type":"enabled","budget_tokens":8000})", "medium", 8192},
      {R"({"type":"enabled","budget_tokens":32000})", "high", 24576},
      {R"({"type":"adaptive"})", "medium", 8192},
  };
  for (const auto& c : cases) {
    CAPTURE(c.thinking);
    for (const char* model : {"fast/m-fast", "gem/gemini-2.5-flash"}) {
      CAPTURE(model);
      const std::string body = std::string(R"({"model":")") + model +
                               R"(","max_tokens":40000,"thinking":)" + c.thinking +
                               R"(,"messages":[{"role":"user","content":"Hi"}]})";
      auto r = http_call(g.port, "POST", "/v1/messages", body, k_claude_headers);
      REQUIRE(r.status == 200);
      CHECK(r.headers["x-meridian-dropped"].find("thinking") == std::string::npos);
      auto j = json::parse(r.body);
      const std::string provider = std::string(model).substr(0, std::string(model).find('/'));
      auto sent =
          json::parse(json::parse(s.stats(provider))["last_request"]["body"].get<std::string>());
      if (provider == "fast") {
        CHECK(sent["reasoning_effort"] == c.effort);
      } else {
        CHECK(sent["generationConfig"]["thinkingConfig"]["thinkingBudget"] == c.budget);
        // The Gemini sim thinks when asked: its thought part is the answer's thinking block.
        REQUIRE(j["content"].size() >= 2);
        CHECK(j["content"][0]["type"] == "thinking");
        CHECK(j["content"][1]["type"] == "text");
      }
    }
  }
  // output_config.effort wins over the budget, and is not listed as dropped.
  auto r = http_call(g.port, "POST", "/v1/messages",
                     R"({"model":"fast/m-fast","max_tokens":4000,)"
                     R"("thinking":{"type":"enabled","budget_tokens":1024},)"
                     R"("output_config":{"effort":"max"},)"
                     R"("messages":[{"role":"user","content":"Hi"}]})",
                     k_claude_headers);
  REQUIRE(r.status == 200);
  CHECK(r.headers.count("x-meridian-dropped") == 0);
  auto sent = json::parse(json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  CHECK(sent["reasoning_effort"] == "high");
}

TEST_CASE("lanes: a block only Anthropic reads goes to an Anthropic candidate or is refused") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s) +
                "routes:\n"
                "  - { match: docs, policy: ordered, candidates: [fast/m-fast, "
                "claude/claude-sonnet-4-5] }\n",
            k_dialect_env);
  const std::string pdf =
      R"([{"role":"user","content":[{"type":"document","source":{"type":"base64",)"
      R"("media_type":"application/pdf","data":"JVBERi0xLjQK"}},{"type":"text","text":"Sum up"}]}])";
  auto call = [&](const std::string& model) {
    return http_call(g.port, "POST", "/v1/messages",
                     R"({"model":")" + model + R"(","max_tokens":64,"messages":)" + pdf + "}",
                     {{"anthropic-version", "2023-06-01"}});
  };
  // Only an OpenAI backend: refused, naming the block, in Anthropic's error shape.
  auto refused = call("fast/m-fast");
  CHECK(refused.status == 400);
  auto e = json::parse(refused.body);
  CHECK(e["type"] == "error");
  CHECK(e["error"]["message"].get<std::string>().find("messages.0.content.0") != std::string::npos);
  // A route whose first candidate cannot read it moves on to the one that can.
  auto routed = call("docs");
  REQUIRE(routed.status == 200);
  CHECK(routed.headers["x-meridian-provider"] == "claude");
  auto sent = json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>();
  CHECK(sent.find("JVBERi0xLjQK") != std::string::npos);
}

TEST_CASE("lanes: a conversation another backend answered still goes to Anthropic") {
  // The first turn came from DeepSeek through Meridian: its reasoning is a thinking block with
  // an empty signature, which Anthropic would reject. It is left out, and the client told.
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string body =
      R"({"model":"claude/claude-sonnet-4-5","max_tokens":64,"messages":[)"
      R"({"role":"user","content":"Hello there"},{"role":"assistant","content":[)"
      R"({"type":"thinking","thinking":"from another backend","signature":""},)"
      R"({"type":"text","text":"Hi!"}]},{"role":"user","content":"Again"}]})";
  auto r = http_call(g.port, "POST", "/v1/messages", body, {{"anthropic-version", "2023-06-01"}});
  REQUIRE(r.status == 200);
  CHECK(r.headers["x-meridian-dropped"] == "thinking.unsigned");
  auto sent =
      json::parse(json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>());
  CHECK(sent["messages"][1]["content"] == json::parse(R"([{"type":"text","text":"Hi!"}])"));
  CHECK(sent["model"] == "claude-sonnet-4-5");
}

TEST_CASE("lanes: an Anthropic-style models list for Claude Code's model discovery") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s) + "routes:\n  - { match: sonnet, candidates: [claude/*] }\n",
            k_dialect_env);
  auto r = http_call(g.port, "GET", "/v1/models", {}, {{"anthropic-version", "2023-06-01"}});
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  REQUIRE(j["data"].is_array());
  CHECK(j["data"][0]["id"] == "sonnet");  // routes first: the names clients are meant to use
  CHECK(j["data"][0]["type"] == "model");
  CHECK(j["has_more"] == false);
  CHECK(j["first_id"] == "sonnet");
  bool listed = false;
  for (const auto& m : j["data"]) listed |= m["id"] == "claude/claude-sonnet-4-5";
  CHECK(listed);
  // Without the header, OpenAI's list as before.
  auto openai = json::parse(http_call(g.port, "GET", "/v1/models").body);
  CHECK(openai["object"] == "list");
}

namespace {

const std::string k_gemini_call =
    R"({"contents":[{"role":"user","parts":[{"text":"Hello there"}]}],)"
    R"("systemInstruction":{"parts":[{"text":"Be brief."}]},)"
    R"("generationConfig":{"maxOutputTokens":100,"temperature":0.2},)"
    R"("safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]})";

}  // namespace

TEST_CASE("lanes: a Gemini client on a Gemini backend passes through, byte for byte") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s) + "auth: { required: false }\n", k_dialect_env);
  auto r = http_call(g.port, "POST",
                     "/v1beta/models/gem%2Fgemini-2.5-flash:generateContent?key=client-secret",
                     k_gemini_call);
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["candidates"][0]["content"]["parts"][0]["text"].get<std::string>().size() > 0);
  CHECK(j["usageMetadata"]["candidatesTokenCount"] == 7);
  CHECK(j["provider"] == "gem");
  auto sent = json::parse(s.stats("gem"))["last_request"];
  CHECK(sent["body"] == k_gemini_call);
  CHECK(sent["target"].get<std::string>().find("/v1beta/models/gemini-2.5-flash:generateContent") ==
        0);
  CHECK(sent["headers"]["x-goog-api-key"] == "gem-sim-key");
  CHECK(sent.dump().find("client-secret") == std::string::npos);
  // Streamed: Gemini's own chunks, ending with a finishReason and usage.
  stream_client c(g.port, k_gemini_call, {},
                  "/v1beta/models/gem/gemini-2.5-flash:streamGenerateContent?alt=sse");
  REQUIRE(c.status() == 200);
  std::string text;
  json last;
  while (auto ev = c.next_event()) {
    last = json::parse(*ev);
    for (const auto& p : last["candidates"][0]["content"]["parts"])
      if (p.contains("text")) text += p["text"].get<std::string>();
  }
  CHECK_FALSE(text.empty());
  CHECK(last["usageMetadata"]["candidatesTokenCount"] == 7);
}

TEST_CASE("lanes: a Gemini client on OpenAI and Anthropic backends is translated") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  for (const auto& [model, tokens] :
       std::map<std::string, int>{{"fast/m-fast", 8}, {"claude/claude-sonnet-4-5", 6}}) {
    CAPTURE(model);
    auto r = http_call(g.port, "POST", "/v1beta/models/" + model + ":generateContent",
                       k_gemini_call, {{"x-goog-api-key", "anything"}});
    REQUIRE(r.status == 200);
    CHECK(r.headers["x-meridian-dropped"] == "safetySettings");
    auto j = json::parse(r.body);
    CHECK(j["candidates"][0]["finishReason"] == "STOP");
    CHECK(j["candidates"][0]["content"]["role"] == "model");
    CHECK(j["usageMetadata"]["candidatesTokenCount"] == tokens);
    CHECK(j["usageMetadata"]["cost"].get<double>() > 0);

    stream_client c(g.port, k_gemini_call, {},
                    "/v1beta/models/" + model + ":streamGenerateContent?alt=sse");
    REQUIRE(c.status() == 200);
    std::string text;
    json last;
    while (auto ev = c.next_event()) {
      last = json::parse(*ev);
      for (const auto& p : last["candidates"][0]["content"]["parts"])
        if (p.contains("text")) text += p["text"].get<std::string>();
    }
    CHECK(text == j["candidates"][0]["content"]["parts"][0]["text"]);
    CHECK(last["usageMetadata"]["candidatesTokenCount"] == tokens);
    CHECK(last["candidates"][0]["finishReason"] == "STOP");
  }
  // The OpenAI backend got the canonical call: system first, max_tokens from maxOutputTokens.
  auto sent = json::parse(json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  CHECK(sent["messages"][0] == json{{"role", "system"}, {"content", "Be brief."}});
  CHECK(sent["max_tokens"] == 100);
  CHECK(sent["temperature"] == 0.2);
}

TEST_CASE("lanes: a Gemini client's tool round trip through an Anthropic backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string tools =
      R"("tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather",)"
      R"("parameters":{"type":"object","properties":{"location":{"type":"string"}}}}]}])";
  auto first = http_call(g.port, "POST", "/v1beta/models/claude/claude-sonnet-4-5:generateContent",
                         R"({"contents":[{"role":"user","parts":[{"text":"What is the weather )"
                         R"(in Paris?"}]}],)" +
                             tools + "}");
  REQUIRE(first.status == 200);
  auto j = json::parse(first.body);
  json call;
  for (const auto& p : j["candidates"][0]["content"]["parts"])
    if (p.contains("functionCall")) call = p["functionCall"];
  REQUIRE(call.is_object());
  CHECK(call["name"] == "get_weather");
  CHECK(call["args"] == json{{"location", "Paris"}});
  // The answer goes back as a functionResponse; Anthropic gets a tool_result for its tool_use.
  const std::string second_body =
      R"({"contents":[{"role":"user","parts":[{"text":"What is the weather in Paris?"}]},)"
      R"({"role":"model","parts":[{"functionCall":)" +
      call.dump() +
      R"(}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather",)"
      R"("response":{"temperature":"18C"}}}]}],)" +
      tools + "}";
  auto second = http_call(g.port, "POST", "/v1beta/models/claude/claude-sonnet-4-5:generateContent",
                          second_body);
  REQUIRE(second.status == 200);
  auto sent =
      json::parse(json::parse(s.stats("claude"))["last_request"]["body"].get<std::string>());
  const auto& turns = sent["messages"];
  REQUIRE(turns.size() == 3);
  CHECK(turns[1]["content"][0]["type"] == "tool_use");
  CHECK(turns[2]["content"][0]["type"] == "tool_result");
  CHECK(turns[2]["content"][0]["tool_use_id"] == turns[1]["content"][0]["id"]);
}

TEST_CASE("lanes: Gemini clients get Google's error shape and model list") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto bad =
      http_call(g.port, "POST", "/v1beta/models/fast/m-fast:generateContent", R"({"contents":[]})");
  CHECK(bad.status == 400);
  auto e = json::parse(bad.body);
  CHECK(e["error"]["code"] == 400);
  CHECK(e["error"]["status"] == "INVALID_ARGUMENT");
  CHECK(e["error"]["message"].get<std::string>().find("contents") != std::string::npos);
  auto unknown = http_call(g.port, "POST", "/v1beta/models/fast/m-fast:embedContent", "{}");
  CHECK(unknown.status == 404);
  CHECK(json::parse(unknown.body)["error"]["status"] == "NOT_FOUND");
  auto dup =
      http_call(g.port, "POST", "/v1beta/models/gem/gemini-2.5-flash:generateContent",
                R"({"contents":[{"parts":[{"text":"a"}]}],"contents":[{"parts":[{"text":"b"}]}]})");
  CHECK(dup.status == 400);
  auto count = http_call(g.port, "POST", "/v1beta/models/fast/m-fast:countTokens", k_gemini_call);
  REQUIRE(count.status == 200);
  CHECK(json::parse(count.body)["estimated"] == true);
  auto list = json::parse(http_call(g.port, "GET", "/v1beta/models").body);
  bool listed = false;
  for (const auto& m : list["models"]) listed |= m["name"] == "models/gem/gemini-2.5-flash";
  CHECK(listed);
}

TEST_CASE("lanes: Claude Code's session id is recorded with each generation") {
  sim s(k_dialect_sim);
  temp_dir d;
  gateway g(dialect_gateway_yaml(s) + "stats: { ledger: \"sqlite:" + d.path() +
                "/ledger.db\", flush_interval: 100ms }\n",
            k_dialect_env);
  auto r = http_call(g.port, "POST", "/v1/messages",
                     with_model(k_claude_code_call, "claude/claude-sonnet-4-5"),
                     {{"anthropic-version", "2023-06-01"},
                      {"x-claude-code-session-id", "5b1e6c4e-9d1a-4c52-a7f0-2f1b0c9e8d77"},
                      {"x-request-id", "cc-req-1"}});
  REQUIRE(r.status == 200);
  json gen;
  CHECK(eventually([&] {
    auto got = http_call(g.port, "GET", "/v1/generation?id=cc-req-1");
    if (got.status != 200) return false;
    gen = json::parse(got.body);
    return true;
  }));
  CHECK(gen["session"] == "5b1e6c4e-9d1a-4c52-a7f0-2f1b0c9e8d77");
  CHECK(gen["provider"] == "claude");
}

TEST_CASE("lanes: a chat client's reasoning_effort is kept for OpenAI backends, dropped elsewhere "
          "for models without a reasoning control") {
  sim s(k_dialect_sim);
  // gemini-2.5-pro declared without the reasoning capability: no thinking budget may reach it.
  std::string yaml = dialect_gateway_yaml(s);
  const std::string pro = "gemini-2.5-pro: { input: 1.25, output: 10 }";
  yaml.replace(yaml.find(pro), pro.size(),
               "gemini-2.5-pro: { input: 1.25, output: 10, capabilities: [tools, json] }");
  gateway g(yaml, k_dialect_env);
  auto ask = [&](const std::string& model) {
    return http_call(g.port, "POST", "/v1/chat/completions",
                     R"({"model":")" + model +
                         R"(","reasoning_effort":"high","messages":[{"role":"user","content":"Hi"}]})");
  };
  auto gem = ask("gem/gemini-2.5-pro");
  REQUIRE(gem.status == 200);
  CHECK(gem.headers["x-meridian-dropped"] == "reasoning_effort");
  const auto to_gem =
      json::parse(json::parse(s.stats("gem"))["last_request"]["body"].get<std::string>());
  CHECK_FALSE(to_gem.dump().find("thinkingConfig") != std::string::npos);
  // The client's own effort on an OpenAI-family backend is its own to send, as sent.
  auto fast = ask("fast/m-fast");
  REQUIRE(fast.status == 200);
  CHECK(fast.headers.count("x-meridian-dropped") == 0);
  const auto to_fast =
      json::parse(json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  CHECK(to_fast["reasoning_effort"] == "high");
  // A model that takes one gets the thinking budget.
  auto flash = ask("gem/gemini-2.5-flash");
  REQUIRE(flash.status == 200);
  const auto to_flash =
      json::parse(json::parse(s.stats("gem"))["last_request"]["body"].get<std::string>());
  CHECK(to_flash["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 24576);
}
