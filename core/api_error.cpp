// The error table (kind -> status and OpenAI type) and the two renderers: see api_error.hpp.
#include "core/api_error.hpp"

#include "core/json_scan.hpp"

namespace meridian::core {

unsigned http_status(error_kind k) {
  switch (k) {
    case error_kind::invalid_request:
      return 400;
    case error_kind::authentication:
      return 401;
    case error_kind::insufficient_quota:
      return 402;
    case error_kind::permission:
      return 403;
    case error_kind::not_found:
      return 404;
    case error_kind::method_not_allowed:
      return 405;
    case error_kind::conflict:
      return 409;
    case error_kind::too_large:
      return 413;
    case error_kind::unprocessable:
      return 422;
    case error_kind::headers_too_large:
      return 431;
    case error_kind::rate_limited:
    case error_kind::rate_limited_requests:
    case error_kind::rate_limited_tokens:
      return 429;
    case error_kind::internal:
      return 500;
    case error_kind::upstream:
      return 502;
    case error_kind::unavailable:
    case error_kind::upstream_unavailable:
      return 503;
    case error_kind::upstream_timeout:
      return 504;
  }
  return 500;
}

error_kind client_error_kind(unsigned upstream_status) {
  switch (upstream_status) {
    case 404:
      return error_kind::not_found;
    case 409:
      return error_kind::conflict;
    case 413:
      return error_kind::too_large;
    case 422:
      return error_kind::unprocessable;
    default:
      return error_kind::invalid_request;
  }
}

std::string_view openai_error_type(error_kind k) {
  switch (k) {
    case error_kind::insufficient_quota:
      return "insufficient_quota";
    case error_kind::rate_limited:
      return "rate_limit_error";
    case error_kind::rate_limited_requests:
      return "requests";
    case error_kind::rate_limited_tokens:
      return "tokens";
    case error_kind::internal:
    case error_kind::unavailable:
      return "server_error";
    case error_kind::upstream:
    case error_kind::upstream_unavailable:
    case error_kind::upstream_timeout:
      return "upstream_error";
    default:
      return "invalid_request_error";
  }
}

std::string openai_error_body(std::string_view message, std::string_view type,
                              std::string_view param, std::string_view code) {
  std::string out = "{\"error\":{\"message\":";
  append_json_string(out, message);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"param\":";
  if (param.empty())
    out += "null";
  else
    append_json_string(out, param);
  out += ",\"code\":";
  if (code.empty())
    out += "null";
  else
    append_json_string(out, code);
  out += "}}";
  return out;
}

std::string anthropic_error_body(std::string_view type, std::string_view message) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":";
  append_json_string(out, type);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}";
  return out;
}

std::string_view anthropic_error_type(unsigned http_status) {
  switch (http_status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return http_status >= 400 && http_status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::string render(const api_error& e, api_shape shape) {
  switch (shape) {
    case api_shape::anthropic:
      return anthropic_error_body(anthropic_error_type(http_status(e.kind)), e.message);
    case api_shape::gemini:
      return gemini_error_body(http_status(e.kind), e.message);
    case api_shape::openai:
    case api_shape::responses:
      break;
  }
  return openai_error_body(e.message, openai_error_type(e.kind), e.param, e.code);
}

std::string gemini_error_body(unsigned http_status, std::string_view message) {
  std::string_view status = "INTERNAL";
  switch (http_status) {
    case 400:
    case 413:
      status = "INVALID_ARGUMENT";
      break;
    case 401:
      status = "UNAUTHENTICATED";
      break;
    case 403:
      status = "PERMISSION_DENIED";
      break;
    case 404:
      status = "NOT_FOUND";
      break;
    case 405:
      status = "UNIMPLEMENTED";
      break;
    case 429:
      status = "RESOURCE_EXHAUSTED";
      break;
    case 502:
    case 503:
      status = "UNAVAILABLE";
      break;
    case 504:
      status = "DEADLINE_EXCEEDED";
      break;
    default:
      break;
  }
  std::string out = "{\"error\":{\"code\":" + std::to_string(http_status) + ",\"message\":";
  append_json_string(out, message);
  out += ",\"status\":";
  append_json_string(out, status);
  out += "}}";
  return out;
}

}  // namespace meridian::core
