// One error path: every failure a client is told about is an api_error, and one function renders
// it in the shape of the API the client called, with its HTTP status. Domain errors
// (providers::request_error, policies::plan_error, stats::query_error, ...) carry no status of
// their own; gateway/errors.hpp converts each to an api_error.
#pragma once

#include <string>
#include <string_view>

namespace meridian::core {

// What went wrong, from the client's side. Each kind has one HTTP status; the error `type`
// each API shape names follows from the kind.
enum class error_kind {
  invalid_request,        // 400: the request is malformed or asks for the impossible
  authentication,         // 401: no key, or a key the gateway does not know
  insufficient_quota,     // 402: a budget is spent
  permission,             // 403: the key may not do this
  not_found,              // 404: no such model, provider, path or generation
  method_not_allowed,     // 405
  conflict,               // 409
  too_large,              // 413: the body is over the limit
  headers_too_large,      // 431: the request headers are over the limit
  unprocessable,          // 422
  rate_limited,           // 429: a provider's rate limit
  rate_limited_requests,  // 429: a key's requests per minute; OpenAI's type is "requests"
  rate_limited_tokens,    // 429: a key's tokens per minute; OpenAI's type is "tokens"
  internal,               // 500: the gateway failed
  upstream,               // 502: a provider failed, answered garbage or rejected its credentials
  unavailable,            // 503: a store the gateway needs cannot answer
  upstream_unavailable,   // 503: no provider can take the request now (all down or overloaded)
  upstream_timeout,       // 504: the provider did not answer in time
};

unsigned http_status(error_kind k);

// The kind an upstream's HTTP error status becomes when it is passed on as the client's own
// (400, 404, 409, 413, 422): invalid_request for any other 4xx.
error_kind client_error_kind(unsigned upstream_status);

struct api_error {
  error_kind kind = error_kind::invalid_request;
  std::string param;    // the request member to blame (OpenAI's `param`); empty for none
  std::string message;  // for a person; never holds a secret
  std::string code;     // machine-readable, e.g. "model_not_found"; empty for none
};

// The API a client called, which decides how its answers and errors look. The Responses API's
// errors are OpenAI's.
enum class api_shape { openai, anthropic, responses, gemini };

// The error body for `shape`: OpenAI's {"error":{"message","type","param","code"}} or
// Anthropic's {"type":"error","error":{"type","message"}}.
std::string render(const api_error& e, api_shape shape);

// Google's error body, {"error":{"code","message","status"}}, with the status name of `http_status`
// (INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE, ...).
std::string gemini_error_body(unsigned http_status, std::string_view message);

// {"error":{"message","type","param","code"}}, for the few places that write OpenAI's shape
// inside another body (a stream's final error event).
std::string openai_error_body(std::string_view message, std::string_view type,
                              std::string_view param = {}, std::string_view code = {});
// The OpenAI error type of a kind: "invalid_request_error", "rate_limit_error", ...
std::string_view openai_error_type(error_kind k);

// {"type":"error","error":{"type":TYPE,"message":MESSAGE}}
std::string anthropic_error_body(std::string_view type, std::string_view message);
// The Anthropic error type for an HTTP status (e.g. 429 -> "rate_limit_error").
std::string_view anthropic_error_type(unsigned http_status);

}  // namespace meridian::core
