// Gemini dialect: request encoding, whole answers and SSE streams against fixtures.
#include <doctest/doctest.h>

#include "providers/gemini.hpp"
#include "tests/providers/dialect_test_support.hpp"

namespace {

const dialect_target& target() {
  static const auto d = make_gemini_dialect();
  static const dialect_target t{*d, "gemini", "gemini-2.5-flash", "gemini-2.5-flash"};
  return t;
}

}  // namespace

TEST_CASE("gemini: a full OpenAI conversation encodes to the exact generateContent request") {
  const std::string body = R"({
    "model": "google/gemini-2.5-flash", "stream": true,
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
      {"role": "user", "content": [
        {"type": "text", "text": "What is in this picture, and the weather there?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/diagram.webp"}}]},
      {"role": "assistant", "content": "Let me look.", "reasoning_content": "They want weather.",
       "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
      {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\":21}"},
      {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "14:05"}]},
      {"role": "user", "content": "Thanks. Summarise."}
    ],
    "tools": [
      {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
       "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                      "properties": {"city": {"type": "string"},
                                     "additionalProperties": {"type": "object", "additionalProperties": false}},
                      "required": ["city"], "additionalProperties": false}}},
      {"type": "function", "function": {"name": "get_time"}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "max_tokens": 512, "stop": ["END"], "temperature": 0.2, "top_p": 0.9, "seed": 7
  })";
  upstream_request up = encode_ok(body, "gemini-2.5-flash");
  CHECK(up.path == "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  CHECK(up.headers.empty());
  json expected = json::parse(R"({
    "systemInstruction": {"parts": [{"text": "You are terse.\n\nUse metric units."}]},
    "contents": [
      {"role": "user", "parts": [
        {"text": "What is in this picture, and the weather there?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/diagram.webp"}}]},
      {"role": "model", "parts": [
        {"text": "Let me look."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}}]},
      {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": {"temp_c": 21}}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
        {"text": "Thanks. Summarise."}]}
    ],
    "tools": [{"functionDeclarations": [
      {"name": "get_weather", "description": "Current weather",
       "parameters": {"type": "object",
                      "properties": {"city": {"type": "string"}, "additionalProperties": {"type": "object"}},
                      "required": ["city"]}},
      {"name": "get_time"}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"maxOutputTokens": 512, "stopSequences": ["END"], "temperature": 0.2,
                         "topP": 0.9, "seed": 7}
  })");
  CHECK(json::parse(up.body) == expected);
}

TEST_CASE("gemini: non-streamed path, response formats and tool_choice modes") {
  upstream_request up = encode_ok(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
                                  "models/gemini-2.5-pro");
  CHECK(up.path == "/models/gemini-2.5-pro:generateContent");
  CHECK(json::parse(up.body) ==
        json::parse(R"({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})"));

  json j = encoded_body(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"max_completion_tokens":64,"max_tokens":9})");
  CHECK(j["generationConfig"] ==
        json::parse(R"({"responseMimeType":"application/json","maxOutputTokens":64})"));
  j = encoded_body(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}}}})");
  CHECK(j["generationConfig"] == json::parse(R"({"responseMimeType":"application/json",
        "responseSchema":{"type":"object","properties":{"a":{"type":"integer"}}}})"));

  auto mode = [](const std::string& tc) {
    return encoded_body(
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":)" + tc +
        "}")["toolConfig"]["functionCallingConfig"];
  };
  CHECK(mode(R"("auto")") == json::parse(R"({"mode":"AUTO"})"));
  CHECK(mode(R"("none")") == json::parse(R"({"mode":"NONE"})"));
  CHECK(mode(R"("required")") == json::parse(R"({"mode":"ANY"})"));
}

TEST_CASE("gemini: what generateContent cannot carry is listed as dropped") {
  CHECK(encode_ok(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":9,)"
                  R"("temperature":0.2,"seed":3,"presence_penalty":0.1,"frequency_penalty":0.1,)"
                  R"("response_format":{"type":"json_object"},"stream":false})")
            .dropped.empty());
  auto up = encode_ok(R"({"model":"m","user":"u","parallel_tool_calls":false,)"
                      R"("messages":[{"role":"user","content":"a"},{"role":"system","content":"s"}]})");
  CHECK(up.dropped == std::vector<std::string>{"parallel_tool_calls", "user", "system.position"});
}

TEST_CASE("gemini: reasoning_effort becomes a thinking budget that returns the thoughts") {
  auto config = [](const char* effort) {
    const std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") +
                             R"("reasoning_effort":")" + effort + R"("})";
    auto up = encode_ok(body);
    CHECK(up.dropped.empty());
    return json::parse(up.body)["generationConfig"]["thinkingConfig"];
  };
  CHECK(config("low") == json{{"thinkingBudget", 1024}, {"includeThoughts", true}});
  CHECK(config("medium") == json{{"thinkingBudget", 8192}, {"includeThoughts", true}});
  CHECK(config("high") == json{{"thinkingBudget", 24576}, {"includeThoughts", true}});
  CHECK(config("none") == json{{"thinkingBudget", 0}, {"includeThoughts", false}});
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
                   R"("reasoning_effort":"extreme"})")
            .param == "reasoning_effort");
}

TEST_CASE("gemini: requests it cannot express are refused with the parameter named") {
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"1"}]})")
          .param == "messages[1].tool_call_id");
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]})")
          .param == "messages[0].tool_calls");
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":3})").param ==
        "n");
  CHECK(
      encode_err(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})").param ==
      "stop");
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"code_interpreter"}]})")
          .param == "tools");
  CHECK(encode_err(
            R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]})")
            .param == "messages[0].content");
}

TEST_CASE("gemini: a text answer with cached tokens decodes to exact buckets") {
  std::optional<usage> tokens;
  json j = decode_ok(read_fixture("generate_text_cached.json"), tokens);
  CHECK(j == json::parse(R"({
    "id": "Wf3kaPqXIa2HkdUPvJq6yAc", "object": "chat.completion", "model": "gemini-2.5-flash",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Paris is the capital of France."}}],
    "usage": {"prompt_tokens": 2105, "completion_tokens": 8, "total_tokens": 2113,
              "prompt_tokens_details": {"cached_tokens": 2048},
              "completion_tokens_details": {"reasoning_tokens": 0}}
  })"));
  REQUIRE(tokens);
  CHECK(tokens->present);
  CHECK(tokens->input == 57);
  CHECK(tokens->cache_read == 2048);
  CHECK(tokens->cache_write == 0);
  CHECK(tokens->output == 8);
  CHECK(tokens->reasoning == 0);
}

TEST_CASE("gemini: thought parts and function calls decode to reasoning_content and tool_calls") {
  std::optional<usage> tokens;
  json j = decode_ok(read_fixture("generate_function_call_thinking.json"), tokens);
  CHECK(j == json::parse(R"({
    "id": "kZ7laLyQBbG0nvgPo8WJ4Ak", "object": "chat.completion", "model": "gemini-2.5-flash",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
      "role": "assistant", "content": null,
      "reasoning_content": "**Checking two things**\n\nThe user wants the Boston weather and the local time.",
      "tool_calls": [
        {"id": "call_0__ts__CiQB0e2Kb8tV2yZ1c3mWq9Xf", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
        {"id": "call_1", "type": "function",
         "function": {"name": "get_time", "arguments": "{\"timezone\":\"America/New_York\"}"}}]}}],
    "usage": {"prompt_tokens": 118, "completion_tokens": 243, "total_tokens": 361,
              "prompt_tokens_details": {"cached_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 212}}
  })"));
  REQUIRE(tokens);
  CHECK(tokens->input == 118);
  CHECK(tokens->cache_read == 0);
  CHECK(tokens->output == 31);
  CHECK(tokens->reasoning == 212);
}

TEST_CASE("gemini: a call's thoughtSignature rides in its id and goes back with the call") {
  // The signature Gemini put beside the call comes back on the same functionCall part in the
  // next turn, whatever client carried the id (base64's + and / travel as - and _).
  const std::string id = "call_0__ts__Ab-c_d";
  json j = encoded_body(R"({"model":"m","messages":[{"role":"user","content":"weather?"},)"
                        R"({"role":"assistant","content":null,"tool_calls":[{"id":")" + id +
                        R"(","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},)"
                        R"({"role":"tool","tool_call_id":")" + id + R"(","content":"sunny"}]})");
  const json& call = j["contents"][1]["parts"][0];
  CHECK(call["thoughtSignature"] == "Ab+c/d==");
  CHECK(call["functionCall"]["name"] == "get_weather");
  CHECK(j["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather");
  // A call without a signature sends none.
  j = encoded_body(R"({"model":"m","messages":[{"role":"user","content":"weather?"},)"
                   R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1",)"
                   R"("type":"function","function":{"name":"f","arguments":"{}"}}]}]})");
  CHECK_FALSE(j["contents"][1]["parts"][0].contains("thoughtSignature"));
}

TEST_CASE("gemini: finish reasons, blocked prompts and error bodies") {
  std::optional<usage> tokens;
  auto finish = [&](const std::string& reason) {
    return decode_ok(
        R"({"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":")" +
            reason + R"("}]})",
        tokens)["choices"][0]["finish_reason"];
  };
  CHECK(finish("MAX_TOKENS") == "length");
  CHECK(finish("SAFETY") == "content_filter");
  CHECK(finish("RECITATION") == "content_filter");
  CHECK(finish("PROHIBITED_CONTENT") == "content_filter");
  CHECK(finish("STOP") == "stop");
  CHECK_FALSE(tokens);
  json j = decode_ok(
      R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}})",
      tokens);
  CHECK(j["choices"][0]["finish_reason"] == "content_filter");
  CHECK(j["choices"][0]["message"]["content"].is_null());
  REQUIRE(tokens);
  CHECK(tokens->input == 7);
  auto err = target().d.decode_chat(
      R"({"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}})", "m");
  REQUIRE(std::holds_alternative<decode_error>(err));
  CHECK(std::get<decode_error>(err).message == "INVALID_ARGUMENT: API key not valid.");
  CHECK(std::holds_alternative<decode_error>(target().d.decode_chat(R"({"candidates":[]})", "m")));
  CHECK(std::holds_alternative<decode_error>(target().d.decode_chat("not json", "m")));
}

TEST_CASE("gemini: a streamed text answer, in any split") {
  stream_run run = run_all_splits("stream_text.sse");
  CHECK_FALSE(run.failed);
  CHECK(run.complete);
  CHECK(normalised(run.chunks, "a3HlaJ7dD4yFkdUP2cKUqQs") ==
        json::parse(read_fixture("stream_text.expected.json")));
  REQUIRE(run.tokens);
  CHECK(run.tokens->input == 9);
  CHECK(run.tokens->cache_read == 0);
  CHECK(run.tokens->output == 12);
  CHECK(run.tokens->reasoning == 0);
}

TEST_CASE("gemini: streamed thoughts and a function call with cache and thinking usage") {
  stream_run run = run_all_splits("stream_thinking_function_call.sse");
  CHECK_FALSE(run.failed);
  CHECK(run.complete);
  CHECK(normalised(run.chunks, "q4PlaM2tI8-BkdUPtpvSmQ0") ==
        json::parse(read_fixture("stream_thinking_function_call.expected.json")));
  REQUIRE(run.tokens);
  CHECK(run.tokens->input == 226);
  CHECK(run.tokens->cache_read == 1024);
  CHECK(run.tokens->output == 18);
  CHECK(run.tokens->reasoning == 64);
}

TEST_CASE("gemini: an error event mid-stream stops the decoder") {
  stream_run run = run_all_splits("stream_overloaded.sse");
  CHECK(run.failed);
  CHECK_FALSE(run.complete);
  CHECK(run.error == "UNAVAILABLE: The model is overloaded. Please try again later.");
  CHECK(run.chunks.size() == 2);  // the role chunk and "Once upon"
  CHECK_FALSE(run.tokens);
}

TEST_CASE("gemini: uses the default retry classification") {
  CHECK(target().d.kind() == meridian::config::dialect_kind::gemini);
  CHECK(target().d.retryable(503, ""));
  CHECK(target().d.retryable(429, R"({"error":{"status":"RESOURCE_EXHAUSTED"}})"));
  CHECK_FALSE(target().d.retryable(400, ""));
  CHECK_FALSE(target().d.retryable(404, ""));
}
