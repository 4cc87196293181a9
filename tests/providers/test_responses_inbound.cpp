// Inbound OpenAI Responses API: request, whole-answer and stream translation against fixed
// examples, with every event's data parsed and replayed the way OpenAI's SDK accumulates it.
#include <doctest/doctest.h>

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/responses_inbound.hpp"
#include "providers/sse.hpp"

using namespace meridian::providers;
using nlohmann::json;

namespace {

responses_translation translate_ok(const std::string& body) {
  auto r = responses_request_to_openai(body);
  if (auto* e = std::get_if<request_error>(&r)) FAIL_CHECK(e->param << ": " << e->message);
  REQUIRE(std::holds_alternative<responses_translation>(r));
  return std::get<responses_translation>(std::move(r));
}

json chat_of(const std::string& body) {
  return json::parse(translate_ok(body).chat_body);
}

request_error translate_err(const std::string& body) {
  auto r = responses_request_to_openai(body);
  REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

// A request around `input` (JSON text) with a model and any further members.
std::string request(const std::string& input, const std::string& extra = "") {
  return R"({"model":"gpt-x","input":)" + input + extra + "}";
}

bool is_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// An id as `prefix` followed by 24 hex digits.
void check_id(const json& id, const std::string& prefix) {
  REQUIRE(id.is_string());
  std::string s = id.get<std::string>();
  CHECK(s.rfind(prefix, 0) == 0);
  CHECK(s.size() == prefix.size() + 24);
  CHECK(is_hex(s.substr(prefix.size())));
}

// The value with every item "id" removed (ids are random), for comparing outputs.
json without_ids(json v) {
  if (v.is_array()) {
    for (auto& e : v) e = without_ids(e);
  } else if (v.is_object()) {
    v.erase("id");
    for (auto& [k, e] : v.items()) e = without_ids(e);
  }
  return v;
}

std::string completion(const json& message, const std::string& finish = "stop",
                       const json& usage = nullptr) {
  json body{{"id", "chatcmpl-1"},
            {"object", "chat.completion"},
            {"model", "upstream-model"},
            {"choices", {{{"index", 0}, {"message", message}, {"finish_reason", finish}}}}};
  if (!usage.is_null()) body["usage"] = usage;
  return body.dump();
}

json answer(const std::string& body, const responses_translation& t,
            const std::optional<usage>& tokens = std::nullopt,
            const answer_notes* notes = nullptr) {
  return json::parse(openai_response_to_responses(body, t, "gpt-x", tokens, notes));
}

std::string chunk(const json& delta, const json& finish = nullptr) {
  return json{{"id", "chatcmpl-1"},
              {"object", "chat.completion.chunk"},
              {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}}
      .dump();
}

std::string tool_delta(int index, const std::string& id, const std::string& name,
                       const std::string& args) {
  json call{{"index", index}};
  if (!id.empty()) call["id"] = id;
  if (!id.empty()) call["type"] = "function";
  json fn = json::object();
  if (!name.empty()) fn["name"] = name;
  fn["arguments"] = args;
  call["function"] = fn;
  json calls = json::array();
  calls.push_back(std::move(call));
  return chunk({{"tool_calls", std::move(calls)}});
}

struct event {
  std::string type;
  json data;
  std::string raw;
};

// Every event's data parsed; its `type` is the SSE event name and sequence numbers count up
// from 0 without a gap.
std::vector<event> parsed(const std::vector<sse_event>& evs, std::uint64_t first = 0) {
  std::vector<event> out;
  std::uint64_t seq = first;
  for (const auto& e : evs) {
    json data = json::parse(e.data, nullptr, false);
    REQUIRE_FALSE(data.is_discarded());
    REQUIRE(data.is_object());
    CHECK(data["type"] == e.event);
    REQUIRE(data["sequence_number"].is_number_unsigned());
    CHECK(data["sequence_number"].get<std::uint64_t>() == seq);
    ++seq;
    out.push_back({e.event, std::move(data), e.data});
  }
  return out;
}

std::vector<std::string> types(const std::vector<event>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs) out.push_back(e.type);
  return out;
}

// Rebuilds the output the way openai-node's response accumulator does, checking what it
// checks (response.created first, appends at the next index, item ids and types matching,
// unique call_ids), and returns the final event's response.
json replay(const std::vector<event>& evs) {
  REQUIRE_FALSE(evs.empty());
  REQUIRE(evs.front().type == "response.created");
  json output = json::array();
  std::set<std::string> ids, call_ids;
  auto item_at = [&](const json& d, const std::string& want_type) -> json& {
    std::size_t i = d["output_index"].get<std::size_t>();
    REQUIRE(i < output.size());
    json& item = output[i];
    CHECK(item["id"] == d["item_id"]);
    CHECK(item["type"] == want_type);
    return item;
  };
  for (const auto& e : evs) {
    const json& d = e.data;
    if (e.type == "response.output_item.added") {
      REQUIRE(d["output_index"] == output.size());
      const json& item = d["item"];
      REQUIRE(item["id"].is_string());
      CHECK(ids.insert(item["id"].get<std::string>()).second);
      if (item["type"] == "function_call" || item["type"] == "custom_tool_call") {
        REQUIRE(item["call_id"].is_string());
        CHECK_FALSE(item["call_id"].get<std::string>().empty());
        CHECK(call_ids.insert(item["call_id"].get<std::string>()).second);
      }
      output.push_back(item);
    } else if (e.type == "response.output_item.done") {
      std::size_t i = d["output_index"].get<std::size_t>();
      REQUIRE(i < output.size());
      CHECK(output[i]["id"] == d["item"]["id"]);
      CHECK(output[i]["type"] == d["item"]["type"]);
      output[i] = d["item"];
    } else if (e.type == "response.content_part.added") {
      bool reasoning = d["part"]["type"] == "reasoning_text";
      json& item = item_at(d, reasoning ? "reasoning" : "message");
      REQUIRE(d["content_index"] == item["content"].size());
      item["content"].push_back(d["part"]);
    } else if (e.type == "response.content_part.done") {
      bool reasoning = d["part"]["type"] == "reasoning_text";
      json& item = item_at(d, reasoning ? "reasoning" : "message");
      std::size_t c = d["content_index"].get<std::size_t>();
      REQUIRE(c < item["content"].size());
      item["content"][c] = d["part"];
    } else if (e.type == "response.output_text.delta") {
      json& part = item_at(d, "message")["content"].at(d["content_index"].get<std::size_t>());
      REQUIRE(part["type"] == "output_text");
      CHECK(d["logprobs"] == json::array());
      part["text"] = part["text"].get<std::string>() + d["delta"].get<std::string>();
    } else if (e.type == "response.output_text.done") {
      json& part = item_at(d, "message")["content"].at(d["content_index"].get<std::size_t>());
      CHECK(part["text"] == d["text"]);
    } else if (e.type == "response.refusal.delta") {
      json& part = item_at(d, "message")["content"].at(d["content_index"].get<std::size_t>());
      REQUIRE(part["type"] == "refusal");
      part["refusal"] = part["refusal"].get<std::string>() + d["delta"].get<std::string>();
    } else if (e.type == "response.refusal.done") {
      json& part = item_at(d, "message")["content"].at(d["content_index"].get<std::size_t>());
      CHECK(part["refusal"] == d["refusal"]);
    } else if (e.type == "response.reasoning_text.delta") {
      json& part = item_at(d, "reasoning")["content"].at(d["content_index"].get<std::size_t>());
      REQUIRE(part["type"] == "reasoning_text");
      part["text"] = part["text"].get<std::string>() + d["delta"].get<std::string>();
    } else if (e.type == "response.reasoning_text.done") {
      json& part = item_at(d, "reasoning")["content"].at(d["content_index"].get<std::size_t>());
      CHECK(part["text"] == d["text"]);
    } else if (e.type == "response.function_call_arguments.delta") {
      json& item = item_at(d, "function_call");
      item["arguments"] = item["arguments"].get<std::string>() + d["delta"].get<std::string>();
    } else if (e.type == "response.function_call_arguments.done") {
      json& item = item_at(d, "function_call");
      CHECK(item["arguments"] == d["arguments"]);
      CHECK(item["name"] == d["name"]);
    } else if (e.type == "response.custom_tool_call_input.delta") {
      json& item = item_at(d, "custom_tool_call");
      item["input"] = item["input"].get<std::string>() + d["delta"].get<std::string>();
    } else if (e.type == "response.custom_tool_call_input.done") {
      json& item = item_at(d, "custom_tool_call");
      CHECK(item["input"] == d["input"]);
    }
  }
  const event& last = evs.back();
  REQUIRE(last.data.contains("response"));
  CHECK(last.data["response"]["output"] == output);
  return last.data["response"];
}

std::vector<event> run(const responses_translation& t, const std::vector<std::string>& chunks,
                       const std::optional<usage>& tokens = std::nullopt,
                       const answer_notes* notes = nullptr) {
  responses_stream_encoder enc(t, "gpt-x");
  std::vector<sse_event> out;
  for (const auto& c : chunks) enc.on_chunk(c, out);
  enc.finish(tokens, out, notes);
  return parsed(out);
}

std::vector<event> of_type(const std::vector<event>& evs, const std::string& type) {
  std::vector<event> out;
  for (const auto& e : evs)
    if (e.type == type) out.push_back(e);
  return out;
}

const char* k_custom_tool = R"({"type":"custom","name":"apply_patch",
  "description":"Apply a patch",
  "format":{"type":"grammar","syntax":"lark","definition":"start: patch"}})";

}  // namespace

// ---- requests ------------------------------------------------------------------------------

TEST_CASE("responses inbound: a string input is one user message, with the echo's defaults") {
  auto t = translate_ok(request(R"("Say hi")"));
  json chat = json::parse(t.chat_body);
  CHECK(chat ==
        json{{"model", "gpt-x"}, {"messages", {{{"role", "user"}, {"content", "Say hi"}}}}});
  CHECK_FALSE(t.stream);
  CHECK(t.dropped.empty());
  CHECK(t.custom_tools.empty());
  json echo = json::parse(t.echo.dump());
  CHECK(echo["instructions"].is_null());
  CHECK(echo["tools"] == json::array());
  CHECK(echo["tool_choice"] == "auto");
  CHECK(echo["parallel_tool_calls"] == true);
  CHECK(echo["max_output_tokens"].is_null());
  CHECK(echo["metadata"] == json::object());
  CHECK(echo["reasoning"].is_null());
  CHECK(echo["text"] == json{{"format", {{"type", "text"}}}});
  CHECK(echo["temperature"].is_null());
  CHECK(echo["top_p"].is_null());
  CHECK(echo["user"].is_null());
}

TEST_CASE("responses inbound: instructions become the first system message") {
  json chat = chat_of(request(R"("hi")", R"(,"instructions":"Be terse.")"));
  REQUIRE(chat["messages"].size() == 2);
  CHECK(chat["messages"][0] == json{{"role", "system"}, {"content", "Be terse."}});
  CHECK(chat["messages"][1]["role"] == "user");
  auto t = translate_ok(request(R"("hi")", R"(,"instructions":"Be terse.")"));
  CHECK(t.echo["instructions"] == "Be terse.");
}

TEST_CASE("responses inbound: messages with parts, roles and the developer role") {
  json chat = chat_of(request(R"([
    {"role":"developer","content":"Rules."},
    {"type":"message","role":"system","content":[{"type":"input_text","text":"A"},
                                                 {"type":"input_text","text":"B"}]},
    {"role":"user","content":[{"type":"input_text","text":"one"},{"type":"input_text","text":"two"}]},
    {"type":"message","role":"user","content":[
        {"type":"input_text","text":"look"},
        {"type":"input_image","image_url":"https://x/cat.png","detail":"low"},
        {"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},
    {"type":"message","role":"assistant","id":"msg_1","status":"completed",
     "content":[{"type":"output_text","text":"Sure.","annotations":[]}]},
    {"role":"assistant","content":[{"type":"refusal","refusal":"No."}]},
    {"role":"user","content":"plain"}
  ])"));
  json want = json::array();
  want.push_back({{"role", "system"}, {"content", "Rules."}});
  want.push_back({{"role", "system"}, {"content", "A\nB"}});
  want.push_back({{"role", "user"}, {"content", "one\ntwo"}});
  want.push_back(
      {{"role", "user"},
       {"content",
        {{{"type", "text"}, {"text", "look"}},
         {{"type", "image_url"}, {"image_url", {{"url", "https://x/cat.png"}, {"detail", "low"}}}},
         {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,AAAA"}}}}}}});
  want.push_back({{"role", "assistant"}, {"content", "Sure."}});
  want.push_back({{"role", "assistant"}, {"content", "No."}});
  want.push_back({{"role", "user"}, {"content", "plain"}});
  CHECK(chat["messages"] == want);
}

TEST_CASE("responses inbound: input_file parts are dropped and listed; images by file_id refused") {
  auto t = translate_ok(request(R"([{"role":"user","content":[
      {"type":"input_text","text":"read this"},
      {"type":"input_file","file_id":"file-1"}]}])"));
  json chat = json::parse(t.chat_body);
  CHECK(chat["messages"] == json{{{"role", "user"}, {"content", "read this"}}});
  CHECK(t.dropped == std::vector<std::string>{"input[0].content[1]: input_file"});

  auto e = translate_err(request(R"([{"role":"user","content":[
      {"type":"input_text","text":"see"},{"type":"input_image","file_id":"file-2"}]}])"));
  CHECK(e.param == "input[0].content[1].file_id");
  CHECK(e.message.find("image_url") != std::string::npos);

  e = translate_err(request(R"([{"role":"user","content":[{"type":"input_image"}]}])"));
  CHECK(e.param == "input[0].content[0].image_url");
  e = translate_err(request(R"([{"role":"user","content":[{"type":"video","url":"x"}]}])"));
  CHECK(e.param == "input[0].content[0].type");
}

TEST_CASE(
    "responses inbound: function calls merge into the assistant turn; outputs are tool "
    "messages") {
  json chat = chat_of(request(R"([
    {"role":"user","content":"weather in Paris and Rome?"},
    {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"xyz"},
    {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
    {"type":"function_call","call_id":"call_a","name":"weather","arguments":"{\"city\":\"Paris\"}"},
    {"type":"function_call","id":"fc_2","call_id":"call_b","name":"weather","arguments":"{\"city\":\"Rome\"}","status":"completed"},
    {"type":"function_call_output","call_id":"call_a","output":"18C"},
    {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"21C"},
                                                               {"type":"input_text","text":"sunny"}]},
    {"type":"function_call","call_id":"call_c","name":"clock","arguments":"{}"},
    {"type":"function_call_output","call_id":"call_c","output":"noon"}
  ])"));
  const json& m = chat["messages"];
  REQUIRE(m.size() == 6);
  CHECK(m[0] == json{{"role", "user"}, {"content", "weather in Paris and Rome?"}});
  CHECK(m[1]["role"] == "assistant");
  CHECK(m[1]["content"] == "Checking.");
  REQUIRE(m[1]["tool_calls"].size() == 2);
  CHECK(m[1]["tool_calls"][0] ==
        json{{"id", "call_a"},
             {"type", "function"},
             {"function", {{"name", "weather"}, {"arguments", R"({"city":"Paris"})"}}}});
  CHECK(m[1]["tool_calls"][1]["id"] == "call_b");
  CHECK(m[2] == json{{"role", "tool"}, {"tool_call_id", "call_a"}, {"content", "18C"}});
  CHECK(m[3] == json{{"role", "tool"}, {"tool_call_id", "call_b"}, {"content", "21C\nsunny"}});
  // A call with no assistant text right before it is an assistant message of its own.
  CHECK(m[4]["role"] == "assistant");
  CHECK(m[4]["content"].is_null());
  CHECK(m[4]["tool_calls"].size() == 1);
  CHECK(m[4]["tool_calls"][0]["function"]["name"] == "clock");
  CHECK(m[5] == json{{"role", "tool"}, {"tool_call_id", "call_c"}, {"content", "noon"}});
}

TEST_CASE("responses inbound: reasoning items are dropped and listed") {
  auto t = translate_ok(request(R"([
    {"role":"user","content":"q"},
    {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"thinking"}]},
    {"role":"assistant","content":"a"},
    {"role":"user","content":"q2"}])"));
  json chat = json::parse(t.chat_body);
  CHECK(chat["messages"].size() == 3);
  CHECK(t.dropped == std::vector<std::string>{"input[1]: reasoning"});
}

TEST_CASE("responses inbound: tool outputs with images or files drop those parts") {
  auto t = translate_ok(request(R"([
    {"type":"function_call","call_id":"c1","name":"shot","arguments":"{}"},
    {"type":"function_call_output","call_id":"c1","output":[
       {"type":"input_text","text":"done"},{"type":"input_image","image_url":"https://x/y.png"}]}])"));
  json chat = json::parse(t.chat_body);
  CHECK(chat["messages"][1] == json{{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "done"}});
  CHECK(t.dropped == std::vector<std::string>{"input[1].output[1]: input_image"});
}

TEST_CASE("responses inbound: custom tools become one-string-parameter functions, both ways") {
  auto t = translate_ok(request(
      R"([
    {"role":"user","content":"fix it"},
    {"type":"custom_tool_call","call_id":"call_p","name":"apply_patch","input":"*** Begin Patch\n"},
    {"type":"custom_tool_call_output","call_id":"call_p","output":"Done!"}])",
      R"(,"tools":[)" + std::string(k_custom_tool) + R"(,{"type":"custom","name":"free"}])"));
  CHECK(t.custom_tools == std::vector<std::string>{"apply_patch", "free"});
  json chat = json::parse(t.chat_body);
  REQUIRE(chat["tools"].size() == 2);
  json fn = chat["tools"][0];
  CHECK(fn["type"] == "function");
  CHECK(fn["function"]["name"] == "apply_patch");
  CHECK(fn["function"]["description"] == "Apply a patch");
  const json& params = fn["function"]["parameters"];
  CHECK(params["type"] == "object");
  CHECK(params["required"] == json::array({"input"}));
  CHECK(params["additionalProperties"] == false);
  CHECK(params["properties"]["input"]["type"] == "string");
  std::string desc = params["properties"]["input"]["description"].get<std::string>();
  CHECK(desc.find("lark") != std::string::npos);
  CHECK(desc.find("start: patch") != std::string::npos);
  // Without a grammar the parameter is plain text.
  CHECK(chat["tools"][1]["function"]["parameters"]["properties"]["input"] ==
        json{{"type", "string"}});
  CHECK_FALSE(chat["tools"][1]["function"].contains("description"));

  const json& m = chat["messages"];
  REQUIRE(m.size() == 3);
  CHECK(m[1]["role"] == "assistant");
  CHECK(m[1]["content"].is_null());
  CHECK(m[1]["tool_calls"][0]["id"] == "call_p");
  CHECK(m[1]["tool_calls"][0]["function"]["name"] == "apply_patch");
  CHECK(json::parse(m[1]["tool_calls"][0]["function"]["arguments"].get<std::string>()) ==
        json{{"input", "*** Begin Patch\n"}});
  CHECK(m[2] == json{{"role", "tool"}, {"tool_call_id", "call_p"}, {"content", "Done!"}});
  // The echo shows the tools as the client sent them.
  CHECK(t.echo["tools"][0]["type"] == "custom");
  CHECK(t.echo["tools"][0]["format"]["type"] == "grammar");
}

TEST_CASE("responses inbound: function tools map; built-in tools are dropped and listed") {
  auto t = translate_ok(request(R"("hi")", R"(,"tools":[
    {"type":"function","name":"shell","description":"Run","parameters":{"type":"object",
      "properties":{"cmd":{"type":"string"}}},"strict":true},
    {"type":"web_search"},
    {"type":"namespace","name":"crm","description":"CRM, empty","tools":[]},
    {"type":"function","name":"noargs","parameters":null,"strict":null},
    {"type":"file_search","vector_store_ids":["vs_1"]},
    {"type":"web_search_preview"},{"type":"computer_use_preview"},{"type":"code_interpreter"},
    {"type":"image_generation"},{"type":"local_shell"},{"type":"mcp","server_label":"x"}],
    "tool_choice":"required","parallel_tool_calls":false)"));
  json chat = json::parse(t.chat_body);
  REQUIRE(chat["tools"].size() == 2);
  CHECK(chat["tools"][0] ==
        json::parse(R"({"type":"function","function":{"name":"shell","description":"Run",
          "parameters":{"type":"object","properties":{"cmd":{"type":"string"}}},"strict":true}})"));
  CHECK(chat["tools"][1]["function"] ==
        json::parse(R"({"name":"noargs","parameters":{"type":"object","properties":{}}})"));
  CHECK(chat["tool_choice"] == "required");
  CHECK(chat["parallel_tool_calls"] == false);
  CHECK(t.dropped == std::vector<std::string>{
                         "tools[1]: web_search", "tools[4]: file_search",
                         "tools[5]: web_search_preview", "tools[6]: computer_use_preview",
                         "tools[7]: code_interpreter", "tools[8]: image_generation",
                         "tools[9]: local_shell", "tools[10]: mcp"});
  CHECK(t.echo["tools"].size() == 11);
  CHECK(t.echo["tool_choice"] == "required");
  CHECK(t.echo["parallel_tool_calls"] == false);

  // Only built-ins: no tools upstream, so no tool_choice or parallel_tool_calls either.
  auto only =
      translate_ok(request(R"("hi")", R"(,"tools":[{"type":"web_search"}],"tool_choice":"auto",
                            "parallel_tool_calls":true)"));
  json c = json::parse(only.chat_body);
  CHECK_FALSE(c.contains("tools"));
  CHECK_FALSE(c.contains("tool_choice"));
  CHECK_FALSE(c.contains("parallel_tool_calls"));
}

TEST_CASE("responses inbound: tool_choice forms") {
  const std::string tools = R"(,"tools":[{"type":"function","name":"f","parameters":{}},)" +
                            std::string(k_custom_tool) + "]";
  auto choice = [&](const std::string& tc) {
    return translate_ok(request(R"("hi")", tools + R"(,"tool_choice":)" + tc));
  };
  for (const char* mode : {"auto", "none", "required"}) {
    CHECK(json::parse(choice(std::string("\"") + mode + "\"").chat_body)["tool_choice"] == mode);
  }
  CHECK(json::parse(choice(R"({"type":"function","name":"f"})").chat_body)["tool_choice"] ==
        json{{"type", "function"}, {"function", {{"name", "f"}}}});
  CHECK(json::parse(choice(R"({"type":"custom","name":"apply_patch"})").chat_body)["tool_choice"] ==
        json{{"type", "function"}, {"function", {{"name", "apply_patch"}}}});

  auto allowed =
      choice(R"({"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"f"}]})");
  CHECK_FALSE(json::parse(allowed.chat_body).contains("tool_choice"));
  CHECK(allowed.dropped == std::vector<std::string>{"tool_choice: allowed_tools"});
  CHECK(allowed.echo["tool_choice"]["type"] == "allowed_tools");
  auto builtin = choice(R"({"type":"web_search_preview"})");
  CHECK_FALSE(json::parse(builtin.chat_body).contains("tool_choice"));
  CHECK(builtin.dropped == std::vector<std::string>{"tool_choice: web_search_preview"});

  CHECK(translate_err(request(R"("hi")", tools + R"(,"tool_choice":"sometimes")")).param ==
        "tool_choice");
  CHECK(translate_err(request(R"("hi")", tools + R"(,"tool_choice":{"type":"function"})")).param ==
        "tool_choice.name");
  CHECK(translate_err(request(R"("hi")", tools + R"(,"tool_choice":3)")).param == "tool_choice");
}

TEST_CASE("responses inbound: text.format becomes response_format") {
  json chat = chat_of(request(R"("hi")", R"(,"text":{"format":{"type":"json_schema","name":"person",
      "schema":{"type":"object","properties":{"n":{"type":"string"}}},"strict":true,
      "description":"A person"},"verbosity":"low"})"));
  CHECK(chat["response_format"] == json::parse(R"({"type":"json_schema","json_schema":{
      "name":"person","schema":{"type":"object","properties":{"n":{"type":"string"}}},
      "strict":true,"description":"A person"}})"));
  CHECK(chat_of(request(R"("hi")",
                        R"(,"text":{"format":{"type":"json_object"}})"))["response_format"] ==
        json{{"type", "json_object"}});
  auto plain = translate_ok(request(R"("hi")", R"(,"text":{"format":{"type":"text"}})"));
  CHECK_FALSE(json::parse(plain.chat_body).contains("response_format"));
  CHECK(plain.echo["text"] == json{{"format", {{"type", "text"}}}});
  // A text object without a format echoes the default format beside what it had.
  auto verb = translate_ok(request(R"("hi")", R"(,"text":{"verbosity":"high"})"));
  CHECK(verb.echo["text"]["verbosity"] == "high");
  CHECK(verb.echo["text"]["format"]["type"] == "text");

  CHECK(translate_err(request(R"("hi")", R"(,"text":{"format":{"type":"xml"}})")).param ==
        "text.format.type");
  CHECK(
      translate_err(request(R"("hi")", R"(,"text":{"format":{"type":"json_schema","schema":{}}})"))
          .param == "text.format.name");
  CHECK(translate_err(request(R"("hi")", R"(,"text":{"format":{"type":"json_schema","name":"n"}})"))
            .param == "text.format.schema");
  CHECK(translate_err(request(R"("hi")", R"(,"text":"json")")).param == "text");
}

TEST_CASE("responses inbound: max_output_tokens, reasoning, sampling and pass-through members") {
  auto t = translate_ok(request(R"("hi")", R"(,"max_output_tokens":300,
      "reasoning":{"effort":"high","summary":"auto"},"temperature":0.5,"top_p":0.9,
      "user":"u1","prompt_cache_key":"k","safety_identifier":"s","service_tier":"flex",
      "metadata":{"run":"7"},"include":["reasoning.encrypted_content"],"truncation":"auto",
      "store":false,"background":false,"unknown_member":{"x":1})"));
  json chat = json::parse(t.chat_body);
  CHECK(chat["max_tokens"] == 300);
  CHECK(chat["reasoning_effort"] == "high");
  CHECK(chat["temperature"] == 0.5);
  CHECK(chat["top_p"] == 0.9);
  CHECK(chat["user"] == "u1");
  CHECK(chat["prompt_cache_key"] == "k");
  CHECK(chat["safety_identifier"] == "s");
  CHECK(chat["service_tier"] == "flex");
  for (const char* gone : {"metadata", "include", "truncation", "store", "max_output_tokens",
                           "reasoning", "background", "unknown_member", "input", "text"})
    CHECK_FALSE(chat.contains(gone));
  CHECK(t.dropped == std::vector<std::string>{"include: reasoning.encrypted_content"});
  CHECK(t.echo["max_output_tokens"] == 300);
  CHECK(t.echo["reasoning"]["effort"] == "high");
  CHECK(t.echo["metadata"]["run"] == "7");
  CHECK(t.echo["temperature"] == 0.5);
  CHECK(t.echo["top_p"] == 0.9);
  CHECK(t.echo["user"] == "u1");

  // An empty include drops nothing.
  CHECK(translate_ok(request(R"("hi")", R"(,"include":[])")).dropped.empty());
  CHECK(translate_err(request(R"("hi")", R"(,"max_output_tokens":0)")).param ==
        "max_output_tokens");
  CHECK(translate_err(request(R"("hi")", R"(,"max_output_tokens":1.5)")).param ==
        "max_output_tokens");
  CHECK(translate_err(request(R"("hi")", R"(,"reasoning":{"effort":3})")).param ==
        "reasoning.effort");
}

TEST_CASE("responses inbound: stream true sets the translation's stream") {
  auto t = translate_ok(request(R"("hi")", R"(,"stream":true)"));
  CHECK(t.stream);
  CHECK(json::parse(t.chat_body)["stream"] == true);
  auto f = translate_ok(request(R"("hi")", R"(,"stream":false)"));
  CHECK_FALSE(f.stream);
  CHECK_FALSE(json::parse(f.chat_body).contains("stream"));
}

TEST_CASE("responses inbound: previous_response_id asks for history; conversation is refused") {
  // Without the history the translation says it has none; the gateway looks it up.
  auto first = translate_ok(request(R"("hi")", R"(,"previous_response_id":"resp_123")"));
  CHECK(first.previous_response_id == "resp_123");
  CHECK_FALSE(first.history_applied);
  CHECK(translate_err(request(R"("hi")", R"(,"previous_response_id":"")")).param ==
        "previous_response_id");
  CHECK(translate_err(request(R"("hi")", R"(,"previous_response_id":7)")).param ==
        "previous_response_id");
  auto e = translate_err(request(R"("hi")", R"(,"conversation":"conv_1")"));
  CHECK(e.param == "conversation");
  CHECK(e.message.find("previous_response_id") != std::string::npos);
  // null is the same as absent.
  auto none = translate_ok(request(R"("hi")", R"(,"previous_response_id":null,"conversation":null)"));
  CHECK(none.previous_response_id.empty());
}

TEST_CASE("responses inbound: a previous response's history comes before the new input") {
  // What the store keeps: the first turn's input items, then its output.
  const std::string first_input =
      R"([{"type":"message","id":"msg_u1","role":"user","content":[{"type":"input_text","text":"What is 2+2?"}]}])";
  const std::string first_response = R"({"id":"resp_1","object":"response","output":[
      {"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"add"}]},
      {"type":"message","id":"msg_a1","status":"completed","role":"assistant",
       "content":[{"type":"output_text","text":"4","annotations":[]}]},
      {"type":"function_call","id":"fc_1","call_id":"call_1","name":"calc","arguments":"{}","status":"completed"}]})";
  auto history = responses_history(first_input, first_response);
  REQUIRE(history);
  REQUIRE(history->size() == 4);
  CHECK((*history)[0]["id"] == "msg_u1");
  CHECK((*history)[3]["type"] == "function_call");
  CHECK_FALSE(responses_history("{}", first_response));
  CHECK_FALSE(responses_history(first_input, R"({"id":"resp_1"})"));
  CHECK_FALSE(responses_history("[", first_response));

  auto r = responses_request_to_openai(
      request(R"([{"type":"function_call_output","call_id":"call_1","output":"4"},
                  {"role":"user","content":"And times 3?"}])",
              R"(,"previous_response_id":"resp_1","instructions":"Be brief")"),
      &*history);
  REQUIRE(std::holds_alternative<responses_translation>(r));
  auto& t = std::get<responses_translation>(r);
  CHECK(t.history_applied);
  CHECK(t.previous_response_id == "resp_1");
  json m = json::parse(t.chat_body)["messages"];
  // This request's instructions only, then the history, then the new input.
  REQUIRE(m.size() == 5);
  CHECK(m[0] == json{{"role", "system"}, {"content", "Be brief"}});
  CHECK(m[1] == json{{"role", "user"}, {"content", "What is 2+2?"}});
  CHECK(m[2]["role"] == "assistant");
  CHECK(m[2]["content"] == "4");
  CHECK(m[2]["tool_calls"][0]["id"] == "call_1");
  CHECK(m[3] == json{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "4"}});
  CHECK(m[4] == json{{"role", "user"}, {"content", "And times 3?"}});
  // The history's reasoning item is dropped like any other, and named where it came from.
  REQUIRE(t.dropped.size() == 1);
  CHECK(t.dropped.at(0) == "previous_response[1]: reasoning");
  // Stored for the next turn: the history and this input, every item typed and with an id.
  REQUIRE(t.input_items.size() == 6);
  CHECK(t.input_items[0]["id"] == "msg_u1");
  CHECK(t.input_items[4]["type"] == "function_call_output");
  check_id(json::parse(t.input_items[4]["id"].dump()), "fco_");
  CHECK(t.input_items[5]["type"] == "message");
  check_id(json::parse(t.input_items[5]["id"].dump()), "msg_");
}

TEST_CASE("responses inbound: store is read; a string input is kept as one user message item") {
  auto t = translate_ok(request(R"("hi")"));
  CHECK(t.store);  // OpenAI's default
  CHECK_FALSE(t.store_asked);
  REQUIRE(t.input_items.size() == 1);
  CHECK(t.input_items[0]["type"] == "message");
  CHECK(t.input_items[0]["role"] == "user");
  CHECK(json::parse(t.input_items[0]["content"].dump()) ==
        json::parse(R"([{"type":"input_text","text":"hi"}])"));
  check_id(json::parse(t.input_items[0]["id"].dump()), "msg_");
  check_id(json(t.id), "resp_");
  auto asked = translate_ok(request(R"("hi")", R"(,"store":true)"));
  CHECK(asked.store_asked);
  // store: false (Codex) keeps nothing, so nothing is copied.
  auto off = translate_ok(request(R"([{"role":"user","content":"hi"}])", R"(,"store":false)"));
  CHECK_FALSE(off.store);
  CHECK(off.input_items.empty());
  json r = json::parse(openai_response_to_responses(
      R"({"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})", off,
      "gpt-x", std::nullopt));
  CHECK(r["store"] == false);
  CHECK(r["id"] == off.id);
}

TEST_CASE("responses inbound: input_items pages, newest first by default") {
  const std::string items =
      R"([{"id":"a","type":"message"},{"id":"b","type":"message"},{"id":"c","type":"message"}])";
  auto page = [&](std::optional<std::string_view> limit, std::optional<std::string_view> order,
                  std::optional<std::string_view> after) {
    auto r = responses_input_items_page(items, limit, order, after);
    REQUIRE(std::holds_alternative<std::string>(r));
    return json::parse(std::get<std::string>(r));
  };
  json all = page(std::nullopt, std::nullopt, std::nullopt);
  CHECK(all["object"] == "list");
  CHECK(all["data"].size() == 3);
  CHECK(all["first_id"] == "c");
  CHECK(all["last_id"] == "a");
  CHECK(all["has_more"] == false);
  json two = page("2", "asc", std::nullopt);
  CHECK(two["data"][0]["id"] == "a");
  CHECK(two["last_id"] == "b");
  CHECK(two["has_more"] == true);
  json rest = page("2", "asc", "b");
  CHECK(rest["data"].size() == 1);
  CHECK(rest["first_id"] == "c");
  CHECK(rest["has_more"] == false);
  json none = page(std::nullopt, "asc", "c");
  CHECK(none["data"].empty());
  CHECK(none["first_id"].is_null());
  for (auto [limit, order, after, param] :
       {std::tuple{"0", "asc", "", "limit"}, {"101", "asc", "", "limit"}, {"x", "asc", "", "limit"},
        {"5", "sideways", "", "order"}, {"5", "asc", "zz", "after"}}) {
    auto r = responses_input_items_page(
        items, std::string_view(limit), std::string_view(order),
        *after ? std::optional<std::string_view>(after) : std::nullopt);
    REQUIRE(std::holds_alternative<request_error>(r));
    CHECK(std::get<request_error>(r).param == param);
  }
}

TEST_CASE("responses inbound: namespace tools are flattened and their calls mapped back") {
  // Codex's form for an MCP server's tools (codex-rs tools/src/responses_api.rs).
  auto t = translate_ok(request(
      R"([{"role":"user","content":"look up order 7"},
          {"type":"function_call","call_id":"call_0","namespace":"mcp__shop__","name":"lookup",
           "arguments":"{\"id\":6}"},
          {"type":"function_call_output","call_id":"call_0","output":"shipped"}])",
      R"(,"tools":[{"type":"namespace","name":"mcp__shop__","description":"Shop tools","tools":[
          {"type":"function","name":"lookup","description":"Look up an order","strict":false,
           "defer_loading":true,"parameters":{"type":"object","properties":{"id":{"type":"integer"}}}}]},
        {"type":"namespace","name":"crm","tools":[{"type":"function","name":"find"}]}])"));
  json chat = json::parse(t.chat_body);
  REQUIRE(chat["tools"].size() == 2);
  CHECK(chat["tools"][0]["function"]["name"] == "mcp__shop__lookup");
  CHECK(chat["tools"][0]["function"]["description"] == "Look up an order");
  CHECK_FALSE(chat["tools"][0]["function"].contains("defer_loading"));
  CHECK(chat["tools"][1]["function"]["name"] == "crm__find");  // "__" when the name has none
  CHECK(t.dropped.empty());
  CHECK(chat["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp__shop__lookup");

  // The model calls the flat name; the client sees its namespace and name again.
  const std::string answer_body = R"({"choices":[{"message":{"role":"assistant","content":null,
      "tool_calls":[{"id":"call_1","type":"function","function":{"name":"mcp__shop__lookup",
      "arguments":"{\"id\":7}"}},{"id":"call_2","type":"function","function":{"name":"plain",
      "arguments":"{}"}}]},"finish_reason":"tool_calls"}]})";
  json r = json::parse(openai_response_to_responses(answer_body, t, "gpt-x", std::nullopt));
  REQUIRE(r["output"].size() == 2);
  CHECK(r["output"][0]["name"] == "lookup");
  CHECK(r["output"][0]["namespace"] == "mcp__shop__");
  CHECK(r["output"][0]["arguments"] == "{\"id\":7}");
  CHECK(r["output"][1]["name"] == "plain");
  CHECK_FALSE(r["output"][1].contains("namespace"));

  // Streamed: the item added and done both carry the namespace.
  responses_stream_encoder enc(t, "gpt-x");
  std::vector<sse_event> events;
  enc.on_chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1",
      "type":"function","function":{"name":"mcp__shop__lookup","arguments":"{\"id\""}}]}}]})",
               events);
  enc.on_chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,
      "function":{"arguments":":7}"}}]},"finish_reason":"tool_calls"}]})",
               events);
  enc.finish(std::nullopt, events);
  int seen = 0;
  for (const auto& e : events) {
    json d = json::parse(e.data);
    if (e.event == "response.output_item.added" || e.event == "response.output_item.done") {
      CHECK(d["item"]["name"] == "lookup");
      CHECK(d["item"]["namespace"] == "mcp__shop__");
      ++seen;
    }
  }
  CHECK(seen == 2);
  json done = json::parse(enc.final_response());
  CHECK(done["output"][0]["arguments"] == "{\"id\":7}");
  CHECK(done["output"][0]["namespace"] == "mcp__shop__");

  // A namespace holds functions only; a bad inner tool names itself.
  CHECK(translate_err(request(R"("hi")", R"(,"tools":[{"type":"namespace","name":"n",
      "tools":[{"type":"custom","name":"c"}]}])")).param == "tools[0].tools[0].type");
  CHECK(translate_err(request(R"("hi")", R"(,"tools":[{"type":"namespace","name":"n",
      "tools":[{"type":"function","name":"f","parameters":3}]}])")).param ==
        "tools[0].tools[0].parameters");
  CHECK(translate_err(request(R"("hi")", R"(,"tools":[{"type":"namespace","name":"n"}])")).param ==
        "tools[0].tools");
}

TEST_CASE("responses inbound: item_reference is refused") {
  auto e = translate_err(request(R"([{"role":"user","content":"a"},
                                     {"type":"item_reference","id":"msg_1"}])"));
  CHECK(e.param == "input[1]");
  CHECK(e.message.find("not supported") != std::string::npos);
  // Its type is optional: an item with an id and no role is one too.
  CHECK(translate_err(request(R"([{"id":"msg_1"}])")).param == "input[0]");
}

TEST_CASE("responses inbound: wrong types are a 400 naming the member") {
  struct bad_case {
    std::string body;
    std::string param;
  };
  const std::vector<bad_case> cases = {
      {R"({"input":"hi"})", "model"},
      {R"({"model":"","input":"hi"})", "model"},
      {R"({"model":7,"input":"hi"})", "model"},
      {R"({"model":"m"})", "input"},
      {R"({"model":"m","input":5})", "input"},
      {R"({"model":"m","input":[]})", "input"},
      {request(R"([{"role":"user","content":"a"},"text"])"), "input[1]"},
      {request(R"([{"role":"tool","content":"a"}])"), "input[0].role"},
      {request(R"([{"role":"user","content":5}])"), "input[0].content"},
      {request(R"([{"role":"user","content":[{"type":"input_text","text":1}]}])"),
       "input[0].content[0].text"},
      {request(R"([{"role":"system","content":[{"type":"input_image","image_url":"x"}]}])"),
       "input[0].content[0].type"},
      {request(R"([{"type":7}])"), "input[0].type"},
      {request(R"([{"content":"a"}])"), "input[0].type"},
      {request(R"([{"role":"user","content":"a"},{"role":"user","content":"b"},
                   {"type":"function_call","call_id":5,"name":"f","arguments":"{}"}])"),
       "input[2].call_id"},
      {request(R"([{"type":"function_call","call_id":"c","arguments":"{}"}])"), "input[0].name"},
      {request(R"([{"type":"function_call","call_id":"c","name":"f","arguments":{}}])"),
       "input[0].arguments"},
      {request(R"([{"type":"function_call_output","output":"x"}])"), "input[0].call_id"},
      {request(R"([{"type":"function_call_output","call_id":"c"}])"), "input[0].output"},
      {request(R"([{"type":"function_call_output","call_id":"c","output":[{"type":"weird"}]}])"),
       "input[0].output[0].type"},
      {request(R"([{"type":"custom_tool_call","call_id":"c","name":"p"}])"), "input[0].input"},
      {request(R"("hi")", R"(,"instructions":["x"])"), "instructions"},
      {request(R"("hi")", R"(,"tools":{})"), "tools"},
      {request(R"("hi")", R"(,"tools":[{"name":"f"}])"), "tools[0].type"},
      {request(R"("hi")", R"(,"tools":[{"type":"function"}])"), "tools[0].name"},
      {request(R"("hi")", R"(,"tools":[5])"), "tools[0]"},
      {request(R"("hi")", R"(,"tools":[{"type":"function","name":"f","parameters":"x"}])"),
       "tools[0].parameters"},
      {request(R"("hi")", R"(,"tools":[{"type":"function","name":"f","strict":"yes"}])"),
       "tools[0].strict"},
      {request(R"("hi")", R"(,"tools":[{"type":"custom"}])"), "tools[0].name"},
      {request(R"("hi")", R"(,"temperature":"hot")"), "temperature"},
      {request(R"("hi")", R"(,"top_p":"x")"), "top_p"},
      {request(R"("hi")", R"(,"stream":"yes")"), "stream"},
      {request(R"("hi")", R"(,"parallel_tool_calls":1)"), "parallel_tool_calls"},
      {request(R"("hi")", R"(,"metadata":[1])"), "metadata"},
      {request(R"("hi")", R"(,"user":5)"), "user"},
      {request(R"("hi")", R"(,"store":"no")"), "store"},
      {request(R"("hi")", R"(,"include":"all")"), "include"},
      {request(R"("hi")", R"(,"include":[3])"), "include[0]"},
      {request(R"("hi")", R"(,"reasoning":"high")"), "reasoning"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto e = translate_err(c.body);
    CHECK(e.param == c.param);
    CHECK(e.message.rfind(c.param + ":", 0) == 0);
  }
  CHECK(translate_err("not json").param.empty());
  CHECK(translate_err("[1]").param.empty());
  std::string deep(200, '[');
  CHECK(translate_err(request(deep + std::string(200, ']'))).message.find("deeper") !=
        std::string::npos);
}

TEST_CASE("responses inbound: unknown item types are dropped and listed, never silently") {
  auto t = translate_ok(request(R"([{"role":"user","content":"q"},
      {"type":"web_search_call","id":"ws_1","status":"completed"},
      {"type":"local_shell_call_output","id":"x","output":"y"}])"));
  CHECK(t.dropped ==
        std::vector<std::string>{"input[1]: web_search_call", "input[2]: local_shell_call_output"});
}

// ---- whole answers -------------------------------------------------------------------------

TEST_CASE("responses inbound: a text answer is a completed Response with the echo") {
  auto t = translate_ok(request(R"("hi")", R"(,"instructions":"Be brief","temperature":0.2,
      "max_output_tokens":50,"metadata":{"k":"v"},"user":"me")"));
  answer_notes notes{"deepseek", 0.0012, true};
  json r = answer(completion({{"role", "assistant"}, {"content", "Hello!"}}, "stop",
                             {{"prompt_tokens", 10}, {"completion_tokens", 3}}),
                  t, std::nullopt, &notes);
  check_id(r["id"], "resp_");
  CHECK(r["object"] == "response");
  CHECK(r["created_at"].is_number_integer());
  CHECK(r["created_at"].get<std::int64_t>() > 1700000000);
  CHECK(r["status"] == "completed");
  CHECK(r["model"] == "gpt-x");
  CHECK(r["error"].is_null());
  CHECK(r["incomplete_details"].is_null());
  CHECK(r["previous_response_id"].is_null());
  CHECK(r["store"] == true);  // the translation's; the gateway sets false when it keeps nothing
  CHECK(r["id"] == t.id);
  CHECK(r["instructions"] == "Be brief");
  CHECK(r["temperature"] == 0.2);
  CHECK(r["max_output_tokens"] == 50);
  CHECK(r["metadata"] == json{{"k", "v"}});
  CHECK(r["user"] == "me");
  CHECK(r["tool_choice"] == "auto");
  CHECK(r["tools"] == json::array());
  CHECK(r["parallel_tool_calls"] == true);
  CHECK(r["text"] == json{{"format", {{"type", "text"}}}});
  CHECK(r["top_p"].is_null());
  CHECK(r["reasoning"].is_null());
  CHECK(r["provider"] == "deepseek");
  REQUIRE(r["output"].size() == 1);
  const json& msg = r["output"][0];
  check_id(msg["id"], "msg_");
  CHECK(without_ids(msg) ==
        json::parse(R"({"type":"message","status":"completed","role":"assistant",
          "content":[{"type":"output_text","text":"Hello!","annotations":[]}]})"));
  CHECK(r["usage"]["input_tokens"] == 10);
  CHECK(r["usage"]["output_tokens"] == 3);
  CHECK(r["usage"]["total_tokens"] == 13);
  CHECK(r["usage"]["cost"] == 0.0012);
  CHECK(r["usage"]["estimated"] == true);
  CHECK_FALSE(r["metadata"].contains("meridian_dropped"));
}

TEST_CASE("responses inbound: usage maps exactly from the normalised buckets") {
  responses_translation t;
  usage u;
  u.input = 70;
  u.cache_read = 30;
  u.output = 15;
  u.reasoning = 5;
  u.present = true;
  json r = answer(completion({{"role", "assistant"}, {"content", "x"}}), t, u);
  CHECK(r["usage"] == json::parse(R"({"input_tokens":100,
      "input_tokens_details":{"cached_tokens":30,"cache_write_tokens":0},
      "output_tokens":20,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":120})"));
  CHECK(json::parse(responses_usage(u, nullptr).dump()) == r["usage"]);

  // From the body's own usage when no buckets are given (DeepSeek's cache fields too).
  json body_usage = json::parse(R"({"prompt_tokens":100,"completion_tokens":20,
      "prompt_tokens_details":{"cached_tokens":30},
      "completion_tokens_details":{"reasoning_tokens":5}})");
  json r2 = answer(completion({{"role", "assistant"}, {"content", "x"}}, "stop", body_usage), t);
  CHECK(r2["usage"] == r["usage"]);
  json ds = json::parse(R"({"prompt_tokens":100,"completion_tokens":20,
      "prompt_cache_hit_tokens":30,"prompt_cache_miss_tokens":70})");
  json r3 = answer(completion({{"role", "assistant"}, {"content", "x"}}, "stop", ds), t);
  CHECK(r3["usage"]["input_tokens_details"]["cached_tokens"] == 30);
  CHECK(r3["usage"]["input_tokens"] == 100);
  // The buckets win over the body's.
  json r4 = answer(completion({{"role", "assistant"}, {"content", "x"}}, "stop", ds), t, u);
  CHECK(r4["usage"]["output_tokens_details"]["reasoning_tokens"] == 5);
  // No usage anywhere: zeros, so that clients reading usage always find it.
  json r5 = answer(completion({{"role", "assistant"}, {"content", "x"}}), t);
  CHECK(r5["usage"]["total_tokens"] == 0);
  // Cache writes count in input_tokens.
  usage w;
  w.input = 10;
  w.cache_write = 5;
  CHECK(responses_usage(w, nullptr)["input_tokens"] == 15);
  CHECK(responses_usage(w, nullptr)["input_tokens_details"]["cache_write_tokens"] == 5);
}

TEST_CASE("responses inbound: reasoning, text, refusal and tool calls become output items") {
  auto t = translate_ok(request(R"("hi")", R"(,"tools":[
      {"type":"function","name":"weather","parameters":{}},)" +
                                               std::string(k_custom_tool) + "]"));
  json message{{"role", "assistant"},
               {"reasoning_content", "Let me think."},
               {"content", "Checking."},
               {"tool_calls",
                {{{"id", "call_1"},
                  {"type", "function"},
                  {"function", {{"name", "weather"}, {"arguments", R"({"city":"Paris"})"}}}},
                 {{"id", "call_2"},
                  {"type", "function"},
                  {"function",
                   {{"name", "apply_patch"},
                    {"arguments", R"({"input":"*** Begin Patch\n*** End Patch"})"}}}}}}};
  json r = answer(completion(message, "tool_calls"), t);
  CHECK(r["status"] == "completed");
  const json& out = r["output"];
  REQUIRE(out.size() == 4);
  check_id(out[0]["id"], "rs_");
  check_id(out[1]["id"], "msg_");
  check_id(out[2]["id"], "fc_");
  check_id(out[3]["id"], "ctc_");
  CHECK(without_ids(out[0]) == json::parse(R"({"type":"reasoning","summary":[],
          "content":[{"type":"reasoning_text","text":"Let me think."}]})"));
  CHECK(out[1]["content"][0]["text"] == "Checking.");
  CHECK(without_ids(out[2]) ==
        json::parse(R"({"type":"function_call","call_id":"call_1","name":"weather",
          "arguments":"{\"city\":\"Paris\"}","status":"completed"})"));
  CHECK(without_ids(out[3]) ==
        json::parse(R"({"type":"custom_tool_call","call_id":"call_2","name":"apply_patch",
          "input":"*** Begin Patch\n*** End Patch"})"));

  // `reasoning` (OpenRouter, vLLM) is read like reasoning_content; refusal is its own part.
  json r2 = answer(completion({{"role", "assistant"},
                               {"reasoning", "hmm"},
                               {"content", nullptr},
                               {"refusal", "I can't help with that."}}),
                   t);
  REQUIRE(r2["output"].size() == 2);
  CHECK(r2["output"][0]["content"][0]["text"] == "hmm");
  CHECK(r2["output"][1]["content"] ==
        json::parse(R"([{"type":"refusal","refusal":"I can't help with that."}])"));

  // A custom call whose arguments are not the {"input": ...} object keeps them raw; a call
  // without an id gets one.
  json raw{{"role", "assistant"},
           {"content", nullptr},
           {"tool_calls",
            {{{"type", "function"},
              {"function", {{"name", "apply_patch"}, {"arguments", "*** Begin Patch"}}}}}}};
  json r3 = answer(completion(raw, "tool_calls"), t);
  REQUIRE(r3["output"].size() == 1);
  CHECK(r3["output"][0]["input"] == "*** Begin Patch");
  check_id(r3["output"][0]["call_id"], "call_");
  // An empty message has no message item.
  json r4 = answer(completion({{"role", "assistant"}, {"content", ""}}), t);
  CHECK(r4["output"] == json::array());
}

TEST_CASE("responses inbound: length and content_filter answers are incomplete") {
  responses_translation t;
  json r = answer(completion({{"role", "assistant"}, {"content", "cut"}}, "length"), t);
  CHECK(r["status"] == "incomplete");
  CHECK(r["incomplete_details"] == json{{"reason", "max_output_tokens"}});
  json f = answer(completion({{"role", "assistant"}, {"content", ""}}, "content_filter"), t);
  CHECK(f["status"] == "incomplete");
  CHECK(f["incomplete_details"] == json{{"reason", "content_filter"}});
}

TEST_CASE("responses inbound: what was dropped is listed in metadata.meridian_dropped") {
  auto t = translate_ok(request(R"("hi")", R"(,"metadata":{"a":"b"},
      "tools":[{"type":"web_search"}],"include":["reasoning.encrypted_content"])"));
  json r = answer(completion({{"role", "assistant"}, {"content", "x"}}), t);
  CHECK(r["metadata"]["a"] == "b");
  CHECK(r["metadata"]["meridian_dropped"] ==
        json::array({"tools[0]: web_search", "include: reasoning.encrypted_content"}));
  CHECK(r["tools"] == json::parse(R"([{"type":"web_search"}])"));
  // Not JSON at all still answers with a Response.
  json empty = answer("garbage", t);
  CHECK(empty["object"] == "response");
  CHECK(empty["output"] == json::array());
}

// ---- streams -------------------------------------------------------------------------------

TEST_CASE("responses inbound: a text stream") {
  responses_translation t = translate_ok(request(R"("hi")", R"(,"stream":true)"));
  auto evs = run(t, {chunk({{"role", "assistant"}, {"content", ""}}), chunk({{"content", "Hel"}}),
                     chunk({{"content", "lo"}}), chunk(json::object(), "stop"), "[DONE]"});
  CHECK(types(evs) ==
        std::vector<std::string>{"response.created", "response.in_progress",
                                 "response.output_item.added", "response.content_part.added",
                                 "response.output_text.delta", "response.output_text.delta",
                                 "response.output_text.done", "response.content_part.done",
                                 "response.output_item.done", "response.completed"});
  const json& created = evs[0].data["response"];
  check_id(created["id"], "resp_");
  CHECK(created["status"] == "in_progress");
  CHECK(created["output"] == json::array());
  CHECK(created["usage"].is_null());
  CHECK(created["model"] == "gpt-x");
  CHECK(evs[1].data["response"]["id"] == created["id"]);
  const json& added = evs[2].data;
  CHECK(added["output_index"] == 0);
  check_id(added["item"]["id"], "msg_");
  CHECK(added["item"]["status"] == "in_progress");
  CHECK(added["item"]["content"] == json::array());
  CHECK(evs[3].data["part"] == json::parse(R"({"type":"output_text","text":"","annotations":[]})"));
  CHECK(evs[4].data["delta"] == "Hel");
  CHECK(evs[4].data["item_id"] == added["item"]["id"]);
  CHECK(evs[4].data["content_index"] == 0);
  CHECK(evs[6].data["text"] == "Hello");
  CHECK(evs[7].data["part"]["text"] == "Hello");
  CHECK(evs[8].data["item"]["status"] == "completed");
  json fin = replay(evs);
  CHECK(fin["id"] == created["id"]);
  CHECK(fin["created_at"] == created["created_at"]);
  CHECK(fin["status"] == "completed");
  json whole = answer(completion({{"role", "assistant"}, {"content", "Hello"}}), t);
  CHECK(without_ids(fin["output"]) == without_ids(whole["output"]));
  // The same members, in the same order, as the whole answer.
  std::vector<std::string> a, b;
  auto streamed = nlohmann::ordered_json::parse(evs.back().raw)["response"];
  auto answered = nlohmann::ordered_json::parse(openai_response_to_responses(
      completion({{"role", "assistant"}, {"content", "Hello"}}), t, "gpt-x", std::nullopt));
  for (auto& [k, v] : streamed.items()) a.push_back(k);
  for (auto& [k, v] : answered.items()) b.push_back(k);
  CHECK(a == b);
  CHECK(a.front() == "id");
}

TEST_CASE("responses inbound: reasoning then text streams as two items") {
  responses_translation t;
  auto evs = run(t, {chunk({{"role", "assistant"}, {"reasoning_content", "Think"}}),
                     chunk({{"reasoning_content", "ing."}}), chunk({{"content", "Answer."}}),
                     chunk(json::object(), "stop")});
  CHECK(types(evs) == std::vector<std::string>{
                          "response.created",
                          "response.in_progress",
                          "response.output_item.added",
                          "response.content_part.added",
                          "response.reasoning_text.delta",
                          "response.reasoning_text.delta",
                          "response.reasoning_text.done",
                          "response.content_part.done",
                          "response.output_item.done",
                          "response.output_item.added",
                          "response.content_part.added",
                          "response.output_text.delta",
                          "response.output_text.done",
                          "response.content_part.done",
                          "response.output_item.done",
                          "response.completed",
                      });
  CHECK(evs[2].data["item"]["type"] == "reasoning");
  check_id(evs[2].data["item"]["id"], "rs_");
  CHECK(evs[3].data["part"] == json{{"type", "reasoning_text"}, {"text", ""}});
  CHECK(evs[4].data["content_index"] == 0);
  CHECK(evs[6].data["text"] == "Thinking.");
  CHECK(evs[9].data["output_index"] == 1);
  CHECK(evs[11].data["output_index"] == 1);
  json fin = replay(evs);
  json whole = answer(
      completion(
          {{"role", "assistant"}, {"reasoning_content", "Thinking."}, {"content", "Answer."}}),
      t);
  CHECK(without_ids(fin["output"]) == without_ids(whole["output"]));
  // `reasoning` deltas are read the same way.
  auto evs2 = run(t, {chunk({{"reasoning", "r"}}), chunk(json::object(), "stop")});
  CHECK(replay(evs2)["output"][0]["content"][0]["text"] == "r");
}

TEST_CASE("responses inbound: two parallel tool calls stream as two function_call items") {
  auto t = translate_ok(request(R"("hi")", R"(,"tools":[{"type":"function","name":"weather"}])"));
  auto evs = run(t, {chunk({{"role", "assistant"}, {"content", nullptr}}),
                     tool_delta(0, "call_a", "weather", ""), tool_delta(0, "", "", R"({"city":)"),
                     tool_delta(0, "", "", R"("Paris"})"),
                     tool_delta(1, "call_b", "weather", R"({"city":"Rome"})"),
                     chunk(json::object(), "tool_calls")});
  CHECK(types(evs) == std::vector<std::string>{
                          "response.created",
                          "response.in_progress",
                          "response.output_item.added",
                          "response.function_call_arguments.delta",
                          "response.function_call_arguments.delta",
                          "response.function_call_arguments.done",
                          "response.output_item.done",
                          "response.output_item.added",
                          "response.function_call_arguments.delta",
                          "response.function_call_arguments.done",
                          "response.output_item.done",
                          "response.completed",
                      });
  const json& first = evs[2].data["item"];
  check_id(first["id"], "fc_");
  CHECK(first["call_id"] == "call_a");
  CHECK(first["name"] == "weather");
  CHECK(first["arguments"] == "");
  CHECK(first["status"] == "in_progress");
  CHECK(evs[5].data["arguments"] == R"({"city":"Paris"})");
  CHECK(evs[5].data["name"] == "weather");
  CHECK(evs[6].data["item"]["status"] == "completed");
  CHECK(evs[7].data["output_index"] == 1);
  CHECK(evs[7].data["item"]["call_id"] == "call_b");
  json fin = replay(evs);
  json whole = answer(
      completion({{"role", "assistant"},
                  {"content", nullptr},
                  {"tool_calls",
                   {{{"id", "call_a"},
                     {"type", "function"},
                     {"function", {{"name", "weather"}, {"arguments", R"({"city":"Paris"})"}}}},
                    {{"id", "call_b"},
                     {"type", "function"},
                     {"function", {{"name", "weather"}, {"arguments", R"({"city":"Rome"})"}}}}}}},
                 "tool_calls"),
      t);
  CHECK(without_ids(fin["output"]) == without_ids(whole["output"]));
}

TEST_CASE("responses inbound: a custom tool call streams its decoded input at the end") {
  auto t = translate_ok(request(R"("hi")", ",\"tools\":[" + std::string(k_custom_tool) + "]"));
  auto evs = run(t, {chunk({{"content", "Patching."}}), tool_delta(0, "call_p", "apply_patch", ""),
                     tool_delta(0, "", "", R"({"input":"*** Begin)"),
                     tool_delta(0, "", "", R"( Patch\n"})"), chunk(json::object(), "tool_calls")});
  const auto all = types(evs);
  auto tail = std::vector<std::string>(all.begin() + 8, all.end());
  CHECK(tail == std::vector<std::string>{
                    "response.output_item.added",
                    "response.custom_tool_call_input.delta",
                    "response.custom_tool_call_input.done",
                    "response.output_item.done",
                    "response.completed",
                });
  CHECK(of_type(evs, "response.function_call_arguments.delta").empty());
  const json& added = evs[8].data["item"];
  CHECK(added["type"] == "custom_tool_call");
  check_id(added["id"], "ctc_");
  CHECK(added["call_id"] == "call_p");
  CHECK(added["input"] == "");
  CHECK(evs[9].data["delta"] == "*** Begin Patch\n");
  CHECK(evs[10].data["input"] == "*** Begin Patch\n");
  json fin = replay(evs);
  json whole = answer(
      completion(
          {{"role", "assistant"},
           {"content", "Patching."},
           {"tool_calls",
            {{{"id", "call_p"},
              {"type", "function"},
              {"function",
               {{"name", "apply_patch"}, {"arguments", R"({"input":"*** Begin Patch\n"})"}}}}}}},
          "tool_calls"),
      t);
  CHECK(without_ids(fin["output"]) == without_ids(whole["output"]));
}

TEST_CASE("responses inbound: the usage chunk's usage reaches response.completed") {
  responses_translation t;
  json usage_chunk{{"id", "chatcmpl-1"},
                   {"object", "chat.completion.chunk"},
                   {"choices", json::array()},
                   {"usage",
                    {{"prompt_tokens", 100},
                     {"completion_tokens", 20},
                     {"prompt_tokens_details", {{"cached_tokens", 30}}},
                     {"completion_tokens_details", {{"reasoning_tokens", 5}}}}}};
  auto evs = run(t, {chunk({{"content", "x"}}), chunk(json::object(), "stop"), usage_chunk.dump()});
  json fin = replay(evs);
  CHECK(fin["usage"] == json::parse(R"({"input_tokens":100,
      "input_tokens_details":{"cached_tokens":30,"cache_write_tokens":0},
      "output_tokens":20,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":120})"));

  // Given buckets win, and the notes ride along.
  usage u;
  u.input = 1;
  u.output = 2;
  answer_notes notes{"local", 0.5, true};
  auto evs2 = run(t, {chunk({{"content", "x"}}), usage_chunk.dump()}, u, &notes);
  json f2 = replay(evs2);
  CHECK(f2["usage"]["total_tokens"] == 3);
  CHECK(f2["usage"]["cost"] == 0.5);
  CHECK(f2["usage"]["estimated"] == true);
  CHECK(f2["provider"] == "local");
}

TEST_CASE("responses inbound: a length stream ends with response.incomplete") {
  responses_translation t;
  auto evs = run(t, {chunk({{"content", "cut"}}), chunk(json::object(), "length")});
  CHECK(evs.back().type == "response.incomplete");
  json fin = replay(evs);
  CHECK(fin["status"] == "incomplete");
  CHECK(fin["incomplete_details"] == json{{"reason", "max_output_tokens"}});
}

TEST_CASE("responses inbound: a stream with nothing still opens and completes") {
  responses_translation t;
  responses_stream_encoder enc(t, "gpt-x");
  std::vector<sse_event> out;
  enc.on_chunk("[DONE]", out);
  enc.on_chunk("not json", out);
  CHECK(out.empty());
  enc.finish(std::nullopt, out);
  auto evs = parsed(out);
  CHECK(types(evs) ==
        std::vector<std::string>{"response.created", "response.in_progress", "response.completed"});
  CHECK(replay(evs)["output"] == json::array());
}

TEST_CASE("responses inbound: fail() ends the stream with error then response.failed") {
  responses_translation t;
  responses_stream_encoder enc(t, "gpt-x");
  std::vector<sse_event> out;
  enc.on_chunk(chunk({{"content", "partial"}}), out);
  enc.fail("upstream reset the connection", "server_error", out);
  auto evs = parsed(out);
  REQUIRE(evs.size() >= 3);
  const json& err = evs[evs.size() - 2].data;
  CHECK(evs[evs.size() - 2].type == "error");
  CHECK(err["code"] == "server_error");
  CHECK(err["message"] == "upstream reset the connection");
  CHECK(err.contains("param"));
  CHECK(err["param"].is_null());
  const json& failed = evs.back().data;
  CHECK(evs.back().type == "response.failed");
  CHECK(failed["response"]["status"] == "failed");
  CHECK(failed["response"]["error"] ==
        json{{"code", "server_error"}, {"message", "upstream reset the connection"}});
  CHECK(failed["response"]["id"] == evs[0].data["response"]["id"]);

  // Anything after the end does nothing.
  std::size_t n = out.size();
  enc.on_chunk(chunk({{"content", "more"}}), out);
  enc.finish(std::nullopt, out);
  enc.fail("again", "server_error", out);
  CHECK(out.size() == n);

  // Failing before any chunk still starts the response first.
  responses_stream_encoder early(t, "gpt-x");
  std::vector<sse_event> out2;
  early.fail("no upstream", "", out2);
  auto evs2 = parsed(out2);
  CHECK(types(evs2) == std::vector<std::string>{"response.created", "response.in_progress", "error",
                                                "response.failed"});
  CHECK(evs2[2].data["code"] == "server_error");

  // And finish() then anything is a no-op too.
  responses_stream_encoder done(t, "gpt-x");
  std::vector<sse_event> out3;
  done.finish(std::nullopt, out3);
  std::size_t m = out3.size();
  done.on_chunk(chunk({{"content", "late"}}), out3);
  done.fail("late", "server_error", out3);
  done.finish(std::nullopt, out3);
  CHECK(out3.size() == m);
}

TEST_CASE("responses inbound: a refusal streams as a refusal part") {
  responses_translation t;
  auto evs = run(t, {chunk({{"refusal", "I can't"}}), chunk({{"refusal", " do that."}}),
                     chunk(json::object(), "stop")});
  CHECK(of_type(evs, "response.refusal.delta").size() == 2);
  CHECK(of_type(evs, "response.refusal.done").at(0).data["refusal"] == "I can't do that.");
  json fin = replay(evs);
  json whole = answer(
      completion({{"role", "assistant"}, {"content", nullptr}, {"refusal", "I can't do that."}}),
      t);
  CHECK(without_ids(fin["output"]) == without_ids(whole["output"]));
}

TEST_CASE("responses inbound: sequence numbers count up across a long mixed stream") {
  auto t = translate_ok(request(R"("hi")", ",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}," +
                                               std::string(k_custom_tool) + "]"));
  std::vector<std::string> chunks;
  for (int i = 0; i < 5; ++i) chunks.push_back(chunk({{"reasoning_content", "r"}}));
  for (int i = 0; i < 5; ++i) chunks.push_back(chunk({{"content", "t"}}));
  chunks.push_back(tool_delta(0, "c0", "f", "{}"));
  chunks.push_back(tool_delta(1, "c1", "apply_patch", R"({"input":"p"})"));
  chunks.push_back(tool_delta(2, "", "f", "{}"));  // no id: one is made up
  chunks.push_back(chunk(json::object(), "tool_calls"));
  auto evs = run(t, chunks);  // parsed() checks 0, 1, 2, ... without a gap
  json fin = replay(evs);
  REQUIRE(fin["output"].size() == 5);
  CHECK(fin["output"][0]["content"][0]["text"] == "rrrrr");
  CHECK(fin["output"][1]["content"][0]["text"] == "ttttt");
  CHECK(fin["output"][2]["type"] == "function_call");
  CHECK(fin["output"][3]["type"] == "custom_tool_call");
  CHECK(fin["output"][3]["input"] == "p");
  check_id(fin["output"][4]["call_id"], "call_");
}

TEST_CASE("responses inbound: a fragment for a closed call still lands in the final output") {
  auto t = translate_ok(request(R"("hi")", R"(,"tools":[{"type":"function","name":"f"}])"));
  auto evs = run(t, {tool_delta(0, "c0", "f", R"({"a":)"), tool_delta(1, "c1", "f", "{}"),
                     tool_delta(0, "", "", "1}"), chunk(json::object(), "tool_calls")});
  json fin = evs.back().data["response"];
  REQUIRE(fin["output"].size() == 2);
  CHECK(fin["output"][0]["arguments"] == R"({"a":1})");
  CHECK(fin["output"][1]["arguments"] == "{}");
}

TEST_CASE("responses native: the history goes into input, previous_response_id does not") {
  const nlohmann::ordered_json history = nlohmann::ordered_json::parse(
      R"([{"type":"message","id":"msg_1","role":"user","content":[{"type":"input_text","text":"a"}]},
          {"type":"message","id":"msg_2","role":"assistant","content":[{"type":"output_text","text":"b"}]}])");
  json body = json::parse(responses_pass_through_body(
      R"({"model":"m","input":"c","previous_response_id":"resp_1","store":true})", history));
  CHECK_FALSE(body.contains("previous_response_id"));
  CHECK(body["store"] == true);
  REQUIRE(body["input"].size() == 3);
  CHECK(body["input"][1]["id"] == "msg_2");
  CHECK(body["input"][2] ==
        json::parse(R"({"type":"message","role":"user","content":[{"type":"input_text","text":"c"}]})"));
  json items = json::parse(responses_pass_through_body(
      R"({"model":"m","input":[{"role":"user","content":"c"}]})", history));
  CHECK(items["input"].size() == 3);
  CHECK(items["input"][2]["content"] == "c");
}

TEST_CASE("responses native: usage, annotation and the event decoder") {
  const std::string whole = R"({"id":"resp_up","output":[{"type":"message","content":[
      {"type":"output_text","text":"Hi there"}]}],"usage":{"input_tokens":100,
      "input_tokens_details":{"cached_tokens":40},"output_tokens":30,
      "output_tokens_details":{"reasoning_tokens":10},"total_tokens":130}})";
  auto u = responses_usage_of(whole);
  REQUIRE(u);
  CHECK(u->input == 60);
  CHECK(u->cache_read == 40);
  CHECK(u->output == 20);
  CHECK(u->reasoning == 10);
  CHECK_FALSE(responses_usage_of(R"({"id":"x"})"));
  json annotated = json::parse(annotate_response(whole, "native", 0.5));
  CHECK(annotated["provider"] == "native");
  CHECK(annotated["usage"]["cost"] == 0.5);
  CHECK(annotated["usage"]["input_tokens"] == 100);
  // Without usage, the gateway's estimate is told, marked.
  usage est;
  est.input = 7;
  est.output = 3;
  json marked = json::parse(annotate_response(R"({"id":"x","output":[]})", "p", 0.1, &est));
  CHECK(marked["usage"]["input_tokens"] == 7);
  CHECK(marked["usage"]["estimated"] == true);
  CHECK(marked["usage"]["cost"] == 0.1);
  std::string texts;
  for_each_response_text(nlohmann::ordered_json::parse(whole),
                         [&](std::string_view raw) { texts += raw; });
  CHECK(texts == "Hi there");

  responses_event_decoder d;
  std::vector<std::string> chunks;
  auto feed = [&](const std::string& data) {
    return d.on_event(sse_event{"", data, {}}, chunks);
  };
  CHECK(feed(R"({"type":"response.created","sequence_number":0,"response":{"id":"resp_up"}})"));
  CHECK(feed(R"({"type":"response.output_text.delta","sequence_number":1,"delta":"Hi"})"));
  CHECK(feed(R"({"type":"response.function_call_arguments.delta","delta":"{\"a\""})"));
  CHECK_FALSE(d.complete());
  REQUIRE(chunks.size() == 2);
  CHECK(json::parse(chunks[0])["choices"][0]["delta"]["content"] == "Hi");
  CHECK(json::parse(chunks[1])["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] ==
        "{\"a\"");
  const sse_event done{"response.completed",
                       R"({"type":"response.completed","sequence_number":3,"response":)" + whole +
                           "}",
                       {}};
  CHECK(d.on_event(done, chunks));
  CHECK(d.complete());
  REQUIRE(d.tokens());
  CHECK(d.tokens()->cache_read == 40);
  json final_event = json::parse(d.annotate_final(done, "native", 0.25));
  CHECK(final_event["sequence_number"] == 3);
  CHECK(final_event["response"]["provider"] == "native");
  CHECK(final_event["response"]["usage"]["cost"] == 0.25);
  CHECK(d.final_response()["id"] == "resp_up");

  responses_event_decoder failing;
  CHECK_FALSE(failing.on_event(
      sse_event{"", R"({"type":"response.failed","response":{"error":{"message":"boom"}}})", {}},
      chunks));
  CHECK(failing.error().find("boom") != std::string::npos);
}
