// A minimal JSON skipper: it trusts that the text was validated and only tracks nesting.
#include "providers/json_scan.hpp"

namespace meridian::providers {
namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::size_t skip_ws(std::string_view t, std::size_t i) {
  while (i < t.size() && is_ws(t[i])) ++i;
  return i;
}

// i points at an opening quote; returns the offset one past the closing quote.
std::size_t skip_string(std::string_view t, std::size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '"') {
      return i + 1;
    }
  }
  return t.size();
}

// i points at a value's first byte; returns one past its last byte.
std::size_t skip_value(std::string_view t, std::size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    for (; i < t.size(); ++i) {
      char c = t[i];
      if (c == '"') {
        i = skip_string(t, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return t.size();
  }
  // number, true, false, null
  while (i < t.size() && !is_ws(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;
  return i;
}

}  // namespace

const json_member* json_object_scan::find(std::string_view key) const {
  for (const auto& m : members)
    if (m.key == key) return &m;
  return nullptr;
}

std::optional<json_object_scan> scan_object(std::string_view t) {
  json_object_scan scan{};
  std::size_t i = skip_ws(t, 0);
  if (i >= t.size() || t[i] != '{') return std::nullopt;
  scan.open = i;
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] != '}') {
    if (t[i] != '"') return std::nullopt;
    std::size_t key_end = skip_string(t, i);
    json_member m{t.substr(i + 1, key_end - i - 2), i, 0, 0};
    i = skip_ws(t, key_end);
    if (i >= t.size() || t[i] != ':') return std::nullopt;
    m.value_begin = skip_ws(t, i + 1);
    m.value_end = skip_value(t, m.value_begin);
    scan.members.push_back(m);
    i = skip_ws(t, m.value_end);
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
  if (i >= t.size()) return std::nullopt;
  scan.close = i;
  return scan;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

}  // namespace meridian::providers
