// Finds the byte ranges of a JSON object's top-level members without building a DOM, so a
// body can be forwarded with one field rewritten and every other byte left as the client sent it.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::core {

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

// `text` (scanned as `scan`) without its member `key` and the comma that separated it; `text`
// unchanged when it has no such member. Still valid JSON, every other byte as it was.
std::string without_member(std::string_view text, const json_object_scan& scan,
                           std::string_view key);

// A member name that the gateway and a provider could read two ways: one that occurs twice in
// the object (parsers disagree on which one wins: the scan finds the first, most DOMs keep the
// last), or one written with an escape sequence (the scan compares names as written, a
// provider decodes them, so "mod\u0065l" would be a second `model`). nullopt when none.
struct ambiguous_name {
  std::string name;  // as written, escapes not decoded
  bool escaped;      // false: a duplicate
};
std::optional<ambiguous_name> ambiguous_member(const json_object_scan& scan);

// Whether `text` is one JSON document by the rules of nlohmann::json::accept (a UTF-8 byte
// order mark first is allowed), in one pass with no per-token buffer, with one deliberate
// difference: nlohmann's lexer takes a NUL byte after the value as the end of the input and
// ignores what follows, which would let bytes the gateway never read travel upstream; here
// nothing but whitespace may follow the value. Iterative: nesting depth is bounded by memory
// only, as nlohmann's parser's is.
bool json_valid(std::string_view text);

// Walking JSON text that was validated first, by byte offsets; nothing is decoded or copied.
namespace json_cursor {

inline bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline std::size_t skip_ws(std::string_view t, std::size_t i) {
  while (i < t.size() && is_ws(t[i])) ++i;
  return i;
}

// i at an opening quote -> one past the closing quote (valid JSON assumed). memchr finds the
// candidate quotes; one preceded by an odd run of backslashes is escaped.
inline std::size_t skip_string(std::string_view t, std::size_t i) {
  const std::size_t open = i;
  for (++i; i < t.size();) {
    const void* q = std::memchr(t.data() + i, '"', t.size() - i);
    if (!q) return t.size();
    const std::size_t k = static_cast<std::size_t>(static_cast<const char*>(q) - t.data());
    std::size_t b = k;
    while (b > open + 1 && t[b - 1] == '\\') --b;
    if ((k - b) % 2 == 0) return k + 1;
    i = k + 1;
  }
  return t.size();
}

// i at a value's first byte -> one past its last byte.
inline std::size_t skip_value(std::string_view t, std::size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    for (; i < t.size(); ++i) {
      const char c = t[i];
      if (c == '"')
        i = skip_string(t, i) - 1;
      else if (c == '{' || c == '[')
        ++depth;
      else if ((c == '}' || c == ']') && --depth == 0)
        return i + 1;
    }
    return t.size();
  }
  while (i < t.size() && !is_ws(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;
  return i;
}

// Calls f(begin) for each element of the array whose '[' is at t[i]; f reads the element and
// returns one past its end, so each byte is walked once.
template <class F>
void for_each_element(std::string_view t, std::size_t i, F&& f) {
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] != ']') {
    const std::size_t end = f(i);
    i = skip_ws(t, end);
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
}

// Calls f(key, value_begin, value_end) for each member of the object whose '{' is at t[i]; the
// key is raw (escapes not decoded), as json_scan reports it. Returns one past the '}'.
template <class F>
std::size_t for_each_member(std::string_view t, std::size_t i, F&& f) {
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    const std::size_t key_end = skip_string(t, i);
    const std::string_view key = t.substr(i + 1, key_end - i - 2);
    i = skip_ws(t, key_end);
    if (i >= t.size() || t[i] != ':') return t.size();
    const std::size_t vb = skip_ws(t, i + 1);
    const std::size_t ve = skip_value(t, vb);
    f(key, vb, ve);
    i = skip_ws(t, ve);
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
  return i < t.size() ? i + 1 : t.size();
}

}  // namespace json_cursor

// True when `text` nests arrays and objects deeper than `max_depth`. Linear and iterative, so it
// can run before any parser or DOM walk that recurses; string contents (and escapes) are skipped.
bool json_nesting_exceeds(std::string_view text, std::size_t max_depth);

// The nesting every DOM-building parser in Meridian accepts: generous for tool schemas (OpenAI
// caps structured outputs far lower), shallow enough that no recursive JSON code can exhaust a
// coroutine's stack.
constexpr std::size_t k_max_json_depth = 128;

// Writes `s` as a JSON string literal (quotes included), escaping as RFC 8259 requires; a byte
// that is not part of valid UTF-8 is written as \ufffd, so the result is valid JSON whatever `s`
// holds (an upstream's error text, a client's header).
void append_json_string(std::string& out, std::string_view s);

}  // namespace meridian::core
