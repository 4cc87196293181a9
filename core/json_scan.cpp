// JSON without a DOM: the validator, and the member scan over validated text.
#include "core/json_scan.hpp"

#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <vector>

namespace meridian::core {
using namespace json_cursor;

namespace {

// The length of the UTF-8 sequence RFC 3629 allows at t[i] (a byte of 0x80 or more), or 0 for an
// invalid one: overlong forms, surrogates, code points past U+10FFFF and cut sequences.
std::size_t utf8_length(std::string_view t, std::size_t i) {
  const std::size_t n = t.size();
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = k < n ? static_cast<unsigned char>(t[k]) : 0u;
    return k < n && b >= lo && b <= hi;
  };
  const unsigned c = static_cast<unsigned char>(t[i]);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const bool ok = c == 0xE0   ? cont(i + 1, 0xA0, 0xBF)
                    : c == 0xED ? cont(i + 1, 0x80, 0x9F)
                                : cont(i + 1);
    return ok && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const bool ok = c == 0xF0   ? cont(i + 1, 0x90, 0xBF)
                    : c == 0xF4 ? cont(i + 1, 0x80, 0x8F)
                                : cont(i + 1);
    return ok && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

// One past a valid string literal starting at t[i] (a '"'), or npos. The rules are
// nlohmann::json's: no control characters, known escapes only, \u surrogates in pairs, and
// UTF-8 as RFC 3629 allows it.
std::size_t valid_string(std::string_view t, std::size_t i) {
  const std::size_t n = t.size();
  auto byte = [&](std::size_t k) { return k < n ? static_cast<unsigned char>(t[k]) : 0u; };
  auto hex = [&](std::size_t k, unsigned& v) {
    v = 0;
    for (std::size_t j = k; j < k + 4; ++j) {
      const unsigned b = byte(j);
      unsigned d;
      if (j >= n) return false;
      if (b >= '0' && b <= '9')
        d = b - '0';
      else if ((b | 0x20) >= 'a' && (b | 0x20) <= 'f')
        d = (b | 0x20) - 'a' + 10;
      else
        return false;
      v = v * 16 + d;
    }
    return true;
  };
  for (++i; i < n;) {
    // Eight plain bytes at a time (printable ASCII, neither a quote nor a backslash): most of a
    // request's text, and what made this loop a twentieth of a proxied request's instructions.
    while (i + 8 <= n) {
      std::uint64_t x;
      std::memcpy(&x, t.data() + i, 8);
      constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
      auto has_zero = [&](std::uint64_t v) { return (v - ones) & ~v & highs; };
      const std::uint64_t special = has_zero(x ^ (ones * '"')) | has_zero(x ^ (ones * '\\')) |
                                    ((x - ones * 0x20) & ~x & highs) | (x & highs);
      if (special) {
        // The lowest flag is exact (a false one only ever sits above a true one): skip the
        // plain bytes before it, and let the byte loop read that one.
        if constexpr (std::endian::native == std::endian::little)
          i += static_cast<std::size_t>(std::countr_zero(special)) / 8;
        break;
      }
      i += 8;
    }
    if (i >= n) break;
    const unsigned c = byte(i);
    if (c == '"') return i + 1;
    if (c >= 0x20 && c < 0x80 && c != '\\') {
      ++i;
    } else if (c < 0x20) {
      return std::string_view::npos;
    } else if (c == '\\') {
      const unsigned e = byte(i + 1);
      if (i + 1 >= n) return std::string_view::npos;
      if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
          e == 't') {
        i += 2;
        continue;
      }
      unsigned cp;
      if (e != 'u' || !hex(i + 2, cp)) return std::string_view::npos;
      i += 6;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return std::string_view::npos;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (byte(i) != '\\' || byte(i + 1) != 'u' || i + 1 >= n || !hex(i + 2, lo) || lo < 0xDC00 ||
            lo > 0xDFFF)
          return std::string_view::npos;
        i += 6;
      }
    } else if (const std::size_t len = utf8_length(t, i)) {
      i += len;
    } else {
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// One past a valid number starting at t[i], or npos. Like nlohmann::json, a number too large
// for a double (1e400, or an integer of 309 digits) is an error; one too small is 0.
std::size_t valid_number(std::string_view t, std::size_t i) {
  const std::size_t n = t.size(), start = i;
  if (t[i] == '-') ++i;
  if (i >= n || !is_digit(t[i])) return std::string_view::npos;
  if (t[i] == '0')
    ++i;
  else
    while (i < n && is_digit(t[i])) ++i;
  bool exponent = false;
  if (i < n && t[i] == '.') {
    if (++i >= n || !is_digit(t[i])) return std::string_view::npos;
    while (i < n && is_digit(t[i])) ++i;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    exponent = true;
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (i >= n || !is_digit(t[i])) return std::string_view::npos;
    while (i < n && is_digit(t[i])) ++i;
  }
  if (exponent || i - start > 300) {
    double v;
    const auto r = std::from_chars(t.data() + start, t.data() + i, v);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow or underflow: the sign of the decimal exponent says which.
      std::size_t k = start + (t[start] == '-');
      long long magnitude = 0;  // digits before the point, less leading zeros
      while (k < i && t[k] == '0') ++k;
      for (; k < i && is_digit(t[k]); ++k) ++magnitude;
      if (magnitude == 0 && k < i && t[k] == '.')
        for (++k; k < i && t[k] == '0'; ++k) --magnitude;
      while (k < i && t[k] != 'e' && t[k] != 'E') ++k;
      if (k < i) {
        const bool negative = t[++k] == '-';
        if (t[k] == '-' || t[k] == '+') ++k;
        long long e = 0;
        for (; k < i; ++k) e = std::min<long long>(e * 10 + (t[k] - '0'), 1'000'000'000'000);
        magnitude += negative ? -e : e;
      }
      if (magnitude > 0) return std::string_view::npos;
    }
  }
  return i;
}

// Whether `t` is one JSON document, by exactly the rules of nlohmann::json::accept (a UTF-8
// byte order mark first is allowed), without its lexer's per-character token buffer. Iterative:
// nesting depth is bounded by memory only, as nlohmann's parser's is.
bool valid_document(std::string_view t) {
  const std::size_t n = t.size();
  std::size_t i = 0;
  if (n && static_cast<unsigned char>(t[0]) == 0xEF) {
    if (n < 3 || static_cast<unsigned char>(t[1]) != 0xBB ||
        static_cast<unsigned char>(t[2]) != 0xBF)
      return false;
    i = 3;
  }
  std::vector<char> stack;  // '{' or '[' per open container
  constexpr std::size_t bad = std::string_view::npos;
  // expects a member key and its ':' at t[i] (after whitespace)
  auto key = [&]() {
    i = skip_ws(t, i);
    if (i >= n || t[i] != '"' || (i = valid_string(t, i)) == bad) return false;
    i = skip_ws(t, i);
    if (i >= n || t[i] != ':') return false;
    ++i;
    return true;
  };
  for (;;) {
    // a value
    i = skip_ws(t, i);
    if (i >= n) return false;
    const char c = t[i];
    bool scalar = true;
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      i = skip_ws(t, i + 1);
      if (i < n && t[i] == close) {
        ++i;
      } else {
        stack.push_back(c);
        if (c == '{' && !key()) return false;
        scalar = false;
      }
    } else if (c == '"') {
      if ((i = valid_string(t, i)) == bad) return false;
    } else if (c == 't' || c == 'f' || c == 'n') {
      const std::string_view lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
      if (t.substr(i, lit.size()) != lit) return false;
      i += lit.size();
    } else if (c == '-' || is_digit(c)) {
      if ((i = valid_number(t, i)) == bad) return false;
    } else {
      return false;
    }
    if (!scalar) continue;
    // after a value: ',' (then the next member or element), a closing bracket, or the end
    for (;;) {
      i = skip_ws(t, i);
      // Unlike nlohmann's lexer, a NUL byte is not an end of input: bytes after it are junk.
      if (stack.empty()) return i == n;
      if (i >= n) return false;
      const char top = stack.back();
      if (t[i] == ',') {
        ++i;
        if (top == '{' && !key()) return false;
        break;
      }
      if (t[i] != (top == '{' ? '}' : ']')) return false;
      stack.pop_back();
      ++i;
    }
  }
}

}  // namespace

bool json_valid(std::string_view text) {
  return valid_document(text);
}

std::string without_member(std::string_view text, const json_object_scan& scan,
                           std::string_view key) {
  const auto& ms = scan.members;
  for (std::size_t i = 0; i < ms.size(); ++i) {
    if (ms[i].key != key) continue;
    // The first member goes with the comma after it, any other with the comma before it.
    const std::size_t begin = i == 0 ? ms[i].member_begin : ms[i - 1].value_end;
    const std::size_t end = i == 0 && ms.size() > 1 ? ms[1].member_begin : ms[i].value_end;
    std::string out(text.substr(0, begin));
    out.append(text.substr(end));
    return out;
  }
  return std::string(text);
}

const json_member* json_object_scan::find(std::string_view key) const {
  for (const auto& m : members)
    if (m.key == key) return &m;
  return nullptr;
}

std::optional<ambiguous_name> ambiguous_member(const json_object_scan& scan) {
  const auto& ms = scan.members;
  for (std::size_t i = 0; i < ms.size(); ++i) {
    if (ms[i].key.find('\\') != std::string_view::npos)
      return ambiguous_name{std::string(ms[i].key), true};
    for (std::size_t j = 0; j < i; ++j)
      if (ms[j].key == ms[i].key) return ambiguous_name{std::string(ms[i].key), false};
  }
  return std::nullopt;
}

std::optional<json_object_scan> scan_object(std::string_view t) {
  const std::size_t open = skip_ws(t, 0);
  if (open >= t.size() || t[open] != '{') return std::nullopt;
  json_object_scan scan{};
  scan.open = open;
  const std::size_t end =
      for_each_member(t, open, [&](std::string_view key, std::size_t b, std::size_t e) {
        scan.members.push_back({key, static_cast<std::size_t>(key.data() - t.data()) - 1, b, e});
      });
  if (end == 0 || t[end - 1] != '}') return std::nullopt;
  scan.close = end - 1;
  return scan;
}

bool json_nesting_exceeds(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // Valid UTF-8 is copied; any other byte becomes U+FFFD, so the literal is always JSON
      // that strict parsers accept, whatever an upstream or a client put in the text.
      if (const std::size_t len = utf8_length(s, i)) {
        out.append(s.substr(i, len));
        i += len - 1;
      } else {
        out.append("\\ufffd");
      }
      continue;
    }
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

}  // namespace meridian::core
