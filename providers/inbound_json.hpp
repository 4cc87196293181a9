// What the inbound translators (anthropic_inbound.cpp, responses_inbound.cpp) share for reading
// a client's JSON: ordered DOMs (the client's member order is kept), a depth-bounded parse, member
// lookups that never throw, and the failure a translation step returns. Internal to providers/.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_scan.hpp"
#include "providers/request.hpp"

namespace meridian::providers::inbound {

using ojson = nlohmann::ordered_json;

// A body, or a discarded value when it is not JSON or nests deeper than core::k_max_json_depth:
// copying, dumping and comparing nlohmann values recurse, so a hostile `[[[[...` inside an
// accepted body could otherwise exhaust the stack.
inline ojson parse_bounded(std::string_view text) {
  if (core::json_nesting_exceeds(text, core::k_max_json_depth))
    return ojson(ojson::value_t::discarded);
  return ojson::parse(text, nullptr, false);
}

inline const ojson* member(const ojson& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

inline std::string string_member(const ojson& obj, const char* key) {
  const ojson* v = member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// An inbound request body as a JSON object, or the request_error a client is told: nesting
// deeper than core::k_max_json_depth, not JSON, or not an object.
inline std::variant<ojson, request_error> parse_request_object(std::string_view body) {
  if (core::json_nesting_exceeds(body, core::k_max_json_depth))
    return request_error{
        "request body nests deeper than " + std::to_string(core::k_max_json_depth) + " levels", ""};
  ojson in = ojson::parse(body, nullptr, false);
  if (in.is_discarded()) return request_error{"request body is not valid JSON", ""};
  if (!in.is_object()) return request_error{"request body must be a JSON object", ""};
  return in;
}

// Present and not null.
inline bool given(const ojson* v) {
  return v && !v->is_null();
}

// `parts` joined with newlines.
inline std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '\n';
    out += parts[i];
  }
  return out;
}

// A canonical chat.completion (an empty object when it is not one) with its first choice's
// `message` (an empty object when there is none) and `finish_reason` (empty when there is
// none): what both answer translators start from.
struct first_choice {
  ojson body;
  ojson message = ojson::object();
  std::string finish_reason;
};
inline first_choice first_choice_of(std::string_view openai_body) {
  first_choice out{parse_bounded(openai_body)};
  if (!out.body.is_object()) out.body = ojson::object();
  if (const ojson* choices = member(out.body, "choices");
      choices && choices->is_array() && !choices->empty()) {
    const ojson& choice = (*choices)[0];
    out.finish_reason = string_member(choice, "finish_reason");
    if (const ojson* m = member(choice, "message"); m && m->is_object()) out.message = *m;
  }
  return out;
}

// What a failed translation step returns; an empty `param` means success.
struct failure {
  std::string message;
  std::string param;
  explicit operator bool() const { return !param.empty(); }
};

}  // namespace meridian::providers::inbound
