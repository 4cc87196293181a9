// Inbound Gemini API: generateContent bodies to the canonical call, answers and streams back.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "providers/gemini_inbound.hpp"

using namespace meridian::providers;
using json = nlohmann::json;

namespace {

gemini_translation translate(const std::string& body, bool stream = false) {
  auto r = gemini_request_to_openai(body, "gem/gemini-2.5-flash", stream);
  if (auto* e = std::get_if<request_error>(&r)) FAIL_CHECK(e->message);
  REQUIRE(std::holds_alternative<gemini_translation>(r));
  return std::get<gemini_translation>(r);
}

}  // namespace

TEST_CASE("gemini inbound: a conversation with a function call round trip becomes chat") {
  auto t = translate(R"({
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "contents": [
      {"role": "user", "parts": [{"text": "Weather in Paris?"},
                                 {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
      {"role": "model", "parts": [{"text": "thinking", "thought": true},
                                  {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
      {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                      "response": {"temp": "18C"}}}]}],
    "tools": [{"functionDeclarations": [{"name": "get_weather",
      "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true},
                     "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}}, "required": ["city"]}}]},
      {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"maxOutputTokens": 64, "temperature": 0.5, "stopSequences": ["END"],
                         "topK": 3, "responseMimeType": "application/json"},
    "safetySettings": []})",
                     true);
  json b = json::parse(t.chat_body);
  CHECK(b["model"] == "gem/gemini-2.5-flash");
  CHECK(b["stream"] == true);
  const json& m = b["messages"];
  REQUIRE(m.size() == 4);
  CHECK(m[0] == json{{"role", "system"}, {"content", "Be brief."}});
  CHECK(m[1]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBO");
  CHECK(m[2]["reasoning_content"] == "thinking");
  CHECK(m[2]["tool_calls"][0]["function"]["arguments"] == R"({"city":"Paris"})");
  CHECK(m[3]["role"] == "tool");
  CHECK(m[3]["tool_call_id"] == m[2]["tool_calls"][0]["id"]);  // answered by name, in order
  CHECK(m[3]["content"] == R"({"temp":"18C"})");
  // Gemini's upper-case Schema becomes JSON Schema for the other dialects.
  CHECK(b["tools"][0]["function"]["parameters"] == json::parse(R"({"type":"object",
    "properties":{"city":{"type":["string","null"]},"days":{"type":"array","items":{"type":"integer"}}},
    "required":["city"]})"));
  CHECK(b["tool_choice"]["function"]["name"] == "get_weather");
  CHECK(b["max_tokens"] == 64);
  CHECK(b["stop"] == json{"END"});
  CHECK(b["response_format"]["type"] == "json_object");
  CHECK(t.dropped ==
        std::vector<std::string>{"generationConfig.topK", "tools.googleSearch", "safetySettings"});
  CHECK_FALSE(t.untranslatable);
}

TEST_CASE("gemini inbound: what Gemini would refuse is an error, what only it reads is deferred") {
  auto err = [](const std::string& body) {
    auto r = gemini_request_to_openai(body, "m", false);
    REQUIRE(std::holds_alternative<request_error>(r));
    return std::get<request_error>(r);
  };
  CHECK(err("{nope").param.empty());
  CHECK(err(R"({"contents":[]})").param == "contents");
  CHECK(err(R"({"contents":[{"role":"bot","parts":[{"text":"x"}]}]})").param == "contents");
  CHECK(err(R"({"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":0}})")
            .param == "generationConfig");
  auto pdf = translate(
      R"({"contents":[{"parts":[{"inlineData":{"mimeType":"application/pdf","data":"JVBE"}}]}]})");
  REQUIRE(pdf.untranslatable);
  CHECK(pdf.untranslatable->message.find("contents[0].parts[0]") != std::string::npos);
  auto cached = translate(R"({"contents":[{"parts":[{"text":"x"}]}],"cachedContent":"c/1"})");
  REQUIRE(cached.untranslatable);
  CHECK(cached.untranslatable->param == "cachedContent");
}

TEST_CASE("gemini inbound: answers and streams come back in Gemini's shape") {
  usage u;
  u.present = true;
  u.input = 10;
  u.cache_read = 4;
  u.output = 6;
  u.reasoning = 2;
  const answer_notes notes{"fast", 0.25, false};
  json whole = json::parse(openai_response_to_gemini(
      R"({"id":"c1","choices":[{"message":{"role":"assistant","content":"Hi",)"
      R"("tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},)"
      R"("finish_reason":"tool_calls"}]})",
      "gem/x", u, &notes));
  const json& parts = whole["candidates"][0]["content"]["parts"];
  CHECK(parts[0] == json{{"text", "Hi"}});
  CHECK(parts[1]["functionCall"] == json{{"name", "f"}, {"args", {{"a", 1}}}});
  CHECK(whole["candidates"][0]["finishReason"] == "STOP");
  CHECK(whole["usageMetadata"] == json{{"promptTokenCount", 14},
                                       {"candidatesTokenCount", 6},
                                       {"totalTokenCount", 22},
                                       {"cachedContentTokenCount", 4},
                                       {"thoughtsTokenCount", 2},
                                       {"cost", 0.25}});
  CHECK(whole["provider"] == "fast");

  gemini_stream_encoder enc("gem/x");
  std::vector<sse_event> out;
  enc.on_chunk(R"({"id":"c1","choices":[{"delta":{"content":"He"}}]})", out);
  enc.on_chunk(
      R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\""}}]}}]})",
      out);
  enc.on_chunk(
      R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]})",
      out);
  enc.finish(u, out, &notes);
  REQUIRE(out.size() == 2);  // the text, then the whole call with the end
  CHECK(json::parse(out[0].data)["candidates"][0]["content"]["parts"][0]["text"] == "He");
  json last = json::parse(out[1].data);
  CHECK(last["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == json{{"a", 1}});
  CHECK(last["candidates"][0]["finishReason"] == "STOP");
  CHECK(last["usageMetadata"]["candidatesTokenCount"] == 6);
  std::vector<sse_event> after;
  enc.fail("late", after);
  CHECK(after.empty());  // an ended stream stays ended
}
