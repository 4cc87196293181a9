// Lanes: which client API and backend dialect pass through, and what a pass-through changes of
// the client's request (only `model`) and adds to it (its dialect headers, never credentials).
#include <doctest/doctest.h>

#include <string>

#include "providers/lanes.hpp"
#include "providers/openai.hpp"

using namespace meridian;
using namespace meridian::providers;
using config::dialect_kind;
using core::api_shape;

namespace {

native_call native(std::string_view body,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
  auto parsed = parse_model_request(body);
  REQUIRE(std::holds_alternative<chat_request>(parsed));
  return native_call{body, std::get<chat_request>(parsed), std::move(headers)};
}

}  // namespace

TEST_CASE("lanes: the same wire format passes through, any other pair is translated") {
  CHECK(lane_for(api_shape::anthropic, dialect_kind::anthropic) == lane::pass_through);
  CHECK(lane_for(api_shape::openai, dialect_kind::openai) == lane::pass_through);
  for (auto d : {dialect_kind::openai, dialect_kind::gemini})
    CHECK(lane_for(api_shape::anthropic, d) == lane::translation);
  for (auto d : {dialect_kind::anthropic, dialect_kind::gemini})
    CHECK(lane_for(api_shape::openai, d) == lane::translation);
  for (auto d : {dialect_kind::openai, dialect_kind::anthropic, dialect_kind::gemini})
    CHECK(lane_for(api_shape::responses, d) == lane::translation);
  // Responses pass through only to an OpenAI-dialect backend that serves the Responses API.
  CHECK(lane_for(api_shape::responses, dialect_kind::openai, true) == lane::pass_through);
  for (auto d : {dialect_kind::anthropic, dialect_kind::gemini})
    CHECK(lane_for(api_shape::responses, d, true) == lane::translation);
  CHECK(lane_for(api_shape::openai, dialect_kind::openai, true) == lane::pass_through);
  CHECK(dialect_headers(api_shape::anthropic) ==
        std::vector<std::string_view>{"anthropic-version", "anthropic-beta"});
  CHECK(dialect_headers(api_shape::openai).empty());
}

TEST_CASE("lanes: a pass-through changes only model, byte for byte") {
  // Unknown members, odd spacing, cache_control, thinking with its signature, escapes: all kept.
  const std::string before = R"({ "model" : "sonnet",)";
  const std::string after =
      R"( "max_tokens":1024,"thinking":{"type":"enabled","budget_tokens":1024},)"
      R"("system":[{"type":"text","text":"S\u00e9","cache_control":{"type":"ephemeral"}}],)"
      R"("messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t",)"
      R"("signature":"EqQB"}]}],"future_member":[1,2.50,true],"stream":true })";
  const std::string body = before + after;
  auto up = encode_pass_through(
      native(body, {{"anthropic-version", "2023-06-01"},
                    {"anthropic-beta", "prompt-caching-2024-07-31,mid-conversation-system"}}),
      api_shape::anthropic, "claude-sonnet-4-5-20250929");
  CHECK(up.body == R"({ "model" : "claude-sonnet-4-5-20250929",)" + after);
  CHECK(up.path == "/messages");
  CHECK(up.headers == std::vector<std::pair<std::string, std::string>>{
                          {"anthropic-version", "2023-06-01"},
                          {"anthropic-beta", "prompt-caching-2024-07-31,mid-conversation-system"}});
  // Anthropic requires a version: one the client did not send gets the default.
  auto bare = encode_pass_through(native(body), api_shape::anthropic, "m");
  CHECK(bare.headers ==
        std::vector<std::pair<std::string, std::string>>{{"anthropic-version", "2023-06-01"}});
}

TEST_CASE("lanes: a body the gateway and the backend could read two ways never passes through") {
  // The scan takes the first `model`, most parsers the last: routed as one, served as another.
  for (const char* body : {R"({"model":"cheap","max_tokens":5,"model":"opus","messages":[]})",
                           R"({"model":"cheap","mod\u0065l":"opus","messages":[]})",
                           R"({"model":"cheap","messages":[]} {"x":1})"}) {
    CAPTURE(body);
    CHECK(std::holds_alternative<request_error>(parse_model_request(body)));
  }
}

TEST_CASE("lanes: the dropped list is one comma-separated header value") {
  CHECK(dropped_header({}).empty());
  CHECK(dropped_header({"thinking", "cache_control"}) == "thinking,cache_control");
}

TEST_CASE("lanes: a Responses pass-through goes to /responses with only model changed") {
  const std::string body =
      R"({"model":"gpt-x","input":"hi","text":{"verbosity":"low"},"stream":true,"store":false})";
  auto up = encode_pass_through(native(body), api_shape::responses, "gpt-5");
  CHECK(up.path == "/responses");
  CHECK(up.body ==
        R"({"model":"gpt-5","input":"hi","text":{"verbosity":"low"},"stream":true,"store":false})");
  CHECK(up.headers.empty());
}
