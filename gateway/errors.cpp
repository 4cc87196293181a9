// Domain errors as api_errors: see errors.hpp.
#include "gateway/errors.hpp"

namespace meridian::gateway {

api_error to_api_error(const providers::request_error& e) {
  return {error_kind::invalid_request, e.param, e.message,
          e.param.empty() ? "invalid_json" : "invalid_value"};
}

api_error to_api_error(const policies::facts_error& e) {
  return {error_kind::invalid_request, e.param, e.message,
          e.param.empty() ? "invalid_json" : "invalid_value"};
}

api_error to_api_error(const policies::plan_error& e) {
  if (e.what == policies::plan_error::kind::forbidden)
    return {error_kind::permission, e.param, e.message, e.code};
  const bool missing = e.what == policies::plan_error::kind::not_found;
  std::string code = !e.code.empty() ? e.code : missing ? "model_not_found" : "no_candidates";
  return {missing ? error_kind::not_found : error_kind::invalid_request, e.param, e.message,
          std::move(code)};
}

api_error to_api_error(const policies::resolve_error& e) {
  const bool ambiguous = e.what == policies::resolve_error::kind::ambiguous;
  return {ambiguous ? error_kind::invalid_request : error_kind::not_found, "model", e.message,
          ambiguous ? "ambiguous_model" : "model_not_found"};
}

api_error to_api_error(const stats::query_error& e) {
  using kind = stats::query_error::kind;
  switch (e.what) {
    case kind::unavailable:
      return {error_kind::unavailable, e.param, e.message, "stats_unavailable"};
    case kind::not_found:
      return {error_kind::not_found, e.param, e.message, "invalid_value"};
    case kind::bad_param:
      break;
  }
  return {error_kind::invalid_request, e.param, e.message, "invalid_value"};
}

}  // namespace meridian::gateway
