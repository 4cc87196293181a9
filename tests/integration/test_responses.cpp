// The OpenAI Responses API (POST /v1/responses) through the real binary, translated to every
// backend dialect meridian-sim speaks: whole answers, the event stream, a tool round trip and
// the errors — with usage equal to what the same conversation costs on /v1/chat/completions.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/dialect_fixture.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

const char* const k_models[] = {"fast/m-fast", "claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"};

// The conversation openai_body sends, in the Responses shape.
json responses_body(const std::string& model, bool stream,
                    const std::string& text = "Hello there") {
  json b = {{"model", model}, {"instructions", "Be brief."}, {"input", text}, {"store", false}};
  if (stream) b["stream"] = true;
  return b;
}

std::string output_text(const json& response) {
  std::string text;
  for (const auto& item : response["output"])
    if (item["type"] == "message")
      for (const auto& part : item["content"])
        if (part["type"] == "output_text") text += part["text"].get<std::string>();
  return text;
}

const json k_weather_function = {{"type", "function"},
                                 {"name", "get_weather"},
                                 {"description", "Weather for a city"},
                                 {"parameters",
                                  {{"type", "object"},
                                   {"properties", {{"location", {{"type", "string"}}}}},
                                   {"required", {"location"}}}}};

// The turn after a function call, as Codex sends it: the whole history and the call's output.
json second_turn(const std::string& model, const json& call) {
  json next = responses_body(model, false);
  next["tools"] = json::array({k_weather_function});
  next["input"] = json::array(
      {{{"role", "user"}, {"content", "What is the weather in Paris?"}},
       {{"type", "function_call"},
        {"call_id", call["call_id"]},
        {"name", call["name"]},
        {"arguments", call["arguments"]}},
       {{"type", "function_call_output"}, {"call_id", call["call_id"]}, {"output", "Sunny"}}});
  return next;
}

struct responses_stream {
  std::vector<json> events;
  std::string text;
  json completed;  // the final response object
};

responses_stream read_responses_stream(stream_client& c) {
  responses_stream r;
  while (auto ev = c.next_event()) {
    REQUIRE(*ev != "[DONE]");  // the Responses stream has no [DONE]
    auto e = json::parse(*ev);
    if (e["type"] == "response.output_text.delta") r.text += e["delta"].get<std::string>();
    if (e["type"] == "response.completed") r.completed = e["response"];
    r.events.push_back(std::move(e));
  }
  return r;
}

}  // namespace

TEST_CASE("responses: a Response object from every backend dialect, usage as on chat") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  for (const char* model : k_models) {
    INFO(model);
    auto chat = http_call(g.port, "POST", "/v1/chat/completions", openai_body(model, false));
    REQUIRE(chat.status == 200);
    const json c = json::parse(chat.body);
    auto r = http_call(g.port, "POST", "/v1/responses", responses_body(model, false).dump());
    REQUIRE(r.status == 200);
    const json j = json::parse(r.body);
    CHECK(j["object"] == "response");
    CHECK(j["status"] == "completed");
    CHECK(j["model"] == model);
    CHECK(j["store"] == false);
    CHECK(j["id"].get<std::string>().rfind("resp_", 0) == 0);
    CHECK(output_text(j) == c["choices"][0]["message"]["content"]);
    const json& u = j["usage"];
    CHECK(u["input_tokens"] == c["usage"]["prompt_tokens"]);
    CHECK(u["input_tokens_details"]["cached_tokens"] ==
          c["usage"]["prompt_tokens_details"]["cached_tokens"]);
    CHECK(u["output_tokens"] == c["usage"]["completion_tokens"]);
    CHECK(u["total_tokens"] == c["usage"]["total_tokens"]);
    CHECK(u["cost"].get<double>() == doctest::Approx(c["usage"]["cost"].get<double>()));
    CHECK(r.headers["x-meridian-provider"] == c["provider"]);
  }
}

TEST_CASE("responses: what the backend's dialect cannot take is listed, header and metadata alike") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  // reasoning.effort becomes chat's reasoning_effort, which reaches models that take a reasoning
  // control (gemini-2.5-flash, as a thinking budget) and is listed for the others (m-fast is not
  // declared as one; the Anthropic encoder takes none); the web_search tool is dropped on every
  // lane.
  const std::pair<const char*, std::string> lanes[] = {
      {"fast/m-fast", "tools[0]: web_search,reasoning_effort"},
      {"claude/claude-sonnet-4-5", "tools[0]: web_search,reasoning_effort"},
      {"gem/gemini-2.5-flash", "tools[0]: web_search"}};
  for (const auto& [model, dropped] : lanes) {
    INFO(model);
    json body = responses_body(model, false);
    body["reasoning"] = {{"effort", "low"}};
    body["tools"] = json::array({{{"type", "web_search"}}});
    auto r = http_call(g.port, "POST", "/v1/responses", body.dump());
    REQUIRE(r.status == 200);
    CHECK(r.headers["x-meridian-dropped"] == dropped);
    const json j = json::parse(r.body);
    std::string listed;
    for (const auto& d : j["metadata"]["meridian_dropped"])
      listed += (listed.empty() ? "" : ",") + d.get<std::string>();
    CHECK(listed == dropped);
  }
}

TEST_CASE("responses: the event stream, in order, numbered, ending in response.completed") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  for (const char* model : k_models) {
    INFO(model);
    auto whole = http_call(g.port, "POST", "/v1/responses", responses_body(model, false).dump());
    REQUIRE(whole.status == 200);
    const json w = json::parse(whole.body);
    stream_client c(g.port, responses_body(model, true).dump(), {}, "/v1/responses");
    REQUIRE(c.status() == 200);
    CHECK(c.headers().at("content-type").rfind("text/event-stream", 0) == 0);
    auto r = read_responses_stream(c);
    REQUIRE(r.events.size() >= 6);
    CHECK(r.events.front()["type"] == "response.created");
    CHECK(r.events[1]["type"] == "response.in_progress");
    CHECK(r.events.back()["type"] == "response.completed");
    for (std::size_t i = 0; i < r.events.size(); ++i) CHECK(r.events[i]["sequence_number"] == i);
    CHECK(r.text == output_text(w));
    CHECK(output_text(r.completed) == r.text);
    CHECK(r.completed["usage"]["input_tokens"] == w["usage"]["input_tokens"]);
    CHECK(r.completed["usage"]["output_tokens"] == w["usage"]["output_tokens"]);
    CHECK(r.completed["usage"]["cost"].get<double>() ==
          doctest::Approx(w["usage"]["cost"].get<double>()));
  }
}

TEST_CASE("responses: a function tool round trip through the Anthropic and Gemini backends") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  for (std::string model : {"claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"}) {
    INFO(model);
    json body = responses_body(model, false, "What is the weather in Paris?");
    body["tools"] = json::array({k_weather_function});
    auto r = http_call(g.port, "POST", "/v1/responses", body.dump());
    REQUIRE(r.status == 200);
    const json j = json::parse(r.body);
    json call;
    for (const auto& item : j["output"])
      if (item["type"] == "function_call") call = item;
    REQUIRE(call.is_object());
    CHECK(call["name"] == "get_weather");
    CHECK(call["status"] == "completed");
    CHECK(json::parse(call["arguments"].get<std::string>()) == json{{"location", "Paris"}});
    CHECK_FALSE(call["call_id"].get<std::string>().empty());
    // Codex's next turn: the whole history with the call's output, store: false.
    auto second = http_call(g.port, "POST", "/v1/responses", second_turn(model, call).dump());
    REQUIRE(second.status == 200);
    CHECK_FALSE(output_text(json::parse(second.body)).empty());
    // The backend was sent the tool result for the call it made.
    const std::string provider = model.substr(0, model.find('/'));
    CHECK(json::parse(s.stats(provider))["last_request"]["body"].get<std::string>().find("Sunny") !=
          std::string::npos);
  }
}

TEST_CASE("responses: a chat backend gets the history as assistant tool_calls and a tool message") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  const json call = {
      {"call_id", "call_7"}, {"name", "get_weather"}, {"arguments", R"({"location":"Paris"})"}};
  auto r = http_call(g.port, "POST", "/v1/responses", second_turn("fast/m-fast", call).dump());
  REQUIRE(r.status == 200);
  CHECK_FALSE(output_text(json::parse(r.body)).empty());
  auto sent = json::parse(json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  const json& messages = sent["messages"];
  REQUIRE(messages.size() == 4);  // instructions, the user turn, the call, its output
  CHECK(messages[0]["role"] == "system");
  CHECK(messages[0]["content"] == "Be brief.");
  CHECK(messages[2]["role"] == "assistant");
  CHECK(messages[2]["tool_calls"][0]["id"] == "call_7");
  CHECK(messages[2]["tool_calls"][0]["function"]["name"] == "get_weather");
  CHECK(messages[3]["role"] == "tool");
  CHECK(messages[3]["tool_call_id"] == "call_7");
  CHECK(messages[3]["content"] == "Sunny");
  CHECK(sent["tools"][0]["function"]["name"] == "get_weather");
  CHECK(sent["model"] == "m-fast");
  CHECK_FALSE(sent.contains("store"));
  CHECK_FALSE(sent.contains("input"));
}

TEST_CASE("responses: errors are OpenAI's shape and name the member") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s), k_dialect_env);
  json chained = responses_body("fast/m-fast", false);
  chained["previous_response_id"] = "resp_abc";
  auto r = http_call(g.port, "POST", "/v1/responses", chained.dump());
  CHECK(r.status == 400);
  auto e = json::parse(r.body)["error"];
  CHECK(e["param"] == "previous_response_id");
  CHECK(e["type"] == "invalid_request_error");
  auto missing = http_call(g.port, "POST", "/v1/responses", R"({"input":"hi"})");
  CHECK(missing.status == 400);
  CHECK(json::parse(missing.body)["error"]["param"] == "model");
  auto unknown =
      http_call(g.port, "POST", "/v1/responses", responses_body("nobody/none", false).dump());
  CHECK(unknown.status == 404);
  CHECK(json::parse(unknown.body)["error"]["code"] == "model_not_found");
  auto bad = http_call(g.port, "POST", "/v1/responses", "{\"model\":");
  CHECK(bad.status == 400);
  CHECK(json::parse(bad.body)["error"]["code"] == "invalid_json");
}
