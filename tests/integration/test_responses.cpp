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
  CHECK(r.status == 404);
  auto e = json::parse(r.body)["error"];
  CHECK(e["param"] == "previous_response_id");
  CHECK(e["code"] == "response_not_found");
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

namespace {

std::map<std::string, std::string> bearer(const std::string& key) {
  return {{"authorization", "Bearer " + key}};
}

// The dialect gateway with two keys, so that stored responses have owners.
std::string keyed_yaml(sim& s, const std::string& extra = "") {
  return dialect_gateway_yaml(s) + "keys:\n  - { name: ada, key_sha256: \"" +
         sha256_hex("sk-ada") + "\" }\n  - { name: bob, key_sha256: \"" + sha256_hex("sk-bob") +
         "\" }\n" + extra;
}

json last_sent(sim& s, const std::string& provider) {
  return json::parse(json::parse(s.stats(provider))["last_request"]["body"].get<std::string>());
}

}  // namespace

TEST_CASE("responses: store keeps a response; previous_response_id continues it on a chat backend") {
  sim s(k_dialect_sim);
  gateway g(keyed_yaml(s), k_dialect_env);
  json first = {{"model", "fast/m-fast"}, {"input", "My name is Ada."}};  // store: the default
  auto r1 = http_call(g.port, "POST", "/v1/responses", first.dump(), bearer("sk-ada"));
  REQUIRE(r1.status == 200);
  const json one = json::parse(r1.body);
  CHECK(one["store"] == true);
  CHECK(one["previous_response_id"].is_null());
  const std::string id = one["id"];

  // Retrieved by the key that made it, exactly as answered; another key finds nothing.
  auto got = http_call(g.port, "GET", "/v1/responses/" + id, "", bearer("sk-ada"));
  REQUIRE(got.status == 200);
  CHECK(json::parse(got.body) == one);
  auto other = http_call(g.port, "GET", "/v1/responses/" + id, "", bearer("sk-bob"));
  CHECK(other.status == 404);
  CHECK(json::parse(other.body)["error"]["code"] == "response_not_found");
  CHECK(http_call(g.port, "GET", "/v1/responses/" + id).status == 404);  // nor does no key
  auto items = http_call(g.port, "GET", "/v1/responses/" + id + "/input_items", "",
                         bearer("sk-ada"));
  REQUIRE(items.status == 200);
  const json list = json::parse(items.body);
  REQUIRE(list["data"].size() == 1);
  CHECK(list["data"][0]["role"] == "user");
  CHECK(list["data"][0]["content"][0]["text"] == "My name is Ada.");
  CHECK(list["first_id"].get<std::string>().rfind("msg_", 0) == 0);

  // The next turn names only the new input: the stateless backend gets the whole conversation.
  json second = {{"model", "fast/m-fast"},
                 {"instructions", "Answer in one word."},
                 {"input", "What is my name?"},
                 {"previous_response_id", id}};
  auto r2 = http_call(g.port, "POST", "/v1/responses", second.dump(), bearer("sk-ada"));
  REQUIRE(r2.status == 200);
  const json two = json::parse(r2.body);
  CHECK(two["previous_response_id"] == id);
  const json sent = last_sent(s, "fast");
  const json& m = sent["messages"];
  REQUIRE(m.size() == 4);
  CHECK(m[0] == json{{"role", "system"}, {"content", "Answer in one word."}});
  CHECK(m[1] == json{{"role", "user"}, {"content", "My name is Ada."}});
  CHECK(m[2]["role"] == "assistant");
  CHECK(m[2]["content"] == output_text(one));
  CHECK(m[3] == json{{"role", "user"}, {"content", "What is my name?"}});
  // Another key cannot continue it (nor learn that it exists).
  auto stolen = http_call(g.port, "POST", "/v1/responses", second.dump(), bearer("sk-bob"));
  CHECK(stolen.status == 404);
  CHECK(json::parse(stolen.body)["error"]["param"] == "previous_response_id");

  // A third turn, streamed: stored before response.completed reaches the client.
  json third = {{"model", "fast/m-fast"},
                {"input", "Thanks."},
                {"previous_response_id", two["id"]},
                {"stream", true}};
  stream_client c(g.port, third.dump(), bearer("sk-ada"), "/v1/responses");
  REQUIRE(c.status() == 200);
  auto streamed = read_responses_stream(c);
  REQUIRE(streamed.completed.is_object());
  CHECK(streamed.completed["store"] == true);
  CHECK(streamed.completed["previous_response_id"] == two["id"]);
  CHECK(last_sent(s, "fast")["messages"].size() == 5);
  auto kept = http_call(g.port, "GET", "/v1/responses/" + streamed.completed["id"].get<std::string>(),
                        "", bearer("sk-ada"));
  REQUIRE(kept.status == 200);
  CHECK(json::parse(kept.body)["output"] == streamed.completed["output"]);
  auto all = http_call(g.port, "GET",
                       "/v1/responses/" + streamed.completed["id"].get<std::string>() +
                           "/input_items?order=asc&limit=100",
                       "", bearer("sk-ada"));
  REQUIRE(all.status == 200);
  CHECK(json::parse(all.body)["data"].size() == 5);  // 3 inputs and the 2 answers before

  // Deleted only by its owner; then gone.
  CHECK(http_call(g.port, "DELETE", "/v1/responses/" + id, "", bearer("sk-bob")).status == 404);
  auto gone = http_call(g.port, "DELETE", "/v1/responses/" + id, "", bearer("sk-ada"));
  REQUIRE(gone.status == 200);
  CHECK(json::parse(gone.body) == json{{"id", id}, {"object", "response"}, {"deleted", true}});
  CHECK(http_call(g.port, "GET", "/v1/responses/" + id, "", bearer("sk-ada")).status == 404);
  CHECK(http_call(g.port, "POST", "/v1/responses", second.dump(), bearer("sk-ada")).status == 404);

  // store: false (what Codex sends, with the whole history) keeps nothing.
  json unstored = {{"model", "fast/m-fast"}, {"input", "Hi"}, {"store", false}};
  auto r4 = http_call(g.port, "POST", "/v1/responses", unstored.dump(), bearer("sk-ada"));
  REQUIRE(r4.status == 200);
  CHECK(json::parse(r4.body)["store"] == false);
  CHECK(http_call(g.port, "GET", "/v1/responses/" + json::parse(r4.body)["id"].get<std::string>(),
                  "", bearer("sk-ada"))
            .status == 404);
  auto bad_page = http_call(g.port, "GET",
                            "/v1/responses/" + two["id"].get<std::string>() + "/input_items?limit=0",
                            "", bearer("sk-ada"));
  CHECK(bad_page.status == 400);
  CHECK(json::parse(bad_page.body)["error"]["param"] == "limit");
  CHECK(http_call(g.port, "GET", "/v1/responses/a/b", "", bearer("sk-ada")).status == 404);
}

TEST_CASE("responses: previous_response_id through the Anthropic and Gemini translations") {
  sim s(k_dialect_sim);
  gateway g(keyed_yaml(s), k_dialect_env);
  for (auto [model, provider] : {std::pair{"claude/claude-sonnet-4-5", "claude"},
                                 std::pair{"gem/gemini-2.5-flash", "gem"}}) {
    INFO(model);
    json first = {{"model", model}, {"input", "My name is Ada."}};
    auto r1 = http_call(g.port, "POST", "/v1/responses", first.dump(), bearer("sk-ada"));
    REQUIRE(r1.status == 200);
    json second = {{"model", model},
                   {"input", "What is my name?"},
                   {"previous_response_id", json::parse(r1.body)["id"]}};
    auto r2 = http_call(g.port, "POST", "/v1/responses", second.dump(), bearer("sk-ada"));
    REQUIRE(r2.status == 200);
    const std::string sent = last_sent(s, provider).dump();
    CHECK(sent.find("My name is Ada.") != std::string::npos);
    CHECK(sent.find("What is my name?") != std::string::npos);
  }
}

TEST_CASE("responses: with stats.responses.store false nothing is kept, and that is said") {
  sim s(k_dialect_sim);
  gateway g(keyed_yaml(s, "stats: { responses: { store: false } }\n"), k_dialect_env);
  json asked = {{"model", "fast/m-fast"}, {"input", "Hi"}, {"store", true}};
  auto r = http_call(g.port, "POST", "/v1/responses", asked.dump(), bearer("sk-ada"));
  REQUIRE(r.status == 200);
  const json j = json::parse(r.body);
  CHECK(j["store"] == false);
  CHECK(j["metadata"]["meridian_dropped"] == json::array({"store"}));
  CHECK(http_call(g.port, "GET", "/v1/responses/" + j["id"].get<std::string>(), "",
                  bearer("sk-ada"))
            .status == 404);
  json chained = {{"model", "fast/m-fast"}, {"input", "Hi"}, {"previous_response_id", j["id"]}};
  auto refused = http_call(g.port, "POST", "/v1/responses", chained.dump(), bearer("sk-ada"));
  CHECK(refused.status == 400);
  CHECK(json::parse(refused.body)["error"]["code"] == "responses_not_stored");
}

TEST_CASE("responses: a backend that serves Responses gets the client's call as it was sent") {
  sim s(k_dialect_sim);
  gateway g(dialect_gateway_yaml(s) + native_responses_provider_yaml(s) + "keys:\n  - { name: ada, key_sha256: \"" + sha256_hex("sk-ada") + "\" }\n",
            k_dialect_env);
  json first = {{"model", "native/m-fast"},
                {"instructions", "Be brief."},
                {"input", "My name is Ada."},
                {"metadata", {{"app", "t"}}},
                {"text", {{"verbosity", "low"}}}};
  auto r1 = http_call(g.port, "POST", "/v1/responses", first.dump(), bearer("sk-ada"));
  REQUIRE(r1.status == 200);
  const json one = json::parse(r1.body);
  // The backend's own Response (its id, its items), with the gateway's provider and cost.
  CHECK(one["id"].get<std::string>().rfind("resp_sim_", 0) == 0);
  CHECK(one["provider"] == "native");
  CHECK(one["usage"]["cost"].get<double>() > 0);
  const json up = json::parse(s.stats("fast"))["last_request"];
  CHECK(up["target"] == "/v1/responses");
  const json sent = json::parse(up["body"].get<std::string>());
  CHECK(sent["model"] == "m-fast");
  CHECK(sent["input"] == "My name is Ada.");
  CHECK(sent["text"] == json{{"verbosity", "low"}});  // what a translation would drop
  CHECK(sent["metadata"] == json{{"app", "t"}});
  CHECK(r1.headers.count("x-meridian-dropped") == 0);
  // Usage exact against the upstream's own numbers.
  auto chat = http_call(g.port, "POST", "/v1/chat/completions",
                        openai_body("fast/m-fast", false, "My name is Ada."), bearer("sk-ada"));
  const json c = json::parse(chat.body);
  CHECK(one["usage"]["output_tokens"] == c["usage"]["completion_tokens"]);

  // Kept by Meridian under the backend's id, and continued: the backend gets the whole
  // conversation, never an id it does not know.
  auto got = http_call(g.port, "GET", "/v1/responses/" + one["id"].get<std::string>(), "",
                       bearer("sk-ada"));
  REQUIRE(got.status == 200);
  CHECK(json::parse(got.body) == one);
  json second = {{"model", "native/m-fast"},
                 {"input", "What is my name?"},
                 {"previous_response_id", one["id"]},
                 {"stream", true}};
  stream_client sc(g.port, second.dump(), bearer("sk-ada"), "/v1/responses");
  REQUIRE(sc.status() == 200);
  auto streamed = read_responses_stream(sc);
  REQUIRE(streamed.completed.is_object());
  CHECK(streamed.completed["provider"] == "native");
  CHECK(streamed.completed["usage"]["cost"].get<double>() > 0);
  CHECK(streamed.events.front()["type"] == "response.created");
  for (std::size_t i = 0; i < streamed.events.size(); ++i)
    CHECK(streamed.events[i]["sequence_number"] == i);  // the backend's own numbering
  const json sent2 = json::parse(
      json::parse(s.stats("fast"))["last_request"]["body"].get<std::string>());
  CHECK_FALSE(sent2.contains("previous_response_id"));
  REQUIRE(sent2["input"].size() == 3);
  CHECK(sent2["input"][0]["content"][0]["text"] == "My name is Ada.");
  CHECK(sent2["input"][1]["role"] == "assistant");
  CHECK(sent2["input"][2]["content"][0]["text"] == "What is my name?");
  auto kept = http_call(g.port, "GET",
                        "/v1/responses/" + streamed.completed["id"].get<std::string>(), "",
                        bearer("sk-ada"));
  REQUIRE(kept.status == 200);
  CHECK(json::parse(kept.body)["output"] == streamed.completed["output"]);

  // The chat-only provider of the same server still gets the translation.
  auto translated = http_call(g.port, "POST", "/v1/responses",
                              json{{"model", "fast/m-fast"}, {"input", "Hi"}}.dump(),
                              bearer("sk-ada"));
  REQUIRE(translated.status == 200);
  CHECK(json::parse(s.stats("fast"))["last_request"]["target"] == "/v1/chat/completions");
}
