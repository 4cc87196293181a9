// What the inbound translators (anthropic_inbound.cpp, responses_inbound.cpp) share for reading
// a client's JSON: ordered DOMs (the client's member order is kept), a depth-bounded parse, member
// lookups that never throw, and the failure a translation step returns. Internal to providers/.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_scan.hpp"

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

// What a failed translation step returns; an empty `param` means success.
struct failure {
  std::string message;
  std::string param;
  explicit operator bool() const { return !param.empty(); }
};

}  // namespace meridian::providers::inbound
