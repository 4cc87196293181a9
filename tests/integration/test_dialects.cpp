// Every dialect through the real binary: OpenAI and Anthropic clients against OpenAI,
// Anthropic and Gemini backends simulated by meridian-sim, with exact tokens and cost.
#include <doctest/doctest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "tests/integration/dialect_fixture.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const json k_weather_tool = json::parse(R"({"type":"function","function":{"name":"get_weather",
  "description":"Weather for a city","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}})");

// Reads a whole OpenAI stream; returns content, tool call arguments by index and the usage chunk.
struct openai_stream_result {
  std::string content, reasoning;
  std::map<int, std::string> tool_args;
  std::map<int, std::string> tool_names;
  json usage;
  std::string finish;
  bool done = false;
};

openai_stream_result read_openai_stream(stream_client& c) {
  openai_stream_result r;
  while (auto ev = c.next_event()) {
    if (*ev == "[DONE]") {
      r.done = true;
      continue;
    }
    auto j = json::parse(*ev);
    REQUIRE_FALSE(j.contains("error"));
    if (j.contains("usage") && j["usage"].is_object()) r.usage = j["usage"];
    if (j["choices"].empty()) continue;
    const auto& ch = j["choices"][0];
    const auto& d = ch["delta"];
    if (d.contains("content") && d["content"].is_string())
      r.content += d["content"].get<std::string>();
    if (d.contains("reasoning_content") && d["reasoning_content"].is_string())
      r.reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("tool_calls"))
      for (const auto& tc : d["tool_calls"]) {
        int i = tc["index"].get<int>();
        if (tc.contains("function")) {
          if (tc["function"].contains("name"))
            r.tool_names[i] += tc["function"]["name"].get<std::string>();
          if (tc["function"].contains("arguments"))
            r.tool_args[i] += tc["function"]["arguments"].get<std::string>();
        }
      }
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
      r.finish = ch["finish_reason"];
  }
  return r;
}

double expected_cost(const json& usage, double in, double out, double cache_read = 0) {
  double prompt = usage["prompt_tokens"].get<double>();
  double cached = usage["prompt_tokens_details"]["cached_tokens"].get<double>();
  double completion = usage["completion_tokens"].get<double>();
  return ((prompt - cached) * in + cached * cache_read + completion * out) / 1e6;
}

}  // namespace

TEST_CASE("dialects: OpenAI client to an Anthropic backend, whole and streamed") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto r = http_call(g.port, "POST", "/v1/chat/completions",
                     openai_body("claude/claude-sonnet-4-5", false));
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["object"] == "chat.completion");
  CHECK(j["provider"] == "claude");
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK_FALSE(j["choices"][0]["message"]["content"].get<std::string>().empty());
  // What the gateway sent was a real Anthropic request with the provider's key.
  auto st = json::parse(s.stats("claude"));
  auto sent = json::parse(st["last_request"]["body"].get<std::string>());
  CHECK(sent["system"] == "Be brief.");
  CHECK(sent["max_tokens"].is_number());
  CHECK(st["last_request"]["headers"]["x-api-key"] == "sk-ant-sim");
  // Replaying that request straight to the sim gives the usage the gateway must report.
  auto direct = http_call(s.ports.at("claude"), "POST", "/v1/messages",
                          st["last_request"]["body"].get<std::string>(),
                          {{"x-api-key", "sk-ant-sim"}, {"anthropic-version", "2023-06-01"}});
  REQUIRE(direct.status == 200);
  auto du = json::parse(direct.body)["usage"];
  CHECK(j["usage"]["prompt_tokens"] == du["input_tokens"].get<int>() +
                                           du["cache_read_input_tokens"].get<int>() +
                                           du["cache_creation_input_tokens"].get<int>());
  CHECK(j["usage"]["completion_tokens"] == du["output_tokens"]);
  CHECK(j["usage"]["completion_tokens"] == 6);
  CHECK(j["usage"]["cost"].get<double>() == doctest::Approx(expected_cost(j["usage"], 3, 15, 0.3)));

  stream_client c(g.port, openai_body("claude/claude-sonnet-4-5", true));
  REQUIRE(c.status() == 200);
  auto sr = read_openai_stream(c);
  CHECK(sr.done);
  CHECK(sr.content == j["choices"][0]["message"]["content"]);
  CHECK(sr.finish == "stop");
  REQUIRE(sr.usage.is_object());
  CHECK(sr.usage["completion_tokens"] == 6);
  CHECK(sr.usage["prompt_tokens"] == j["usage"]["prompt_tokens"]);
  CHECK(sr.usage["cost"].get<double>() == doctest::Approx(j["usage"]["cost"].get<double>()));
}

TEST_CASE("dialects: tool calls come back from Anthropic and Gemini in OpenAI's shape") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  for (std::string model : {"claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"}) {
    INFO(model);
    auto body = json::parse(openai_body(model, false, "What is the weather in Paris?"));
    body["tools"] = json::array({k_weather_tool});
    auto r = http_call(g.port, "POST", "/v1/chat/completions", body.dump());
    REQUIRE(r.status == 200);
    auto msg = json::parse(r.body)["choices"][0];
    CHECK(msg["finish_reason"] == "tool_calls");
    REQUIRE(msg["message"]["tool_calls"].size() == 1);
    CHECK(msg["message"]["tool_calls"][0]["function"]["name"] == "get_weather");
    CHECK(
        json::parse(msg["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()) ==
        json{{"location", "Paris"}});
    body["stream"] = true;
    stream_client c(g.port, body.dump());
    REQUIRE(c.status() == 200);
    auto sr = read_openai_stream(c);
    CHECK(sr.done);
    CHECK(sr.finish == "tool_calls");
    CHECK(sr.tool_names[0] == "get_weather");
    CHECK(json::parse(sr.tool_args[0]) == json{{"location", "Paris"}});
  }
}

TEST_CASE("dialects: OpenAI client to a Gemini backend with reasoning tokens") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto r =
      http_call(g.port, "POST", "/v1/chat/completions", openai_body("gem/gemini-2.5-pro", false));
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  auto st = json::parse(s.stats("gem"));
  CHECK(st["last_request"]["target"].get<std::string>().find(
            "/v1beta/models/gemini-2.5-pro:generateContent") == 0);
  CHECK(st["last_request"]["headers"]["x-goog-api-key"] == "gem-sim-key");
  auto direct =
      http_call(s.ports.at("gem"), "POST", "/v1beta/models/gemini-2.5-pro:generateContent",
                st["last_request"]["body"].get<std::string>(), {{"x-goog-api-key", "gem-sim-key"}});
  REQUIRE(direct.status == 200);
  auto um = json::parse(direct.body)["usageMetadata"];
  CHECK(j["usage"]["prompt_tokens"] == um["promptTokenCount"]);
  CHECK(j["usage"]["completion_tokens"] ==
        um["candidatesTokenCount"].get<int>() + um["thoughtsTokenCount"].get<int>());
  CHECK(j["usage"]["completion_tokens_details"]["reasoning_tokens"] == um["thoughtsTokenCount"]);
  CHECK(um["thoughtsTokenCount"].get<int>() > 0);
  CHECK(j["usage"]["cost"].get<double>() == doctest::Approx(expected_cost(j["usage"], 1.25, 10)));

  stream_client c(g.port, openai_body("gem/gemini-2.5-flash", true));
  REQUIRE(c.status() == 200);
  auto sr = read_openai_stream(c);
  CHECK(sr.done);
  CHECK(sr.finish == "stop");
  REQUIRE(sr.usage.is_object());
  CHECK(sr.usage["completion_tokens"] == 7);
}

TEST_CASE("dialects: Anthropic client on /v1/messages served by an OpenAI backend") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string body = R"({"model":"fast/m-fast","max_tokens":100,"system":"Be brief.",
    "messages":[{"role":"user","content":[{"type":"text","text":"Hello there"}]}]})";
  auto r = http_call(g.port, "POST", "/v1/messages", body,
                     {{"x-api-key", "client-key"}, {"anthropic-version", "2023-06-01"}});
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["type"] == "message");
  CHECK(j["role"] == "assistant");
  CHECK(j["stop_reason"] == "end_turn");
  REQUIRE(j["content"].size() == 1);
  CHECK(j["content"][0]["type"] == "text");
  CHECK(j["usage"]["output_tokens"] == 8);
  // The OpenAI backend saw a canonical request and counted the same prompt.
  auto st = json::parse(s.stats("fast"));
  auto sent = json::parse(st["last_request"]["body"].get<std::string>());
  CHECK(sent["messages"][0]["role"] == "system");
  CHECK(sent["model"] == "m-fast");
  CHECK(st["last_request"]["headers"].value("x-api-key", "") == "");  // the client's key stays here
  auto direct = json::parse(http_call(s.ports.at("fast"), "POST", "/v1/chat/completions",
                                      st["last_request"]["body"].get<std::string>())
                                .body);
  CHECK(j["usage"]["input_tokens"] == direct["usage"]["prompt_tokens"]);
}

TEST_CASE("dialects: Anthropic client streaming through the gateway gets Anthropic events") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string body = R"({"model":"fast/m-fast","max_tokens":100,"stream":true,
    "messages":[{"role":"user","content":"Hello there"}]})";
  stream_client c(g.port, body, {{"anthropic-version", "2023-06-01"}}, "/v1/messages");
  REQUIRE(c.status() == 200);
  std::vector<std::string> types;
  std::string text;
  json start_usage, final_usage;
  while (auto ev = c.next_event()) {
    auto j = json::parse(*ev);
    types.push_back(j["type"]);
    if (j["type"] == "content_block_delta" && j["delta"]["type"] == "text_delta")
      text += j["delta"]["text"].get<std::string>();
    if (j["type"] == "message_start") start_usage = j["message"]["usage"];
    if (j["type"] == "message_delta") final_usage = j["usage"];
  }
  REQUIRE(types.size() >= 5);
  CHECK(types.front() == "message_start");
  // The OpenAI backend counts at the end: message_start tells the gateway's estimate, marked.
  CHECK(start_usage["input_tokens"].get<int>() > 0);
  CHECK(start_usage["estimated"] == true);
  CHECK(final_usage["input_tokens"].get<int>() > 0);
  CHECK_FALSE(final_usage.contains("estimated"));
  CHECK(types[1] == "content_block_start");
  CHECK(types.back() == "message_stop");
  CHECK(types[types.size() - 2] == "message_delta");
  CHECK_FALSE(text.empty());
  CHECK(final_usage["output_tokens"] == 8);
}

TEST_CASE("dialects: Anthropic client to an Anthropic backend keeps the cache buckets") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::string body = R"({"model":"claude/claude-sonnet-4-5","max_tokens":50,
    "system":[{"type":"text","text":"A long and stable system prompt that deserves caching.","cache_control":{"type":"ephemeral"}}],
    "messages":[{"role":"user","content":"Hello there"}]})";
  auto r = http_call(g.port, "POST", "/v1/messages", body, {{"anthropic-version", "2023-06-01"}});
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["usage"]["output_tokens"] == 6);
  CHECK(j["usage"]["input_tokens"].get<int>() > 0);
}

TEST_CASE("dialects: errors on /v1/messages use Anthropic's shape") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto r = http_call(g.port, "POST", "/v1/messages",
                     R"({"model":"fast/m-fast","messages":[{"role":"user","content":"x"}]})");
  CHECK(r.status == 400);
  auto j = json::parse(r.body);
  CHECK(j["type"] == "error");
  CHECK(j["error"]["type"] == "invalid_request_error");
  CHECK(j["error"]["message"].get<std::string>().find("max_tokens") != std::string::npos);
  auto nf =
      http_call(g.port, "POST", "/v1/messages",
                R"({"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]})");
  CHECK(nf.status == 404);
  CHECK(json::parse(nf.body)["error"]["type"] == "not_found_error");
}

TEST_CASE("dialects: count_tokens is exact from an Anthropic backend, an estimate elsewhere") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto count = [&](const std::string& model, const std::string& text) {
    auto r = http_call(g.port, "POST", "/v1/messages/count_tokens",
                       R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" +
                           text + R"("}]})",
                       {{"anthropic-version", "2023-06-01"}});
    REQUIRE(r.status == 200);
    return json::parse(r.body);
  };
  // The Anthropic upstream counted it: the same number it gives when asked directly.
  auto exact = count("claude/claude-sonnet-4-5", "Hi");
  CHECK_FALSE(exact.contains("estimated"));
  auto direct = http_call(s.ports.at("claude"), "POST", "/v1/messages/count_tokens",
                          R"({"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}]})",
                          {{"x-api-key", "sk-ant-sim"}, {"anthropic-version", "2023-06-01"}});
  CHECK(exact["input_tokens"] == json::parse(direct.body)["input_tokens"]);
  // An OpenAI-dialect backend has no count: Meridian's estimate, marked.
  auto small = count("fast/m-fast", "Hi"), big = count("fast/m-fast", std::string(4000, 'a'));
  CHECK(small["estimated"] == true);
  CHECK(big["input_tokens"].get<int>() >= small["input_tokens"].get<int>() + 900);
}

TEST_CASE("dialects: embeddings pass through with usage and cost") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  auto r = http_call(g.port, "POST", "/v1/embeddings",
                     R"({"model":"fast/embed-small","input":["one text","another text here"]})");
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["data"].size() == 2);
  CHECK(j["provider"] == "fast");
  CHECK(j["usage"]["cost"].get<double>() ==
        doctest::Approx(j["usage"]["prompt_tokens"].get<double>() * 0.02 / 1e6));
  auto bad = http_call(g.port, "POST", "/v1/embeddings", R"({"model":"fast/embed-small"})");
  CHECK(bad.status == 400);
  auto wrong = http_call(g.port, "POST", "/v1/embeddings",
                         R"({"model":"claude/claude-sonnet-4-5","input":"x"})");
  CHECK(wrong.status == 400);
}

TEST_CASE("dialects: an Anthropic client gets answers and streams from every backend dialect") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const std::map<std::string, int> backends = {
      {"fast/m-fast", 8}, {"claude/claude-sonnet-4-5", 6}, {"gem/gemini-2.5-flash", 7}};
  for (const auto& [model, tokens] : backends) {
    INFO(model);
    json req = {{"model", model},
                {"max_tokens", 100},
                {"system", "Be brief."},
                {"messages", {{{"role", "user"}, {"content", "Hello there"}}}}};
    auto r = http_call(g.port, "POST", "/v1/messages", req.dump(),
                       {{"anthropic-version", "2023-06-01"}});
    REQUIRE(r.status == 200);
    auto j = json::parse(r.body);
    CHECK(j["type"] == "message");
    CHECK(j["stop_reason"] == "end_turn");
    CHECK(j["usage"]["output_tokens"] == tokens);
    std::string whole;
    for (const auto& block : j["content"])
      if (block["type"] == "text") whole += block["text"].get<std::string>();
    CHECK_FALSE(whole.empty());

    req["stream"] = true;
    stream_client c(g.port, req.dump(), {{"anthropic-version", "2023-06-01"}}, "/v1/messages");
    REQUIRE(c.status() == 200);
    std::string text;
    std::vector<std::string> types;
    json final_usage;
    while (auto ev = c.next_event()) {
      auto e = json::parse(*ev);
      types.push_back(e["type"]);
      if (e["type"] == "content_block_delta" && e["delta"]["type"] == "text_delta")
        text += e["delta"]["text"].get<std::string>();
      if (e["type"] == "message_delta") final_usage = e["usage"];
    }
    REQUIRE_FALSE(types.empty());
    CHECK(types.front() == "message_start");
    CHECK(types.back() == "message_stop");
    CHECK(text == whole);
    CHECK(final_usage["output_tokens"] == tokens);
  }
}
