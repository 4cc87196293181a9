// Tests for meridian-sim's pure functions: config and fault parsing, the deterministic reply, the
// token counts, and the Anthropic, Gemini and embeddings reply builders.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sim/sim.hpp"

namespace sim = meridian::sim;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string config_error_of(const std::string& yaml) {
  try {
    sim::parse_config(yaml);
  } catch (const sim::config_error& e) {
    return e.what();
  }
  return "";
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

struct sse_event {
  std::string name;
  json data;
};

// Splits "event: NAME\ndata: JSON\n\n" strings as Anthropic streams them.
std::vector<sse_event> anthropic_events(const std::vector<std::string>& raw) {
  std::vector<sse_event> out;
  for (const auto& e : raw) {
    REQUIRE(e.starts_with("event: "));
    REQUIRE(e.ends_with("\n\n"));
    auto nl = e.find('\n');
    std::string name = e.substr(7, nl - 7);
    std::string rest = e.substr(nl + 1);
    REQUIRE(rest.starts_with("data: "));
    out.push_back({name, json::parse(rest.substr(6))});
  }
  return out;
}

std::vector<sse_event> all_anthropic_events(const sim::stream_script& s) {
  std::vector<std::string> raw = s.prelude;
  raw.insert(raw.end(), s.content.begin(), s.content.end());
  raw.insert(raw.end(), s.epilogue.begin(), s.epilogue.end());
  return anthropic_events(raw);
}

json gemini_data(const std::string& event) {
  REQUIRE(event.starts_with("data: "));
  REQUIRE(event.ends_with("\r\n\r\n"));
  return json::parse(event.substr(6, event.size() - 10));
}

const json k_anthropic_base = {
    {"model", "claude-sonnet-4-5"},
    {"max_tokens", 100},
    {"system", "You are terse."},                            // 14 bytes: 4 + 4 tokens
    {"messages", {{{"role", "user"}, {"content", "hi"}}}}};  // 4 + 1 tokens

const json k_gemini_base = {{"contents", {{{"role", "user"}, {"parts", {{{"text", "hi"}}}}}}},
                            {"systemInstruction", {{"parts", {{{"text", "You are terse."}}}}}}};

}  // namespace

// --- parse_duration, parse_fault, parse_config ---------------------------------------------------

TEST_CASE("sim: parse_duration accepts ms, s, m and bare milliseconds") {
  CHECK(sim::parse_duration("250ms") == 250ms);
  CHECK(sim::parse_duration("1s") == 1000ms);
  CHECK(sim::parse_duration("1.5s") == 1500ms);
  CHECK(sim::parse_duration("2m") == 120'000ms);
  CHECK(sim::parse_duration("15") == 15ms);
  CHECK(sim::parse_duration(" 0ms ") == 0ms);
}

TEST_CASE("sim: parse_duration rejects other text") {
  CHECK_THROWS_AS(sim::parse_duration(""), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_duration("fast"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_duration("5h"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_duration("-1s"), std::invalid_argument);
}

TEST_CASE("sim: parse_fault reads every item") {
  auto f = sim::parse_fault("status=503; retry_after=2");
  CHECK(f.status == 503);
  CHECK(f.retry_after == 2);
  CHECK_FALSE(f.reset);

  f = sim::parse_fault("delay=150;cut_after=3;stall_after=2;stall=400");
  CHECK(f.delay == 150ms);
  CHECK(f.cut_after == 3);
  CHECK(f.stall_after == 2);
  CHECK(f.stall == 400ms);
  CHECK_FALSE(f.status);

  CHECK(sim::parse_fault("reset").reset);
  CHECK(sim::parse_fault("malformed").malformed);
  CHECK(sim::parse_fault("status=529").status == 529);

  f = sim::parse_fault("");
  CHECK_FALSE(f.status);
  CHECK(f.delay == 0ms);
  CHECK(f.applies_to(1));

  // A flaky server: the first 3 of every 8 requests fail.
  f = sim::parse_fault("status=503;fails=3/8");
  REQUIRE(f.fails);
  std::string pattern;
  for (std::uint64_t n = 1; n <= 16; ++n) pattern += f.applies_to(n) ? 'x' : '.';
  CHECK(pattern == "xxx.....xxx.....");
  CHECK_THROWS_AS(sim::parse_fault("fails=3"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("fails=9/8"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("fails=1/0"), std::invalid_argument);
}

TEST_CASE("sim: parse_fault rejects bad items") {
  CHECK_THROWS_AS(sim::parse_fault("explode"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("status=99"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("status=600"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("cut_after=-1"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("delay=soon"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("colour=red"), std::invalid_argument);
}

TEST_CASE("sim: parse_config reads a provider and defaults to the openai dialect") {
  auto cfg = sim::parse_config(R"(
providers:
  a:
    port: 9101
    models: [m1, m2]
    ttft: 200ms
    tokens_per_second: 50
    reply_tokens: 7
    api_key: k
    fault: "status=503"
  b:
    models: [claude-x]
    dialect: anthropic
  c:
    models: [gemini-x]
    dialect: gemini
)");
  REQUIRE(cfg.providers.size() == 3);
  const auto& a = cfg.providers[0];
  CHECK(a.name == "a");
  CHECK(a.port == 9101);
  CHECK(a.models == std::vector<std::string>{"m1", "m2"});
  CHECK(a.ttft == 200ms);
  CHECK(a.tokens_per_second == doctest::Approx(50));
  CHECK(a.reply_tokens == 7);
  CHECK(a.api_key == "k");
  CHECK(a.fault == "status=503");
  CHECK(a.dialect == sim::dialect::openai);
  CHECK(cfg.providers[1].dialect == sim::dialect::anthropic);
  CHECK(cfg.providers[1].port == 0);
  CHECK(cfg.providers[1].reply_tokens == 20);
  CHECK(cfg.providers[2].dialect == sim::dialect::gemini);
}

TEST_CASE("sim: parse_config errors name the YAML path") {
  CHECK(config_error_of("providers: {a: {models: [m], colour: red}}")
            .find("providers.a.colour: unknown key") != std::string::npos);
  CHECK(config_error_of("providers: {a: {models: [m], dialect: cohere}}")
            .find("providers.a.dialect: unknown dialect 'cohere'") != std::string::npos);
  CHECK(config_error_of("providers: {a: {port: 1}}").find("providers.a.models") !=
        std::string::npos);
  CHECK(config_error_of("providers: {a: {models: [m], port: 70000}}")
            .find("providers.a.port: port out of range") != std::string::npos);
  CHECK(config_error_of("providers: {a: {models: [m], ttft: soon}}").find("providers.a.ttft") !=
        std::string::npos);
  CHECK(
      config_error_of("providers: {a: {models: [m], fault: explode}}").find("providers.a.fault") !=
      std::string::npos);
  CHECK(config_error_of("providers: {a: {models: [m], reply_tokens: -1}}")
            .find("providers.a.reply_tokens") != std::string::npos);
  CHECK(config_error_of("providers: {a: {models: [m], tls: {cert: c.pem}}}")
            .find("providers.a.tls") != std::string::npos);
  CHECK(config_error_of("servers: {}").find("servers: unknown key") != std::string::npos);
  CHECK(config_error_of("providers: {}").find("providers") != std::string::npos);
  CHECK(config_error_of("providers: [").find("invalid YAML") != std::string::npos);
  CHECK(config_error_of("- a").find("top level") != std::string::npos);
}

TEST_CASE("sim: parse_dialect and dialect_name round-trip") {
  for (auto d : {sim::dialect::openai, sim::dialect::anthropic, sim::dialect::gemini}) {
    CHECK(sim::parse_dialect(sim::dialect_name(d)) == d);
  }
  CHECK_THROWS_AS(sim::parse_dialect("OpenAI"), std::invalid_argument);
}

// --- reply_tokens and prompt counts -------------------------------------------------------------

TEST_CASE("sim: reply_tokens is deterministic and echoes up to 8 user words") {
  auto a = sim::reply_tokens("oa", "m1", "hello there", 12);
  CHECK(a == sim::reply_tokens("oa", "m1", "hello there", 12));
  CHECK(a == std::vector<std::string>{"Hello ", "from ", "m1 ", "via ", "oa ", "(sim). ", "You ",
                                      "said: ", "hello ", "there ", "lorem ", "ipsum "});
  auto echoed = sim::reply_tokens("p", "m", " one  two\tthree\nfour five six seven eight nine", 30);
  CHECK(echoed.size() == 30);
  CHECK(echoed[8] == "one ");
  CHECK(echoed[15] == "eight ");
  CHECK(echoed[16] == "lorem ");
  CHECK(sim::reply_tokens("p", "m", "x", 3) == std::vector<std::string>{"Hello ", "from ", "m "});
  CHECK(sim::reply_tokens("p", "m", "x", 0).empty());
  CHECK(sim::reply_tokens("p", "m", "x", -4).empty());
}

TEST_CASE("sim: count_prompt_tokens charges 4 per message plus a token per 4 bytes") {
  json messages = {{{"role", "system"}, {"content", "be nice"}},
                   {{"role", "user"}, {"content", "hello there how are you"}}};
  CHECK(sim::count_prompt_tokens(messages) == (4 + 2) + (4 + 6));
  json parts = {{{"role", "user"},
                 {"content", {{{"type", "text"}, {"text", "abcd"}}, {{"type", "image_url"}}}}}};
  CHECK(sim::count_prompt_tokens(parts) == 4 + 1);
  CHECK(sim::count_prompt_tokens(json::array({{{"role", "assistant"}}})) == 4);
  CHECK(sim::count_prompt_tokens(json::object()) == 0);
}

TEST_CASE("sim: content_text joins the text parts") {
  CHECK(sim::content_text("plain") == "plain");
  CHECK(sim::content_text(json::array({{{"text", "a"}}, {{"type", "image"}}, {{"text", "b"}}})) ==
        "a b");
  CHECK(sim::content_text(nullptr).empty());
}

TEST_CASE("sim: mentions_weather ignores letter case") {
  CHECK(sim::mentions_weather("What's the WEATHER in Paris?"));
  CHECK(sim::mentions_weather("weather"));
  CHECK_FALSE(sim::mentions_weather("wether"));
  CHECK_FALSE(sim::mentions_weather(""));
}

// --- Anthropic ----------------------------------------------------------------------------------

TEST_CASE("sim: anthropic prompt tokens count the system prompt as a message") {
  CHECK(sim::count_anthropic_prompt_tokens(k_anthropic_base) == 8 + 5);
  json blocks = k_anthropic_base;
  blocks["system"] = {{{"type", "text"}, {"text", "You are terse."}}};
  CHECK(sim::count_anthropic_prompt_tokens(blocks) == 8 + 5);
  json no_system = k_anthropic_base;
  no_system.erase("system");
  CHECK(sim::count_anthropic_prompt_tokens(no_system) == 5);
}

TEST_CASE("sim: anthropic reply without caching") {
  auto r = sim::plan_anthropic_reply(k_anthropic_base, "claude", 20, 7);
  CHECK(r.id == "msg_sim_7");
  CHECK(r.model == "claude-sonnet-4-5");
  CHECK(r.tokens == sim::reply_tokens("claude", "claude-sonnet-4-5", "hi", 20));
  CHECK(r.stop_reason == "end_turn");
  CHECK(r.input_tokens == 13);
  CHECK(r.cache_read_input_tokens == 0);
  CHECK(r.cache_creation_input_tokens == 0);
  CHECK_FALSE(r.tool);

  json m = sim::anthropic_message(r);
  CHECK(m["id"] == "msg_sim_7");
  CHECK(m["type"] == "message");
  CHECK(m["role"] == "assistant");
  CHECK(m["stop_reason"] == "end_turn");
  CHECK(m["stop_sequence"].is_null());
  REQUIRE(m["content"].size() == 1);
  CHECK(m["content"][0]["type"] == "text");
  CHECK(m["content"][0]["text"] == join(r.tokens));
  CHECK(m["usage"] == json{{"input_tokens", 13},
                           {"output_tokens", 20},
                           {"cache_read_input_tokens", 0},
                           {"cache_creation_input_tokens", 0}});
}

TEST_CASE("sim: anthropic cache_control turns the system prompt into cache reads") {
  json req = k_anthropic_base;
  req["system"] = {
      {{"type", "text"}, {"text", "You are terse."}, {"cache_control", {{"type", "ephemeral"}}}}};
  auto r = sim::plan_anthropic_reply(req, "claude", 20, 1);
  CHECK(r.cache_read_input_tokens == 8);
  CHECK(r.input_tokens == 5);  // excludes the cache reads

  json on_message = k_anthropic_base;
  on_message["messages"][0]["content"] = {
      {{"type", "text"}, {"text", "hi"}, {"cache_control", {{"type", "ephemeral"}}}}};
  r = sim::plan_anthropic_reply(on_message, "claude", 20, 1);
  CHECK(r.cache_read_input_tokens == 8);
  CHECK(r.input_tokens == 5);
}

TEST_CASE("sim: anthropic max_tokens caps the reply") {
  json req = k_anthropic_base;
  req["max_tokens"] = 3;
  auto r = sim::plan_anthropic_reply(req, "claude", 20, 1);
  CHECK(r.tokens.size() == 3);
  CHECK(r.stop_reason == "max_tokens");
  req["max_tokens"] = 20;
  CHECK(sim::plan_anthropic_reply(req, "claude", 20, 1).stop_reason == "end_turn");
}

TEST_CASE("sim: anthropic requests without required fields are rejected") {
  json req = k_anthropic_base;
  req.erase("max_tokens");
  CHECK_THROWS_AS(sim::plan_anthropic_reply(req, "claude", 20, 1), sim::request_error);
  req = k_anthropic_base;
  req["max_tokens"] = 0;
  CHECK_THROWS_AS(sim::plan_anthropic_reply(req, "claude", 20, 1), sim::request_error);
  req = k_anthropic_base;
  req.erase("messages");
  CHECK_THROWS_AS(sim::plan_anthropic_reply(req, "claude", 20, 1), sim::request_error);
  req = k_anthropic_base;
  req.erase("model");
  CHECK_THROWS_AS(sim::plan_anthropic_reply(req, "claude", 20, 1), sim::request_error);
}

TEST_CASE("sim: anthropic tool_use when tools are offered and the user asks about weather") {
  json req = k_anthropic_base;
  req["tools"] = {{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}},
                  {{"name", "other"}, {"input_schema", {{"type", "object"}}}}};
  req["messages"][0]["content"] = "What's the weather in Paris?";
  auto r = sim::plan_anthropic_reply(req, "claude", 20, 4);
  REQUIRE(r.tool);
  CHECK(r.tool->id == "toolu_sim_4");
  CHECK(r.tool->name == "get_weather");
  CHECK(r.tool->input == json{{"location", "Paris"}});
  CHECK(r.stop_reason == "tool_use");
  CHECK(r.tokens.size() == 8);
  CHECK(r.output_tokens() == 8 + sim::k_tool_call_tokens);

  json m = sim::anthropic_message(r);
  REQUIRE(m["content"].size() == 2);
  CHECK(m["content"][0]["type"] == "text");
  CHECK(m["content"][1] == json{{"type", "tool_use"},
                                {"id", "toolu_sim_4"},
                                {"name", "get_weather"},
                                {"input", {{"location", "Paris"}}}});

  // A tool result ends the loop: the last user turn has no text mentioning weather.
  req["messages"].push_back({{"role", "assistant"}, {"content", m["content"]}});
  req["messages"].push_back(json::parse(R"({"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_sim_4", "content": "sunny"}]})"));
  r = sim::plan_anthropic_reply(req, "claude", 20, 5);
  CHECK_FALSE(r.tool);
  CHECK(r.stop_reason == "end_turn");

  json no_tools = k_anthropic_base;
  no_tools["messages"][0]["content"] = "What's the weather in Paris?";
  CHECK_FALSE(sim::plan_anthropic_reply(no_tools, "claude", 20, 1).tool);
}

TEST_CASE("sim: openai tool_calls when function tools are offered and the user asks about weather") {
  json req = json::parse(R"({"model": "m", "messages": [
      {"role": "user", "content": "What's the weather in Paris?"},
      {"role": "system", "content": "A mid-conversation system turn does not end the question."}],
    "tools": [{"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
      {"type": "function", "function": {"name": "other"}}]})");
  auto r = sim::plan_openai_reply(req, "fast", 20, 7);
  REQUIRE(r.tool);
  CHECK(r.id == "chatcmpl-sim-7");
  CHECK(r.tool->id == "call_sim_7");
  CHECK(r.tool->name == "get_weather");
  CHECK(r.tool->input == json{{"location", "Paris"}});
  CHECK(r.finish_reason == "tool_calls");
  CHECK(r.tokens.size() == 8);
  CHECK(r.completion_tokens() == 8 + sim::k_tool_call_tokens);

  json whole = sim::openai_completion(r);
  const json& message = whole["choices"][0]["message"];
  REQUIRE(message["tool_calls"].size() == 1);
  CHECK(message["tool_calls"][0]["id"] == "call_sim_7");
  CHECK(message["tool_calls"][0]["function"]["name"] == "get_weather");
  CHECK(json::parse(message["tool_calls"][0]["function"]["arguments"].get<std::string>()) ==
        json{{"location", "Paris"}});
  CHECK(whole["choices"][0]["finish_reason"] == "tool_calls");
  CHECK(whole["usage"]["completion_tokens"] == 8 + sim::k_tool_call_tokens);

  // Streamed: the call's id and name with empty arguments, then the arguments in pieces that
  // add up to the same JSON, then the finish chunk.
  auto script = sim::openai_stream(r, true);
  std::string args, name, finish;
  for (const auto& e : script.epilogue) {
    if (e.rfind("data: {", 0) != 0) continue;
    json chunk = json::parse(e.substr(6));
    if (chunk["choices"].empty()) continue;
    const json& choice = chunk["choices"][0];
    if (choice["finish_reason"].is_string()) finish = choice["finish_reason"];
    if (!choice["delta"].contains("tool_calls")) continue;
    const json& call = choice["delta"]["tool_calls"][0];
    CHECK(call["index"] == 0);
    if (call.contains("id")) name = call["function"]["name"];
    args += call["function"]["arguments"].get<std::string>();
  }
  CHECK(name == "get_weather");
  CHECK(json::parse(args) == json{{"location", "Paris"}});
  CHECK(finish == "tool_calls");

  // The tool's result ends the loop: the answer quotes it and calls nothing.
  req["messages"].push_back(message);
  req["messages"].push_back(
      {{"role", "tool"}, {"tool_call_id", "call_sim_7"}, {"content", "sunny weather"}});
  r = sim::plan_openai_reply(req, "fast", 20, 8);
  CHECK_FALSE(r.tool);
  CHECK(r.finish_reason == "stop");
  CHECK(sim::openai_completion(r)["choices"][0]["message"]["content"].get<std::string>().find(
            "sunny") != std::string::npos);
  // tool_choice "none", or no tools: no call.
  json none = req;
  none["messages"] = json::array({req["messages"][0]});
  none["tool_choice"] = "none";
  CHECK_FALSE(sim::plan_openai_reply(none, "fast", 20, 9).tool);
  none.erase("tools");
  none.erase("tool_choice");
  CHECK_FALSE(sim::plan_openai_reply(none, "fast", 20, 10).tool);
}

TEST_CASE("sim: anthropic stream events follow the Messages streaming order") {
  auto r = sim::plan_anthropic_reply(k_anthropic_base, "claude", 5, 2);
  auto s = sim::anthropic_stream(r);
  CHECK(s.content.size() == 5);
  auto events = all_anthropic_events(s);
  std::vector<std::string> names;
  for (const auto& e : events) {
    names.push_back(e.name);
    CHECK(e.data["type"] == e.name);
  }
  CHECK(names == std::vector<std::string>{
                     "message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"});
  const json& start = events[0].data["message"];
  CHECK(start["id"] == "msg_sim_2");
  CHECK(start["usage"]["input_tokens"] == 13);
  CHECK(start["usage"]["output_tokens"] == 1);
  CHECK(start["usage"]["cache_read_input_tokens"] == 0);
  std::string text;
  for (std::size_t i = 3; i < 8; ++i) {
    CHECK(events[i].data["delta"]["type"] == "text_delta");
    text += events[i].data["delta"]["text"].get<std::string>();
  }
  CHECK(text == join(r.tokens));
  CHECK(events[9].data["delta"]["stop_reason"] == "end_turn");
  CHECK(events[9].data["usage"]["output_tokens"] == 5);
}

TEST_CASE("sim: anthropic stream carries the tool_use block after the text block") {
  json req = k_anthropic_base;
  req["tools"] = {{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}};
  req["messages"][0]["content"] = "weather please";
  auto r = sim::plan_anthropic_reply(req, "claude", 20, 3);
  auto events = all_anthropic_events(sim::anthropic_stream(r));
  std::string partial;
  bool saw_tool_start = false;
  int fragments = 0;
  for (const auto& e : events) {
    if (e.name == "content_block_start" && e.data["index"] == 1) {
      saw_tool_start = true;
      CHECK(e.data["content_block"]["type"] == "tool_use");
      CHECK(e.data["content_block"]["id"] == "toolu_sim_3");
      CHECK(e.data["content_block"]["name"] == "get_weather");
      CHECK(e.data["content_block"]["input"] == json::object());
    }
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta") {
      CHECK(e.data["index"] == 1);
      partial += e.data["delta"]["partial_json"].get<std::string>();
      ++fragments;
    }
  }
  CHECK(saw_tool_start);
  CHECK(fragments >= 2);
  CHECK(json::parse(partial) == json{{"location", "Paris"}});
  CHECK(events[events.size() - 2].data["delta"]["stop_reason"] == "tool_use");
  CHECK(events[events.size() - 2].data["usage"]["output_tokens"] == 8 + sim::k_tool_call_tokens);
  CHECK(events.back().name == "message_stop");
}

TEST_CASE("sim: anthropic error bodies use Anthropic's error types") {
  auto body = json::parse(sim::anthropic_error_body(529, "Overloaded"));
  CHECK(body == json{{"type", "error"},
                     {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}});
  auto type = [](int status) {
    return json::parse(sim::anthropic_error_body(status, "x"))["error"]["type"];
  };
  CHECK(type(400) == "invalid_request_error");
  CHECK(type(401) == "authentication_error");
  CHECK(type(403) == "permission_error");
  CHECK(type(404) == "not_found_error");
  CHECK(type(413) == "request_too_large");
  CHECK(type(429) == "rate_limit_error");
  CHECK(type(500) == "api_error");
  CHECK(type(503) == "api_error");
}

// --- Gemini -------------------------------------------------------------------------------------

TEST_CASE("sim: gemini prompt tokens count contents and the system instruction") {
  CHECK(sim::count_gemini_prompt_tokens(k_gemini_base) == 5 + 8);
  json no_system = k_gemini_base;
  no_system.erase("systemInstruction");
  CHECK(sim::count_gemini_prompt_tokens(no_system) == 5);
}

TEST_CASE("sim: gemini reply on a flash model") {
  auto r = sim::plan_gemini_reply(k_gemini_base, "gemini", "gemini-2.5-flash", 20, 9);
  CHECK(r.response_id == "sim-9");
  CHECK(r.model == "gemini-2.5-flash");
  CHECK(r.tokens == sim::reply_tokens("gemini", "gemini-2.5-flash", "hi", 20));
  CHECK(r.finish_reason == "STOP");
  CHECK_FALSE(r.thought);
  CHECK(r.prompt_tokens == 13);
  CHECK(r.cached_tokens == 0);

  json g = sim::gemini_response(r);
  const json& c = g["candidates"][0];
  CHECK(c["index"] == 0);
  CHECK(c["finishReason"] == "STOP");
  CHECK(c["content"]["role"] == "model");
  REQUIRE(c["content"]["parts"].size() == 1);
  CHECK(c["content"]["parts"][0]["text"] == join(r.tokens));
  CHECK(g["usageMetadata"] == json{{"promptTokenCount", 13},
                                   {"candidatesTokenCount", 20},
                                   {"totalTokenCount", 33},
                                   {"thoughtsTokenCount", 0},
                                   {"cachedContentTokenCount", 0}});
  CHECK(g["modelVersion"] == "gemini-2.5-flash");
  CHECK(g["responseId"] == "sim-9");
}

TEST_CASE("sim: gemini thinks on pro models and with a thinkingConfig") {
  auto r = sim::plan_gemini_reply(k_gemini_base, "gemini", "gemini-2.5-pro", 20, 1);
  CHECK(r.thought);
  json g = sim::gemini_response(r);
  const json& parts = g["candidates"][0]["content"]["parts"];
  REQUIRE(parts.size() == 2);
  CHECK(parts[0] == json{{"text", "thinking..."}, {"thought", true}});
  CHECK(g["usageMetadata"]["thoughtsTokenCount"] == sim::k_thought_tokens);
  CHECK(g["usageMetadata"]["candidatesTokenCount"] == 20);
  CHECK(g["usageMetadata"]["totalTokenCount"] == 13 + 20 + sim::k_thought_tokens);

  json req = k_gemini_base;
  req["generationConfig"] = {{"thinkingConfig", {{"thinkingBudget", 1024}}}};
  CHECK(sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1).thought);
  req["generationConfig"] = {{"thinkingConfig", {{"thinkingBudget", 0}}}};
  CHECK_FALSE(sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1).thought);
  CHECK(sim::plan_gemini_reply(k_gemini_base, "gemini", "gemini-2.0-flash-thinking-exp", 20, 1)
            .thought);
}

TEST_CASE("sim: gemini maxOutputTokens caps and cachedContent caches the system instruction") {
  json req = k_gemini_base;
  req["generationConfig"] = {{"maxOutputTokens", 3}};
  req["cachedContent"] = "cachedContents/abc";
  auto r = sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1);
  CHECK(r.tokens.size() == 3);
  CHECK(r.finish_reason == "MAX_TOKENS");
  CHECK(r.cached_tokens == 8);
  CHECK(r.prompt_tokens == 13);  // cached tokens are a subset
  CHECK(sim::gemini_response(r)["usageMetadata"]["cachedContentTokenCount"] == 8);
}

TEST_CASE("sim: gemini functionCall when tools are offered and the user asks about weather") {
  json req = k_gemini_base;
  req["contents"][0]["parts"][0]["text"] = "How is the weather?";
  req["tools"] = {{{"functionDeclarations", {{{"name", "get_weather"}}, {{"name", "other"}}}}}};
  auto r = sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1);
  REQUIRE(r.tool);
  CHECK(r.finish_reason == "STOP");
  CHECK(r.candidates_tokens() == sim::k_tool_call_tokens);
  json g = sim::gemini_response(r);
  const json& parts = g["candidates"][0]["content"]["parts"];
  REQUIRE(parts.size() == 1);
  CHECK(parts[0] ==
        json{{"functionCall", {{"name", "get_weather"}, {"args", {{"location", "Paris"}}}}}});

  // A functionResponse turn has no text, so the next reply is plain text.
  req["contents"].push_back({{"role", "model"}, {"parts", parts}});
  req["contents"].push_back(json::parse(R"({"role": "user", "parts": [
      {"functionResponse": {"name": "get_weather", "response": {"t": 20}}}]})"));
  CHECK_FALSE(sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1).tool);
}

TEST_CASE("sim: gemini requests without contents are rejected") {
  CHECK_THROWS_AS(sim::plan_gemini_reply(json::object(), "g", "m", 20, 1), sim::request_error);
  CHECK_THROWS_AS(sim::plan_gemini_reply(json{{"contents", json::array()}}, "g", "m", 20, 1),
                  sim::request_error);
}

TEST_CASE("sim: gemini stream sends one chunk per token with growing usage") {
  auto r = sim::plan_gemini_reply(k_gemini_base, "gemini", "gemini-2.5-pro", 4, 1);
  auto s = sim::gemini_stream(r);
  REQUIRE(s.prelude.size() == 1);
  REQUIRE(s.content.size() == 4);
  CHECK(s.epilogue.empty());
  json thought = gemini_data(s.prelude[0]);
  CHECK(thought["candidates"][0]["content"]["parts"][0]["thought"] == true);
  std::string text;
  for (std::size_t i = 0; i < s.content.size(); ++i) {
    json chunk = gemini_data(s.content[i]);
    const json& c = chunk["candidates"][0];
    text += c["content"]["parts"][0]["text"].get<std::string>();
    CHECK(chunk["usageMetadata"]["candidatesTokenCount"] == i + 1);
    CHECK(c.contains("finishReason") == (i + 1 == s.content.size()));
  }
  CHECK(text == join(r.tokens));
  json last = gemini_data(s.content.back());
  CHECK(last["candidates"][0]["finishReason"] == "STOP");
  CHECK(last["usageMetadata"] == sim::gemini_response(r)["usageMetadata"]);
  CHECK(sim::gemini_stream_array(r).size() == 5);
}

TEST_CASE("sim: gemini stream ends with the function call") {
  json req = k_gemini_base;
  req["contents"][0]["parts"][0]["text"] = "weather?";
  req["tools"] = {{{"functionDeclarations", {{{"name", "get_weather"}}}}}};
  auto s = sim::gemini_stream(sim::plan_gemini_reply(req, "gemini", "gemini-2.5-flash", 20, 1));
  CHECK(s.content.empty());
  REQUIRE(s.epilogue.size() == 1);
  json last = gemini_data(s.epilogue[0]);
  CHECK(last["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather");
  CHECK(last["candidates"][0]["finishReason"] == "STOP");
}

TEST_CASE("sim: gemini error bodies carry the canonical status") {
  auto body = json::parse(sim::gemini_error_body(429, "Resource exhausted"));
  CHECK(
      body ==
      json{{"error",
            {{"code", 429}, {"message", "Resource exhausted"}, {"status", "RESOURCE_EXHAUSTED"}}}});
  auto status = [](int code) {
    return json::parse(sim::gemini_error_body(code, "x"))["error"]["status"];
  };
  CHECK(status(400) == "INVALID_ARGUMENT");
  CHECK(status(403) == "PERMISSION_DENIED");
  CHECK(status(404) == "NOT_FOUND");
  CHECK(status(500) == "INTERNAL");
  CHECK(status(503) == "UNAVAILABLE");
  CHECK(status(504) == "DEADLINE_EXCEEDED");
}

// --- Embeddings ---------------------------------------------------------------------------------

TEST_CASE("sim: embedding_vector is deterministic, unit length and text dependent") {
  auto a = sim::embedding_vector("hello");
  REQUIRE(a.size() == sim::k_embedding_dimensions);
  CHECK(a == sim::embedding_vector("hello"));
  CHECK(a != sim::embedding_vector("hello!"));
  double norm = 0;
  for (double x : a) {
    CHECK(x >= -1);
    CHECK(x <= 1);
    norm += x * x;
  }
  CHECK(std::sqrt(norm) == doctest::Approx(1).epsilon(1e-5));
}

TEST_CASE("sim: embeddings_response counts ceil(bytes / 4) per input") {
  json out = sim::embeddings_response({{"input", {"abcd", "abcde"}}}, "emb");
  CHECK(out["object"] == "list");
  CHECK(out["model"] == "emb");
  REQUIRE(out["data"].size() == 2);
  CHECK(out["data"][1]["object"] == "embedding");
  CHECK(out["data"][1]["index"] == 1);
  CHECK(out["data"][1]["embedding"].get<std::vector<double>>() == sim::embedding_vector("abcde"));
  CHECK(out["usage"] == json{{"prompt_tokens", 1 + 2}, {"total_tokens", 3}});

  json one = sim::embeddings_response({{"input", "hello"}}, "emb");
  CHECK(one["data"].size() == 1);
  CHECK(one["usage"]["prompt_tokens"] == 2);

  json b64 = sim::embeddings_response({{"input", "hello"}, {"encoding_format", "base64"}}, "emb");
  CHECK(b64["data"][0]["embedding"].get<std::string>().size() == 44);  // 32 bytes
}

TEST_CASE("sim: embeddings_response rejects other inputs") {
  CHECK_THROWS_AS(sim::embeddings_response(json::object(), "emb"), sim::request_error);
  CHECK_THROWS_AS(sim::embeddings_response({{"input", json::array()}}, "emb"), sim::request_error);
  CHECK_THROWS_AS(sim::embeddings_response({{"input", {1, 2}}}, "emb"), sim::request_error);
  CHECK_THROWS_AS(sim::embeddings_response({{"input", "x"}, {"encoding_format", "int8"}}, "emb"),
                  sim::request_error);
}

// --- the fault items added for the reliability matrix -------------------------------------------

TEST_CASE("sim: parse_fault reads the whole-answer and stream-ending items") {
  auto f = sim::parse_fault("cut_body=10;content_type=text/plain;oversize=4096");
  CHECK(f.cut_body == 10u);
  CHECK(f.content_type == "text/plain");
  CHECK(f.oversize == 4096u);
  CHECK_FALSE(f.sse_error);
  CHECK_FALSE(f.truncate_sse);

  // Bare flags end the stream after two content events; a value moves that point.
  CHECK(sim::parse_fault("sse_error").sse_error == 2);
  CHECK(sim::parse_fault("truncate_sse").truncate_sse == 2);
  CHECK(sim::parse_fault("sse_error=5").sse_error == 5);
  CHECK(sim::parse_fault("truncate_sse=0").truncate_sse == 0);

  // The older items still combine with the new ones.
  f = sim::parse_fault("status=503;retry_after=1;content_type=text/html");
  CHECK(f.status == 503);
  CHECK(f.retry_after == 1);
  CHECK(f.content_type == "text/html");
  CHECK(sim::parse_fault("").content_type.empty());
}

TEST_CASE("sim: parse_fault rejects bad values of the new items") {
  CHECK_THROWS_AS(sim::parse_fault("cut_body"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("cut_body=-3"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("oversize=huge"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("content_type="), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("content_type=text/plain\r\nx-evil: 1"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("sse_error=soon"), std::invalid_argument);
  CHECK_THROWS_AS(sim::parse_fault("truncate_sse=-1"), std::invalid_argument);
}
