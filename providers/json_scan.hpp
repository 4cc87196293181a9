// Finds the byte ranges of a JSON object's top-level members without building a DOM, so a
// body can be forwarded with one field rewritten and every other byte left as the client sent it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::providers {

struct json_member {
  std::string_view key;      // raw key text between the quotes (escapes not decoded)
  std::size_t member_begin;  // offset of the key's opening quote
  std::size_t value_begin;   // offset of the value's first byte
  std::size_t value_end;     // one past the value's last byte
};

struct json_object_scan {
  std::vector<json_member> members;
  std::size_t open;   // offset of '{'
  std::size_t close;  // offset of the matching '}'

  const json_member* find(std::string_view key) const;
};

// Scans `text`, which must be a syntactically valid JSON document (validate it first);
// nullopt when its top-level value is not an object.
std::optional<json_object_scan> scan_object(std::string_view text);

// Writes `s` as a JSON string literal (quotes included), escaping as RFC 8259 requires.
void append_json_string(std::string& out, std::string_view s);

}  // namespace meridian::providers
