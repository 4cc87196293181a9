// api_error: one table gives each kind its status and OpenAI type; render writes the shape of
// the API the client called.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api_error.hpp"

using namespace meridian::core;
using nlohmann::json;

TEST_CASE("api_error: each kind has one status and one OpenAI type") {
  struct row {
    error_kind kind;
    unsigned status;
    std::string_view type;
  };
  const std::vector<row> table = {
      {error_kind::invalid_request, 400, "invalid_request_error"},
      {error_kind::authentication, 401, "invalid_request_error"},
      {error_kind::insufficient_quota, 402, "insufficient_quota"},
      {error_kind::permission, 403, "invalid_request_error"},
      {error_kind::not_found, 404, "invalid_request_error"},
      {error_kind::method_not_allowed, 405, "invalid_request_error"},
      {error_kind::conflict, 409, "invalid_request_error"},
      {error_kind::too_large, 413, "invalid_request_error"},
      {error_kind::unprocessable, 422, "invalid_request_error"},
      {error_kind::headers_too_large, 431, "invalid_request_error"},
      {error_kind::rate_limited, 429, "rate_limit_error"},
      {error_kind::rate_limited_requests, 429, "requests"},
      {error_kind::rate_limited_tokens, 429, "tokens"},
      {error_kind::internal, 500, "server_error"},
      {error_kind::upstream, 502, "upstream_error"},
      {error_kind::unavailable, 503, "server_error"},
      {error_kind::upstream_unavailable, 503, "upstream_error"},
      {error_kind::upstream_timeout, 504, "upstream_error"},
  };
  for (const auto& r : table) {
    CAPTURE(r.status);
    CHECK(http_status(r.kind) == r.status);
    CHECK(openai_error_type(r.kind) == r.type);
  }
}

TEST_CASE("api_error: an upstream's client-error status keeps its meaning") {
  CHECK(client_error_kind(400) == error_kind::invalid_request);
  CHECK(client_error_kind(404) == error_kind::not_found);
  CHECK(client_error_kind(409) == error_kind::conflict);
  CHECK(client_error_kind(413) == error_kind::too_large);
  CHECK(client_error_kind(422) == error_kind::unprocessable);
  CHECK(client_error_kind(418) == error_kind::invalid_request);
}

TEST_CASE("api_error: render writes OpenAI's shape, param and code null when empty") {
  const api_error e{error_kind::not_found, "model", "No model 'x'", "model_not_found"};
  CHECK(json::parse(render(e, api_shape::openai)) ==
        json::parse(R"({"error":{"message":"No model 'x'","type":"invalid_request_error",
                                  "param":"model","code":"model_not_found"}})"));
  const api_error bare{error_kind::upstream, {}, "Provider 'p' failed", {}};
  CHECK(json::parse(render(bare, api_shape::openai)) ==
        json::parse(R"({"error":{"message":"Provider 'p' failed","type":"upstream_error",
                                  "param":null,"code":null}})"));
}

TEST_CASE("api_error: the Responses API's errors are OpenAI's") {
  const api_error e{error_kind::invalid_request, "input", "bad input", "invalid_value"};
  CHECK(render(e, api_shape::responses) == render(e, api_shape::openai));
}

TEST_CASE("api_error: render writes Anthropic's shape with the type its status names") {
  const api_error e{error_kind::rate_limited, {}, "slow \"down\"", "rate_limit_exceeded"};
  CHECK(json::parse(render(e, api_shape::anthropic)) ==
        json::parse(
            R"({"type":"error","error":{"type":"rate_limit_error","message":"slow \"down\""}})"));
  const api_error auth{error_kind::authentication, {}, "no key", {}};
  CHECK(json::parse(render(auth, api_shape::anthropic))["error"]["type"] == "authentication_error");
  const api_error down{error_kind::upstream_unavailable, {}, "all down", {}};
  CHECK(json::parse(render(down, api_shape::anthropic))["error"]["type"] == "api_error");
}

TEST_CASE("api_error: bytes that are not UTF-8 become U+FFFD, so the body is still JSON") {
  // A hostile upstream's error text: a lone continuation byte, a cut sequence, an overlong '/',
  // an encoded surrogate (one U+FFFD per byte), then valid two-, three- and four-byte characters.
  const std::string text =
      "a\x80"
      "b\xE4\xB8"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";
  const api_error e{error_kind::upstream, {}, text, {}};
  for (auto shape : {api_shape::openai, api_shape::anthropic}) {
    const auto body = json::parse(render(e, shape));  // throws on invalid UTF-8
    CHECK(body["error"]["message"] ==
          "a\uFFFDb\uFFFD\uFFFDc\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFDe\u00e9\u4e2d\U0001F600");
  }
}

TEST_CASE("api_error: a message with quotes, newlines and control bytes stays one JSON string") {
  const std::string nasty = "a\"b\\c\nd\x01";
  const api_error e{error_kind::invalid_request, {}, nasty, {}};
  CHECK(json::parse(render(e, api_shape::openai))["error"]["message"] == nasty);
  CHECK(json::parse(render(e, api_shape::anthropic))["error"]["message"] == nasty);
}

TEST_CASE("api_error: Anthropic error bodies and types follow Anthropic's names") {
  CHECK(json::parse(anthropic_error_body("rate_limit_error", "slow \"down\"")) ==
        json::parse(
            R"({"type":"error","error":{"type":"rate_limit_error","message":"slow \"down\""}})"));
  const std::vector<std::pair<unsigned, std::string_view>> table = {{400, "invalid_request_error"},
                                                                    {401, "authentication_error"},
                                                                    {403, "permission_error"},
                                                                    {404, "not_found_error"},
                                                                    {413, "request_too_large"},
                                                                    {422, "invalid_request_error"},
                                                                    {429, "rate_limit_error"},
                                                                    {500, "api_error"},
                                                                    {502, "api_error"},
                                                                    {503, "api_error"},
                                                                    {504, "api_error"},
                                                                    {529, "overloaded_error"}};
  for (const auto& [status, type] : table) {
    CAPTURE(status);
    CHECK(anthropic_error_type(status) == type);
  }
}
