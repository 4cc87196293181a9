// Anthropic Messages dialect: request encoding, whole answers and SSE streams against fixtures.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/anthropic.hpp"

using namespace meridian::providers;
using json = nlohmann::json;

namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream f(std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/anthropic/" + name,
                  std::ios::binary);
  REQUIRE(f.good());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

const dialect& anthropic() {
  static const auto d = make_anthropic_dialect();
  return *d;
}

upstream_request encode_ok(const std::string& body, const std::string& model = "claude-x") {
  auto parsed = parse_chat_request(body);
  REQUIRE(std::holds_alternative<chat_request>(parsed));
  auto r = anthropic().encode_chat(body, std::get<chat_request>(parsed), model);
  REQUIRE(std::holds_alternative<upstream_request>(r));
  return std::get<upstream_request>(r);
}

request_error encode_err(const std::string& body) {
  auto parsed = parse_chat_request(body);
  REQUIRE(std::holds_alternative<chat_request>(parsed));
  auto r = anthropic().encode_chat(body, std::get<chat_request>(parsed), "claude-x");
  REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

json encoded_body(const std::string& body) {
  return json::parse(encode_ok(body).body);
}

struct stream_run {
  std::vector<std::string> chunks;
  bool failed = false;
  std::string error;
  bool complete = false;
  std::optional<usage> tokens;
};

// Feeds `wire` to a fresh parser and decoder in pieces ending at `cuts` (ascending).
stream_run run_stream(const std::string& wire, const std::vector<std::size_t>& cuts) {
  stream_run run;
  sse_parser parser;
  auto decoder = anthropic().stream("claude-sonnet-4-5");
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    REQUIRE(parser.feed(std::string_view(wire).substr(at, cut - at)));
    at = cut;
    sse_event ev;
    while (!run.failed && parser.next(ev)) {
      if (!decoder->on_event(ev, run.chunks)) {
        run.failed = true;
        run.error = decoder->error();
      }
    }
  }
  run.complete = decoder->complete();
  run.tokens = decoder->tokens();
  return run;
}

// Whole, byte by byte and in seeded random splits: all must decode alike.
std::vector<std::vector<std::size_t>> splits(std::size_t size) {
  std::vector<std::vector<std::size_t>> out{{size}};
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i <= size; ++i) bytes.push_back(i);
  out.push_back(bytes);
  for (unsigned seed : {1u, 7u, 42u, 2024u}) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> step(1, 64);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0; at < size;) {
      at = std::min(size, at + step(rng));
      cuts.push_back(at);
    }
    out.push_back(cuts);
  }
  return out;
}

// Chunks without `created` (a clock reading), checked for the fields every chunk shares.
json normalised(const std::vector<std::string>& chunks, const std::string& id) {
  json out = json::array();
  for (const std::string& c : chunks) {
    json j = json::parse(c);
    CHECK(j["id"] == id);
    CHECK(j["object"] == "chat.completion.chunk");
    CHECK(j["model"] == "claude-sonnet-4-5");
    CHECK(j["created"].is_number_integer());
    j.erase("id");
    j.erase("object");
    j.erase("model");
    j.erase("created");
    out.push_back(std::move(j));
  }
  return out;
}

stream_run run_all_splits(const std::string& fixture) {
  const std::string wire = read_fixture(fixture);
  stream_run first;
  bool have_first = false;
  for (const auto& cuts : splits(wire.size())) {
    stream_run run = run_stream(wire, cuts);
    if (!have_first) {
      first = run;
      have_first = true;
      continue;
    }
    REQUIRE(run.chunks.size() == first.chunks.size());
    for (std::size_t i = 0; i < run.chunks.size(); ++i) {
      json a = json::parse(run.chunks[i]), b = json::parse(first.chunks[i]);
      a.erase("created");
      b.erase("created");
      CHECK(a == b);
    }
    CHECK(run.failed == first.failed);
    CHECK(run.complete == first.complete);
  }
  return first;
}

json decode_ok(const std::string& body, std::optional<usage>& tokens) {
  auto r = anthropic().decode_chat(body, "claude-sonnet-4-5");
  REQUIRE(std::holds_alternative<decoded_chat>(r));
  tokens = std::get<decoded_chat>(r).tokens;
  json j = json::parse(std::get<decoded_chat>(r).body);
  CHECK(j["created"].is_number_integer());
  j.erase("created");
  return j;
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
  auto err = anthropic().decode_chat(
      R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})", "m");
  REQUIRE(std::holds_alternative<decode_error>(err));
  CHECK(std::get<decode_error>(err).message == "invalid_request_error: bad");
  CHECK(std::holds_alternative<decode_error>(anthropic().decode_chat("<html>", "m")));
  CHECK(std::holds_alternative<decode_error>(anthropic().decode_chat(R"({"content":7})", "m")));
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
  auto decoder = anthropic().stream("m");
  std::vector<std::string> out;
  CHECK_FALSE(decoder->on_event({"content_block_delta", "{oops", ""}, out));
  CHECK_FALSE(decoder->error().empty());
  CHECK(out.empty());
  CHECK_FALSE(decoder->tokens());
}

TEST_CASE("anthropic: 529 overloaded is retryable, client errors are not") {
  CHECK(anthropic().kind() == meridian::config::dialect_kind::anthropic);
  CHECK(anthropic().retryable(529, R"({"type":"error","error":{"type":"overloaded_error"}})"));
  CHECK(anthropic().retryable(503, ""));
  CHECK(anthropic().retryable(429, R"({"type":"error","error":{"type":"rate_limit_error"}})"));
  CHECK_FALSE(anthropic().retryable(400, R"({"type":"error"})"));
  CHECK_FALSE(anthropic().retryable(401, ""));
}
