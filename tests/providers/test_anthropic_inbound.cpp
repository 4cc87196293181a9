// Inbound Anthropic Messages: request, response and stream translation against fixed examples.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api_error.hpp"
#include "providers/anthropic_inbound.hpp"
#include "providers/sse.hpp"

using namespace meridian::providers;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/anthropic_inbound/" + name);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json translate_ok(std::string_view body) {
  auto r = anthropic_request_to_openai(body);
  if (auto* e = std::get_if<request_error>(&r)) FAIL_CHECK(e->message);
  REQUIRE(std::holds_alternative<anthropic_translation>(r));
  return json::parse(std::get<anthropic_translation>(r).chat_body);
}

request_error translate_err(std::string_view body) {
  auto r = anthropic_request_to_openai(body);
  REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

// A request around `messages` (a JSON array text) with the required members.
std::string request(const std::string& messages, const std::string& extra = "") {
  return R"({"model":"claude-x","max_tokens":256,"messages":)" + messages + extra + "}";
}

std::vector<std::pair<std::string, json>> named(const std::vector<sse_event>& evs) {
  std::vector<std::pair<std::string, json>> out;
  for (const auto& e : evs) out.emplace_back(e.event, json::parse(e.data));
  return out;
}

json text_chunk(const std::string& text) {
  return {
      {"id", "chatcmpl-1"},
      {"object", "chat.completion.chunk"},
      {"choices", {{{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}}}}};
}

json tool_chunk(json call) {
  return {{"id", "chatcmpl-1"},
          {"object", "chat.completion.chunk"},
          {"choices",
           {{{"index", 0},
             {"delta", {{"tool_calls", {std::move(call)}}}},
             {"finish_reason", nullptr}}}}};
}

}  // namespace

TEST_CASE("anthropic inbound: a Claude Code request becomes the expected OpenAI body") {
  json got = translate_ok(fixture("claude_code_request.json"));
  json want = json::parse(fixture("claude_code_request.openai.json"));
  CHECK(got == want);
  // Tool input keeps the client's key order, since `arguments` is text the model reads.
  CHECK(got["messages"][2]["tool_calls"][0]["function"]["arguments"] ==
        R"({"command":"ls src","description":"List files in src"})");
}

TEST_CASE("anthropic inbound: images, tool_result images and mixed content become parts") {
  std::string body = request(R"([
    {"role":"user","content":[
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
      {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
      {"type":"text","text":"Compare these."}]},
    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_9","name":"Read","input":{"file_path":"/tmp/a.png"}}]},
    {"role":"user","content":[
      {"type":"tool_result","tool_use_id":"toolu_9","content":[
        {"type":"text","text":"Read image, 12KB"},
        {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}}]
}]
}
  ])",
                             R"(,"system":"Be brief.","stop_sequences":["\n\nHuman:"],"top_p":0.9,)"
                             R"("stream":false,"tool_choice":{"type":"tool","name":"Read",)"
                             R"("disable_parallel_tool_use":true})");
  json want = json::parse(R"({
    "model":"claude-x",
    "messages":[
      {"role":"system","content":"Be brief."},
      {"role":"user","content":[
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
        {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},
        {"type":"text","text":"Compare these."}]},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"toolu_9","type":"function","function":{"name":"Read","arguments":"{\"file_path\":\"/tmp/a.png\"}"}}]},
      {"role":"tool","tool_call_id":"toolu_9","content":"Read image, 12KB"
  },
      {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]}
    ],
    "max_tokens":256,
    "stop":["\n\nHuman:"],
    "top_p":0.9,
    "tool_choice":{"type":"function","function":{"name":"Read"}},
    "parallel_tool_calls":false
  })");
  CHECK(translate_ok(body) == want);
}

TEST_CASE("anthropic inbound: tool_choice kinds map to their OpenAI names") {
  auto choice = [](const std::string& tc) {
    return translate_ok(
        request(R"([{"role":"user","content":"hi"}])", R"(,"tool_choice":)" + tc))["tool_choice"];
  };
  CHECK(choice(R"({"type":"auto"})") == "auto");
  CHECK(choice(R"({"type":"any"})") == "required");
  CHECK(choice(R"({"type":"none"})") == "none");
  CHECK(choice(R"({"type":"tool","name":"f"})") ==
        json::parse(R"({"type":"function","function":{"name":"f"}})"));
}

TEST_CASE("anthropic inbound: validation errors name the parameter") {
  CHECK(translate_err("{nope").param.empty());
  CHECK(translate_err("[1]").param.empty());
  CHECK(translate_err(R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})").param ==
        "model");
  CHECK(translate_err(R"({"model":"m","messages":[{"role":"user","content":"x"}]})").param ==
        "max_tokens");
  for (const char* bad : {"0", "-3", "1.5", "\"100\"", "null"}) {
    CAPTURE(bad);
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") +
                       R"("max_tokens":)" + bad + "}";
    CHECK(translate_err(body).param == "max_tokens");
  }
  CHECK(translate_err(R"({"model":"m","max_tokens":5})").param == "messages");
  CHECK(translate_err(R"({"model":"m","max_tokens":5,"messages":[]})").param == "messages");
  CHECK(translate_err(R"({"model":"m","max_tokens":5,"messages":{}})").param == "messages");
  auto role =
      translate_err(request(R"([{"role":"user","content":"a"},{"role":"tool","content":"b"}])"));
  CHECK(role.param == "messages");
  CHECK(role.message.find("messages.1.role") != std::string::npos);
  CHECK(translate_err(request(R"([{"role":"user","content":[{"type":"tool_result"}]}])")).param ==
        "messages");
  const std::string hi = R"([{"role":"user","content":"hi"}])";
  CHECK(translate_err(request(hi, R"(,"system":7)")).param == "system");
  CHECK(translate_err(request(hi, R"(,"stop_sequences":"END")")).param == "stop_sequences");
  CHECK(translate_err(request(hi, R"(,"temperature":"hot")")).param == "temperature");
  CHECK(translate_err(request(hi, R"(,"stream":"yes")")).param == "stream");
  CHECK(translate_err(request(hi, R"(,"tools":[{"description":"no name"}])")).param == "tools");
  CHECK(translate_err(request(hi, R"(,"tool_choice":{"type":"some"})")).param == "tool_choice");
}

TEST_CASE("anthropic inbound: a system message inside messages stays in its place") {
  // Claude Code with the mid-conversation-system beta sends these.
  json got = translate_ok(request(
      R"([{"role":"user","content":"a"},{"role":"system","content":[{"type":"text","text":"s1"},)"
      R"({"type":"text","text":"s2"}]},{"role":"assistant","content":"b"},)"
      R"({"role":"system","content":"s3"},{"role":"user","content":"c"}])"));
  const json& m = got["messages"];
  REQUIRE(m.size() == 5);
  CHECK(m[1] == json{{"role", "system"}, {"content", "s1\ns2"}});
  CHECK(m[3] == json{{"role", "system"}, {"content", "s3"}});
  CHECK(m[4]["role"] == "user");
  auto bad = translate_err(
      request(R"([{"role":"user","content":"a"},{"role":"system","content":[{"type":"image"}]}])"));
  CHECK(bad.param == "messages");
  CHECK(bad.message.find("messages.1.content") != std::string::npos);
}

TEST_CASE("anthropic inbound: thinking becomes reasoning_effort, by budget or effort") {
  auto effort = [](const char* extra) {
    auto r = anthropic_request_to_openai(request(R"([{"role":"user","content":"hi"}])", extra));
    REQUIRE(std::holds_alternative<anthropic_translation>(r));
    const auto& t = std::get<anthropic_translation>(r);
    CHECK(t.dropped.empty());
    return json::parse(t.chat_body).value("reasoning_effort", std::string("(none)"));
  };
  CHECK(effort(R"(,"thinking":{"type":"enabled","budget_tokens":1024})") == "low");
  CHECK(effort(R"(,"thinking":{"type":"enabled","budget_tokens":4096})") == "medium");
  CHECK(effort(R"(,"thinking":{"type":"enabled","budget_tokens":16384})") == "high");
  CHECK(effort(R"(,"thinking":{"type":"adaptive"})") == "medium");
  CHECK(effort(R"(,"thinking":{"type":"adaptive"},"output_config":{"effort":"low"})") == "low");
  CHECK(effort(R"(,"thinking":{"type":"enabled","budget_tokens":1024},)"
               R"("output_config":{"effort":"max"})") == "high");
  CHECK(effort(R"(,"thinking":{"type":"disabled"})") == "(none)");
  CHECK(effort("") == "(none)");
}

TEST_CASE("anthropic inbound: message_start tells the estimated input until the backend counts") {
  // An OpenAI-style stream counts only at the end: message_start carries the gateway's estimate,
  // marked, and message_delta the backend's count.
  anthropic_stream_encoder enc("claude-x");
  enc.expect_input(321);
  std::vector<sse_event> out;
  enc.on_chunk(text_chunk("Hi").dump(), out);
  enc.finish(usage{.input = 300, .output = 2}, out);
  auto got = named(out);
  REQUIRE(got.front().first == "message_start");
  CHECK(got.front().second["message"]["usage"]["input_tokens"] == 321);
  CHECK(got.front().second["message"]["usage"]["estimated"] == true);
  CHECK(got[got.size() - 2].second["usage"]["input_tokens"] == 300);
  CHECK_FALSE(got[got.size() - 2].second["usage"].contains("estimated"));
  // A backend that counts in its first chunk (Gemini): its count, not the estimate.
  anthropic_stream_encoder counted("claude-x");
  counted.expect_input(321);
  std::vector<sse_event> out2;
  counted.on_chunk(R"({"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],)"
                   R"("usage":{"prompt_tokens":9,"completion_tokens":1}})",
                   out2);
  auto start = named(out2).front().second;
  CHECK(start["message"]["usage"]["input_tokens"] == 9);
  CHECK_FALSE(start["message"]["usage"].contains("estimated"));
}

TEST_CASE("anthropic inbound: what a translation leaves out is listed, never silently") {
  auto r = anthropic_request_to_openai(
      R"({"model":"m","max_tokens":64,"top_k":5,"thinking":{"type":"enabled","budget_tokens":1024},)"
      R"("context_management":{"edits":[]},"output_config":{"effort":"high"},)"
      R"("system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],)"
      R"("tools":[{"type":"web_search_20250305","name":"web_search"},{"name":"Later",)"
      R"("defer_loading":true,"input_schema":{"type":"object"}},{"name":"Bash",)"
      R"("input_schema":{"type":"object"}}],)"
      R"("messages":[{"role":"user","content":[{"type":"text","text":"hi",)"
      R"("cache_control":{"type":"ephemeral"}}]}]})");
  REQUIRE(std::holds_alternative<anthropic_translation>(r));
  const auto& t = std::get<anthropic_translation>(r);
  // thinking and output_config's effort became reasoning_effort: not listed here (the gateway
  // lists `thinking` on a model that takes no reasoning control).
  CHECK(t.dropped == std::vector<std::string>{"cache_control", "tools.web_search_20250305",
                                              "tools.defer_loading", "top_k",
                                              "context_management"});
  CHECK_FALSE(t.untranslatable);
  json body = json::parse(t.chat_body);
  CHECK(body["reasoning_effort"] == "high");
  REQUIRE(body["tools"].size() == 1);
  CHECK(body["tools"][0]["function"]["name"] == "Bash");
  CHECK_FALSE(body.contains("top_k"));
  // Asking for no thinking loses nothing.
  auto off = anthropic_request_to_openai(request(R"([{"role":"user","content":"hi"}])",
                                                 R"(,"thinking":{"type":"disabled"})"));
  CHECK(std::get<anthropic_translation>(off).dropped.empty());
}

TEST_CASE("anthropic inbound: a block only Anthropic reads is refused by translation lanes only") {
  // The call is valid Anthropic: the pass-through lane sends it; a translation lane refuses it.
  for (const char* block : {R"({"type":"audio"})",
                            R"({"type":"document","source":{"type":"base64",)"
                            R"("media_type":"application/pdf","data":"JVBE"}})"}) {
    CAPTURE(block);
    auto r = anthropic_request_to_openai(
        request(std::string(R"([{"role":"user","content":[)") + block + "]}]"));
    REQUIRE(std::holds_alternative<anthropic_translation>(r));
    const auto& t = std::get<anthropic_translation>(r);
    REQUIRE(t.untranslatable);
    CHECK(t.untranslatable->param == "messages");
    CHECK(t.untranslatable->message.find("messages.0.content.0") != std::string::npos);
  }
}

TEST_CASE(
    "anthropic inbound: a response with reasoning and tool calls becomes the expected message") {
  std::string body = fixture("tool_response.openai.json");
  json want = json::parse(fixture("tool_response.anthropic.json"));
  CHECK(json::parse(openai_response_to_anthropic(body, "claude-sonnet-4-5")) == want);

  usage u;
  u.input = 10;
  u.cache_read = 5;
  u.cache_write = 7;
  u.output = 3;
  u.reasoning = 2;
  u.present = true;
  want["usage"] = json::parse(
      R"({"input_tokens":10,"cache_creation_input_tokens":7,"cache_read_input_tokens":5,"output_tokens":5})");
  CHECK(json::parse(openai_response_to_anthropic(body, "claude-sonnet-4-5", u)) == want);
}

TEST_CASE("anthropic inbound: finish reasons map to stop reasons") {
  auto reason = [](const std::string& finish, const std::string& message) {
    std::string body = R"({"id":"msg_keep","choices":[{"message":)" + message +
                       R"(,"finish_reason":)" + finish + "}]}";
    json m = json::parse(openai_response_to_anthropic(body, "c"));
    CHECK(m["id"] == "msg_keep");
    return m["stop_reason"].get<std::string>();
  };
  const std::string plain = R"({"role":"assistant","content":"x"})";
  const std::string with_call =
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]})";
  CHECK(reason(R"("stop")", plain) == "end_turn");
  CHECK(reason(R"("length")", plain) == "max_tokens");
  CHECK(reason(R"("tool_calls")", with_call) == "tool_use");
  CHECK(reason(R"("stop")", with_call) == "tool_use");
  CHECK(reason(R"("content_filter")", plain) == "end_turn");
  CHECK(reason("null", plain) == "end_turn");
  // Empty text is left out rather than sent as an empty block.
  json m = json::parse(openai_response_to_anthropic(
      R"({"id":"x","choices":[{"message":)" + with_call + R"(,"finish_reason":"tool_calls"}]})",
      "c"));
  REQUIRE(m["content"].size() == 1);
  CHECK(m["content"][0]["type"] == "tool_use");
}

TEST_CASE("anthropic inbound: a text then tool call stream becomes the expected events") {
  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> out;
  json first = text_chunk("");
  first["choices"][0]["delta"]["role"] = "assistant";
  enc.on_chunk(first.dump(), out);
  enc.on_chunk(text_chunk("Checking").dump(), out);
  enc.on_chunk(text_chunk(" now.").dump(), out);
  enc.on_chunk(tool_chunk({{"index", 0},
                           {"id", "call_7"},
                           {"type", "function"},
                           {"function", {{"name", "get_weather"}, {"arguments", ""}}}})
                   .dump(),
               out);
  enc.on_chunk(tool_chunk({{"index", 0}, {"function", {{"arguments", "{\"loc"}}}}).dump(), out);
  enc.on_chunk(
      tool_chunk({{"index", 0}, {"function", {{"arguments", "ation\":\"Paris\"}"}}}}).dump(), out);
  enc.on_chunk(
      R"({"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
      out);
  enc.on_chunk(
      R"({"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,)"
      R"("total_tokens":70,"prompt_tokens_details":{"cached_tokens":10}}})",
      out);
  enc.on_chunk("[DONE]", out);
  enc.finish(std::nullopt, out);

  std::vector<std::pair<std::string, json>> want = {
      {"message_start", json::parse(R"({"type":"message_start","message":{"id":"msg_chatcmpl-1",
        "type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,
        "stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,
        "cache_read_input_tokens":0,"output_tokens":0}}})")},
      {"content_block_start", json::parse(R"({"type":"content_block_start","index":0,
        "content_block":{"type":"text","text":""}})")},
      {"content_block_delta", json::parse(R"({"type":"content_block_delta","index":0,
        "delta":{"type":"text_delta","text":"Checking"}})")},
      {"content_block_delta", json::parse(R"({"type":"content_block_delta","index":0,
        "delta":{"type":"text_delta","text":" now."}})")},
      {"content_block_stop", json::parse(R"({"type":"content_block_stop","index":0})")},
      {"content_block_start", json::parse(R"({"type":"content_block_start","index":1,
        "content_block":{"type":"tool_use","id":"call_7","name":"get_weather","input":{}}})")},
      {"content_block_delta", json::parse(R"({"type":"content_block_delta","index":1,
        "delta":{"type":"input_json_delta","partial_json":"{\"loc"}})")},
      {"content_block_delta", json::parse(R"({"type":"content_block_delta","index":1,
        "delta":{"type":"input_json_delta","partial_json":"ation\":\"Paris\"}"}})")},
      {"content_block_stop", json::parse(R"({"type":"content_block_stop","index":1})")},
      {"message_delta", json::parse(R"({"type":"message_delta",
        "delta":{"stop_reason":"tool_use","stop_sequence":null},
        "usage":{"input_tokens":40,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,
        "output_tokens":20}})")},
      {"message_stop", json::parse(R"({"type":"message_stop"})")},
  };
  auto got = named(out);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second == want[i].second);
    CHECK(got[i].second["type"] == got[i].first);
  }

  // Once finished, further input changes nothing.
  std::vector<sse_event> late;
  enc.on_chunk(text_chunk("late").dump(), late);
  enc.finish(std::nullopt, late);
  enc.fail("late", late);
  CHECK(late.empty());
}

TEST_CASE("anthropic inbound: thinking, text and parallel tool calls each get their own block") {
  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> out;
  // The first chunk carries usage: message_start reports it.
  enc.on_chunk(R"({"id":"c2","choices":[{"index":0,"delta":{"reasoning_content":"Hmm"}}],)"
               R"("usage":{"prompt_tokens":9,"completion_tokens":0}})",
               out);
  enc.on_chunk(R"({"id":"c2","choices":[{"index":0,"delta":{"reasoning_content":" ok"}}]})", out);
  enc.on_chunk(R"({"id":"c2","choices":[{"index":0,"delta":{"content":"Two calls."}}]})", out);
  enc.on_chunk(
      tool_chunk({{"index", 0}, {"id", "a"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}})
          .dump(),
      out);
  enc.on_chunk(
      tool_chunk(
          {{"index", 1}, {"id", "b"}, {"function", {{"name", "g"}, {"arguments", "{\"x\":1}"}}}})
          .dump(),
      out);
  enc.on_chunk(R"({"id":"c2","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", out);
  usage u;
  u.input = 9;
  u.output = 7;
  u.reasoning = 2;
  u.present = true;
  enc.finish(u, out);

  auto got = named(out);
  std::vector<std::string> names;
  for (const auto& [name, data] : got) names.push_back(name);
  CHECK(names == std::vector<std::string>{
                     "message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "content_block_start",
                     "content_block_delta", "content_block_stop", "content_block_start",
                     "content_block_delta", "content_block_stop", "content_block_start",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"});
  CHECK(got[0].second["message"]["id"] == "msg_c2");
  CHECK(got[0].second["message"]["usage"]["input_tokens"] == 9);
  CHECK(got[1].second["content_block"] ==
        json::parse(R"({"type":"thinking","thinking":"","signature":""})"));
  CHECK(got[3].second["delta"] == json::parse(R"({"type":"thinking_delta","thinking":" ok"})"));
  CHECK(got[5].second["content_block"]["type"] == "text");
  CHECK(got[8].second["content_block"]["id"] == "a");
  CHECK(got[11].second["index"] == 3);
  CHECK(got[11].second["content_block"]["name"] == "g");
  CHECK(got[12].second["delta"]["partial_json"] == "{\"x\":1}");
  // A backend that says "stop" after tool calls still tells the client to run them.
  CHECK(got[14].second["delta"]["stop_reason"] == "tool_use");
  CHECK(got[14].second["usage"]["output_tokens"] == 9);
}

TEST_CASE("anthropic inbound: encoder output survives to_wire and sse_parser unchanged") {
  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> out;
  enc.on_chunk(text_chunk("line one\nline two \xe2\x9c\x93").dump(), out);
  enc.on_chunk(tool_chunk({{"index", 0},
                           {"id", "t"},
                           {"function", {{"name", "f"}, {"arguments", "{\"s\":\"a\\nb\"}"}}}})
                   .dump(),
               out);
  enc.finish(std::nullopt, out);
  enc.fail("ignored after finish", out);

  std::string wire;
  for (const auto& ev : out) wire += to_wire(ev);
  sse_parser parser;
  REQUIRE(parser.feed(wire));
  std::vector<sse_event> back;
  sse_event ev;
  while (parser.next(ev)) back.push_back(ev);
  CHECK_FALSE(parser.partial());
  REQUIRE(back.size() == out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    CHECK(back[i].event == out[i].event);
    CHECK(back[i].data == out[i].data);
  }
}

TEST_CASE("anthropic inbound: fail emits an error event and ends the stream") {
  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> out;
  enc.on_chunk(text_chunk("partial").dump(), out);
  const std::size_t before = out.size();
  enc.fail("upstream closed the connection", out);
  REQUIRE(out.size() == before + 1);
  CHECK(out.back().event == "error");
  CHECK(json::parse(out.back().data) == json::parse(meridian::core::anthropic_error_body(
                                            "api_error", "upstream closed the connection")));
  enc.finish(std::nullopt, out);
  CHECK(out.size() == before + 1);
}

TEST_CASE("anthropic inbound: the token estimate is deterministic and grows with content") {
  const std::string small = request(R"([{"role":"user","content":"abcdefgh"}])");
  CHECK(estimate_tokens(small) == estimate_tokens(small));
  CHECK(estimate_tokens(small) == 8 / 4 + 4);

  const std::string longer = request(R"([{"role":"user","content":"abcdefgh abcdefgh abcdefgh"}])");
  const std::string two = request(
      R"([{"role":"user","content":"abcdefgh"},{"role":"assistant","content":[{"type":"text","text":"ok"}]}])");
  const std::string system = request(R"([{"role":"user","content":"abcdefgh"}])",
                                     R"(,"system":[{"type":"text","text":"You are terse."}])");
  const std::string tool = request(R"([{"role":"user","content":"abcdefgh"}])",
                                   R"(,"tools":[{"name":"f","input_schema":{"type":"object"}}])");
  CHECK(estimate_tokens(longer) > estimate_tokens(small));
  CHECK(estimate_tokens(two) > estimate_tokens(small));
  CHECK(estimate_tokens(system) > estimate_tokens(small));
  CHECK(estimate_tokens(tool) > estimate_tokens(small) + 8);
  std::string fixture_body = fixture("claude_code_request.json");
  CHECK(estimate_tokens(fixture_body) > estimate_tokens(small));
}

TEST_CASE("anthropic inbound: deeply nested JSON is refused or ignored without recursion") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto err = translate_err(request(R"([{"role":"assistant","content":[{"type":"tool_use","id":"t",)"
                                   R"("name":"f","input":{"a":)" +
                                   deep + "}}]}]"));
  CHECK(err.message.find("deeper") != std::string::npos);

  // A hostile upstream's arguments fall back to an empty input.
  json args = {{"id", "x"},
               {"choices",
                {{{"message",
                   {{"role", "assistant"},
                    {"content", nullptr},
                    {"tool_calls",
                     {{{"id", "c"},
                       {"type", "function"},
                       {"function", {{"name", "f"}, {"arguments", deep}}}}}}}},
                  {"finish_reason", "tool_calls"}}}}};
  json m = json::parse(openai_response_to_anthropic(args.dump(), "c"));
  CHECK(m["content"][0]["input"] == json::object());

  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> out;
  enc.on_chunk(R"({"id":"d","choices":[{"index":0,"delta":{"content":)" + deep + "}}]}", out);
  CHECK(out.empty());
  CHECK(estimate_tokens(deep) == (deep.size() + 3) / 4);
}

TEST_CASE(
    "anthropic inbound: answers carry the gateway's provider and usage.cost, as OpenAI's do") {
  const std::string openai =
      R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]})";
  usage u;
  u.input = 10;
  u.output = 3;
  const answer_notes notes{"deepseek", 0.000125, true};
  auto whole = json::parse(openai_response_to_anthropic(openai, "claude-x", u, &notes));
  CHECK(whole["provider"] == "deepseek");
  CHECK(whole["usage"]["input_tokens"] == 10);
  CHECK(whole["usage"]["output_tokens"] == 3);
  CHECK(whole["usage"]["cost"].get<double>() == doctest::Approx(0.000125));
  CHECK(whole["usage"]["estimated"] == true);
  // Without notes nothing is added.
  CHECK_FALSE(
      json::parse(openai_response_to_anthropic(openai, "claude-x", u)).contains("provider"));

  anthropic_stream_encoder enc("claude-x");
  std::vector<sse_event> events;
  enc.on_chunk(R"({"choices":[{"index":0,"delta":{"content":"hi"}}]})", events);
  const answer_notes measured{"deepseek", 0.5, false};
  enc.finish(u, events, &measured);
  json delta;
  for (const auto& e : events)
    if (e.event == "message_delta") delta = json::parse(e.data);
  REQUIRE(delta.is_object());
  CHECK(delta["provider"] == "deepseek");
  CHECK(delta["usage"]["cost"].get<double>() == doctest::Approx(0.5));
  CHECK(delta["usage"]["output_tokens"] == 3);
  CHECK_FALSE(delta["usage"].contains("estimated"));
}

TEST_CASE("anthropic inbound: thinking Anthropic did not sign is left out of the pass-through") {
  // An earlier turn answered by another backend: its reasoning came back as a thinking block
  // with an empty signature, which Anthropic would reject.
  const std::string signed_only = request(
      R"([{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking",)"
      R"("thinking":"t","signature":"EqQB"},{"type":"text","text":"b"}]},)"
      R"({"role":"user","content":"c"}])");
  auto kept = std::get<anthropic_translation>(anthropic_request_to_openai(signed_only));
  CHECK_FALSE(kept.signed_body);
  CHECK(kept.pass_through_dropped.empty());

  auto mixed = std::get<anthropic_translation>(anthropic_request_to_openai(request(
      R"([{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking",)"
      R"("thinking":"from deepseek","signature":""},{"type":"text","text":"b"}]},)"
      R"({"role":"assistant","content":[{"type":"thinking","thinking":"t2"},)"
      R"({"type":"thinking","thinking":"t3","signature":"Sig"}]},{"role":"user","content":"c"}])")));
  REQUIRE(mixed.signed_body);
  CHECK(mixed.pass_through_dropped == std::vector<std::string>{"thinking.unsigned"});
  json body = json::parse(*mixed.signed_body);
  CHECK(body["messages"][1]["content"] == json::parse(R"([{"type":"text","text":"b"}])"));
  CHECK(body["messages"][2]["content"] ==
        json::parse(R"([{"type":"thinking","thinking":"t3","signature":"Sig"}])"));
  CHECK(body["model"] == "claude-x");
  // The translation lanes still replay the reasoning for backends that want it.
  CHECK(json::parse(mixed.chat_body)["messages"][1]["reasoning_content"] == "from deepseek");
}

TEST_CASE("anthropic inbound: valid Anthropic input a translation cannot carry waits for the lane") {
  // An image from Anthropic's Files API and a document inside a tool_result are valid Anthropic:
  // the pass-through sends them; only a translation lane refuses.
  for (const char* messages :
       {R"([{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f1"}}]}])",
        R"([{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"read","input":{}}]},)"
        R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[)"
        R"({"type":"document","source":{"type":"base64","media_type":"application/pdf",)"
        R"("data":"JVBE"}}]}]}])"}) {
    CAPTURE(messages);
    auto r = anthropic_request_to_openai(request(messages));
    REQUIRE(std::holds_alternative<anthropic_translation>(r));
    CHECK(std::get<anthropic_translation>(r).untranslatable);
  }
}

TEST_CASE("anthropic inbound: a tool_choice whose tools were all server tools is left out") {
  auto r = anthropic_request_to_openai(request(
      R"([{"role":"user","content":"hi"}])",
      R"(,"tools":[{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"any"})"));
  const auto& t = std::get<anthropic_translation>(r);
  json body = json::parse(t.chat_body);
  CHECK_FALSE(body.contains("tools"));
  CHECK_FALSE(body.contains("tool_choice"));
  CHECK(t.dropped == std::vector<std::string>{"tools.web_search_20250305", "tool_choice"});
}

TEST_CASE("anthropic inbound: a backend's `reasoning` comes back as thinking, as reasoning_content") {
  json msg = json::parse(openai_response_to_anthropic(
      R"({"id":"x","choices":[{"message":{"role":"assistant","reasoning":"hmm","content":"ok"},)"
      R"("finish_reason":"stop"}]})",
      "m"));
  CHECK(msg["content"][0] == json{{"type", "thinking"}, {"thinking", "hmm"}, {"signature", ""}});
  anthropic_stream_encoder enc("m");
  std::vector<sse_event> out;
  enc.on_chunk(R"({"id":"x","choices":[{"delta":{"reasoning":"hm"}}]})", out);
  bool thinking = false;
  for (const auto& e : out) thinking |= e.data.find("thinking_delta") != std::string::npos;
  CHECK(thinking);
}
