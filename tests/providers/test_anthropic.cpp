// Anthropic Messages dialect: request encoding, whole answers and SSE streams against fixtures.
#include <doctest/doctest.h>

#include "providers/anthropic.hpp"
#include "tests/providers/dialect_test_support.hpp"

namespace {

const dialect_target& target() {
  static const auto d = make_anthropic_dialect();
  static const dialect_target t{*d, "anthropic", "claude-sonnet-4-5", "claude-x"};
  return t;
}

}  // namespace

TEST_CASE("anthropic: a full OpenAI conversation encodes to the exact Messages request") {
  const std::string body = R"({
    "model": "anthropic/claude-sonnet-4-5", "stream": true,
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
      {"role": "user", "content": [
        {"type": "text", "text": "What is in this picture, and the weather there?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}]},
      {"role": "assistant", "content": null, "reasoning_content": "They want weather.",
       "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
      {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\":21}"},
      {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "14:05"}]},
      {"role": "user", "content": "Thanks. Summarise."}
    ],
    "tools": [
      {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
      {"type": "function", "function": {"name": "get_time"}}],
    "tool_choice": "required", "max_completion_tokens": 512, "stop": "END",
    "temperature": 0.2, "top_p": 0.9, "seed": 7, "user": "u-17"
  })";
  upstream_request up = encode_ok(body, "claude-sonnet-4-5");
  CHECK(up.path == "/messages");
  REQUIRE(up.headers.size() == 1);
  CHECK(up.headers[0].first == "anthropic-version");
  CHECK(up.headers[0].second == "2023-06-01");
  json expected = json::parse(R"({
    "model": "claude-sonnet-4-5",
    "system": "You are terse.\n\nUse metric units.",
    "stream": true, "max_tokens": 512, "stop_sequences": ["END"],
    "temperature": 0.2, "top_p": 0.9, "metadata": {"user_id": "u-17"},
    "messages": [
      {"role": "user", "content": [
        {"type": "text", "text": "What is in this picture, and the weather there?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]},
      {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "{\"temp_c\":21}"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": "14:05"},
        {"type": "text", "text": "Thanks. Summarise."}]}
    ],
    "tools": [
      {"name": "get_weather", "description": "Current weather",
       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
      {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "any"}
  })");
  CHECK(json::parse(up.body) == expected);
}

TEST_CASE("anthropic: max_tokens defaults to 4096 and the older max_tokens is honoured") {
  json j = encoded_body(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  CHECK(j["max_tokens"] == 4096);
  CHECK_FALSE(j.contains("stream"));
  CHECK_FALSE(j.contains("system"));
  CHECK(j["messages"] ==
        json::parse(R"([{"role":"user","content":[{"type":"text","text":"hi"}]}])"));
  j = encoded_body(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":77})");
  CHECK(j["max_tokens"] == 77);
  j = encoded_body(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"response_format":{"type":"json_object"}})");
  CHECK(j["stop_sequences"] == json::parse(R"(["a","b"])"));
  CHECK_FALSE(j.contains("response_format"));
}

TEST_CASE("anthropic: tool_choice maps to auto, none, any and a named tool") {
  auto choice = [](const std::string& tc) {
    return encoded_body(
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":)" + tc +
        "}")["tool_choice"];
  };
  CHECK(choice(R"("auto")") == json::parse(R"({"type":"auto"})"));
  CHECK(choice(R"("none")") == json::parse(R"({"type":"none"})"));
  CHECK(choice(R"("required")") == json::parse(R"({"type":"any"})"));
  CHECK(choice(R"({"type":"function","function":{"name":"f"}})") ==
        json::parse(R"({"type":"tool","name":"f"})"));
  json j = encoded_body(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false})");
  CHECK(j["tool_choice"] == json::parse(R"({"type":"auto","disable_parallel_tool_use":true})"));
}

TEST_CASE("anthropic: consecutive user messages merge so that roles alternate") {
  json j = encoded_body(
      R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"},{"role":"assistant","content":"d"}]})");
  CHECK(j["messages"] == json::parse(R"([
    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
    {"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}])"));
}

TEST_CASE("anthropic: what the Messages API cannot carry is listed as dropped, by name") {
  // Everything carried: nothing listed.
  CHECK(encode_ok(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":9,)"
                  R"("temperature":0.2,"top_p":0.9,"stop":["z"],"user":"u","stream":true,)"
                  R"("stream_options":{"include_usage":true}})")
            .dropped.empty());
  auto up = encode_ok(
      R"({"model":"m","seed":7,"logprobs":true,"response_format":{"type":"json_object"},)"
      R"("messages":[{"role":"user","content":"a"},)"
      R"({"role":"assistant","content":"b","reasoning_content":"thought"},)"
      R"({"role":"system","content":"late"},{"role":"user","content":"c"}],"presence_penalty":null})");
  CHECK(up.dropped == std::vector<std::string>{"logprobs", "response_format", "seed",
                                               "reasoning_content", "system.position"});
  // A leading system prompt is where the dialect wants it; empty reasoning is not reasoning.
  CHECK(encode_ok(R"({"model":"m","messages":[{"role":"system","content":"s"},)"
                  R"({"role":"user","content":"a"},{"role":"assistant","content":"b",)"
                  R"("reasoning_content":""}]})")
            .dropped.empty());
}

TEST_CASE("anthropic: requests it cannot express are refused with the parameter named") {
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{not json"}}]}]})")
          .param == "messages[0].tool_calls");
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})").param ==
        "n");
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{}}}})")
          .param == "response_format");
  CHECK(
      encode_err(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})")
          .param == "messages[0].content");
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"function","content":"x"}]})").param ==
        "messages[0].role");
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})")
            .param == "max_tokens");
  CHECK(encode_err(
            R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})")
            .param == "tool_choice");
  CHECK(encode_err(R"({"model":"m","messages":[{"role":"tool","content":"x"}]})").param ==
        "messages[0].tool_call_id");
}

TEST_CASE("anthropic: a text answer with cache usage decodes to exact buckets") {
  std::optional<usage> tokens;
  json j = decode_ok(read_fixture("message_text_cache.json"), tokens);
  CHECK(j == json::parse(R"({
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "model": "claude-sonnet-4-5",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "The capital of France is Paris."}}],
    "usage": {"prompt_tokens": 1709, "completion_tokens": 12, "total_tokens": 1721,
              "prompt_tokens_details": {"cached_tokens": 1500},
              "completion_tokens_details": {"reasoning_tokens": 0}}
  })"));
  REQUIRE(tokens);
  CHECK(tokens->present);
  CHECK(tokens->input == 21);
  CHECK(tokens->cache_read == 1500);
  CHECK(tokens->cache_write == 188);
  CHECK(tokens->output == 12);
  CHECK(tokens->reasoning == 0);
}

TEST_CASE("anthropic: thinking and tool_use blocks decode to reasoning_content and tool_calls") {
  std::optional<usage> tokens;
  json j = decode_ok(read_fixture("message_thinking_tool_use.json"), tokens);
  CHECK(j == json::parse(R"({
    "id": "msg_01Aq9w938a90dw8q", "object": "chat.completion", "model": "claude-sonnet-4-5",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
      "role": "assistant",
      "content": "I'll check the weather in both cities.",
      "reasoning_content": "The user wants the weather in two cities. I should call get_weather for each.",
      "tool_calls": [
        {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}},
        {"id": "toolu_01B2c3d4e5f6g7h8i9j0k1l2", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"New York, NY\",\"unit\":\"celsius\"}"}}]}}],
    "usage": {"prompt_tokens": 2520, "completion_tokens": 161, "total_tokens": 2681,
              "prompt_tokens_details": {"cached_tokens": 2048},
              "completion_tokens_details": {"reasoning_tokens": 0}}
  })"));
  REQUIRE(tokens);
  CHECK(tokens->input == 472);
  CHECK(tokens->cache_read == 2048);
  CHECK(tokens->cache_write == 0);
  CHECK(tokens->output == 161);
}

TEST_CASE("anthropic: stop reasons, missing usage and error bodies") {
  std::optional<usage> tokens;
  json j = decode_ok(
      R"({"id":"m1","type":"message","role":"assistant","content":[{"type":"text","text":"ab"}],"stop_reason":"max_tokens"})",
      tokens);
  CHECK(j["choices"][0]["finish_reason"] == "length");
  CHECK_FALSE(j.contains("usage"));
  CHECK_FALSE(tokens);
  j = decode_ok(R"({"id":"m2","content":[],"stop_reason":"stop_sequence"})", tokens);
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["choices"][0]["message"]["content"].is_null());
  auto err = target().d.decode_chat(
      R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})", "m");
  REQUIRE(std::holds_alternative<decode_error>(err));
  CHECK(std::get<decode_error>(err).message == "invalid_request_error: bad");
  CHECK(std::holds_alternative<decode_error>(target().d.decode_chat("<html>", "m")));
  CHECK(std::holds_alternative<decode_error>(target().d.decode_chat(R"({"content":7})", "m")));
}

TEST_CASE("anthropic: a streamed text answer with cache usage, in any split") {
  stream_run run = run_all_splits("stream_text_cache.sse");
  CHECK_FALSE(run.failed);
  CHECK(run.complete);
  CHECK(normalised(run.chunks, "msg_01K9p2vHk3xZ") ==
        json::parse(read_fixture("stream_text_cache.expected.json")));
  REQUIRE(run.tokens);
  CHECK(run.tokens->input == 14);
  CHECK(run.tokens->cache_read == 1024);
  CHECK(run.tokens->cache_write == 0);
  CHECK(run.tokens->output == 9);
}

TEST_CASE("anthropic: streamed thinking and tool calls, cache counted in message_delta") {
  stream_run run = run_all_splits("stream_thinking_tool_use.sse");
  CHECK_FALSE(run.failed);
  CHECK(run.complete);
  CHECK(normalised(run.chunks, "msg_014p7gG3wDgGV9EUtLvnow3U") ==
        json::parse(read_fixture("stream_thinking_tool_use.expected.json")));
  REQUIRE(run.tokens);
  CHECK(run.tokens->input == 50);
  CHECK(run.tokens->cache_read == 300);
  CHECK(run.tokens->cache_write == 120);
  CHECK(run.tokens->output == 89);
  CHECK(run.tokens->reasoning == 0);
}

TEST_CASE("anthropic: an error event mid-stream stops the decoder") {
  stream_run run = run_all_splits("stream_overloaded.sse");
  CHECK(run.failed);
  CHECK_FALSE(run.complete);
  CHECK(run.error == "overloaded_error: Overloaded");
  CHECK(run.chunks.size() == 2);  // the role chunk and "Once upon"
  REQUIRE(run.tokens);
  CHECK(run.tokens->input == 30);
}

TEST_CASE("anthropic: a non-JSON event is a stream error") {
  auto decoder = target().d.stream("m");
  std::vector<std::string> out;
  CHECK_FALSE(decoder->on_event({"content_block_delta", "{oops", ""}, out));
  CHECK_FALSE(decoder->error().empty());
  CHECK(out.empty());
  CHECK_FALSE(decoder->tokens());
}

TEST_CASE("anthropic: 529 overloaded is retryable, client errors are not") {
  CHECK(target().d.kind() == meridian::config::dialect_kind::anthropic);
  CHECK(target().d.retryable(529, R"({"type":"error","error":{"type":"overloaded_error"}})"));
  CHECK(target().d.retryable(503, ""));
  CHECK(target().d.retryable(429, R"({"type":"error","error":{"type":"rate_limit_error"}})"));
  CHECK_FALSE(target().d.retryable(400, R"({"type":"error"})"));
  CHECK_FALSE(target().d.retryable(401, ""));
}

TEST_CASE("anthropic: an hour's cache writes are counted apart and priced at 2x input") {
  // Claude Code asks for 1h caching; Anthropic bills those writes at 2x input, 5m ones at 1.25x.
  const std::string body = R"({"id":"msg_1","type":"message","role":"assistant","model":"m",
      "content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{
      "input_tokens":10,"cache_read_input_tokens":0,"cache_creation_input_tokens":400,
      "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":300},
      "output_tokens":5}})";
  std::optional<usage> tokens;
  decode_ok(body, tokens);
  REQUIRE(tokens);
  CHECK(tokens->cache_write == 400);
  CHECK(tokens->cache_write_1h == 300);
  CHECK(tokens->prompt_total() == 410);  // the split is inside cache_write, not beside it
  model_info m;
  m.input = 3;
  m.cache_write = 3.75;
  m.output = 15;
  // 10 x 3 + 100 x 3.75 + 300 x 6 + 5 x 15 micro-USD.
  CHECK(cost_usd(*tokens, m) == doctest::Approx((30 + 375 + 1800 + 75) / 1e6));
  usage five_minutes = *tokens;
  five_minutes.cache_write_1h = 0;
  CHECK(cost_usd(five_minutes, m) == doctest::Approx((30 + 1500 + 75) / 1e6));

  // Streamed: message_start carries the split.
  const std::string wire =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
      "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{"
      "\"input_tokens\":10,\"cache_creation_input_tokens\":400,\"cache_creation\":{"
      "\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":300},\"output_tokens\":1}}}"
      "\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\nevent: message_stop\ndata: "
      "{\"type\":\"message_stop\"}\n\n";
  auto run = run_stream(wire, {wire.size()});
  REQUIRE(run.tokens);
  CHECK(run.tokens->cache_write == 400);
  CHECK(run.tokens->cache_write_1h == 300);
  CHECK(run.tokens->output == 5);
}

TEST_CASE("anthropic: cache breakpoints on the stable prefix, never over the client's own") {
  std::string body =
      R"({"model":"m","tools":[{"name":"a"},{"name":"b"}],"system":"S","messages":[)"
      R"({"role":"user","content":"q1"},{"role":"assistant","content":[{"type":"text","text":"a1"}]},)"
      R"({"role":"user","content":"q2"}]})";
  REQUIRE(meridian::providers::add_cache_breakpoints(body));
  const auto j = nlohmann::json::parse(body);
  CHECK(j["tools"][1]["cache_control"]["type"] == "ephemeral");
  CHECK_FALSE(j["tools"][0].contains("cache_control"));
  CHECK(j["system"][0]["text"] == "S");
  CHECK(j["system"][0]["cache_control"]["type"] == "ephemeral");
  CHECK(j["messages"][1]["content"][0]["cache_control"]["type"] == "ephemeral");
  CHECK(j["messages"][2]["content"] == "q2");
  std::string own =
      R"({"system":[{"type":"text","text":"S","cache_control":{"type":"ephemeral"}}]})";
  const std::string before = own;
  CHECK_FALSE(meridian::providers::add_cache_breakpoints(own));
  CHECK(own == before);
  std::string single = R"({"messages":[{"role":"user","content":"only"}]})";
  CHECK_FALSE(meridian::providers::add_cache_breakpoints(single));  // nothing stable to mark yet
}
