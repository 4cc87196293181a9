// Reads the routing-relevant fields of an OpenAI chat body, including OpenRouter's `models`
// and `provider` extensions; unknown provider keys are ignored as OpenRouter adds them often.
#include "policies/facts.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstring>

namespace meridian::policies {

namespace {

using json = nlohmann::json;

// More fallbacks than this is a client bug, and each one costs a catalog scan.
constexpr std::size_t k_max_fallback_models = 16;

struct reader {
  std::optional<facts_error> error;

  bool fail(std::string param, std::string message) {
    if (!error) error = facts_error{std::move(param), std::move(message)};
    return false;
  }

  bool strings(const json& v, const std::string& param, std::vector<std::string>& out) {
    if (!v.is_array()) return fail(param, "'" + param + "' must be an array of strings");
    for (const auto& item : v) {
      if (!item.is_string() || item.get_ref<const std::string&>().empty())
        return fail(param, "'" + param + "' must contain only non-empty strings");
      out.push_back(item.get<std::string>());
    }
    return true;
  }

  bool number(const json& v, const std::string& param, std::optional<double>& out) {
    if (!v.is_number() || v.get<double>() < 0 || !std::isfinite(v.get<double>()))
      return fail(param, "'" + param + "' must be a non-negative number");
    out = v.get<double>();
    return true;
  }

  // OpenRouter accepts a number or percentile cutoffs {p50, p75, p90, p99}; p50 is used.
  bool percentile(const json& v, const std::string& param, std::optional<double>& out) {
    if (v.is_object()) {
      auto it = v.find("p50");
      return it == v.end() ? true : number(*it, param + ".p50", out);
    }
    return number(v, param, out);
  }

  bool provider(const json& v, provider_prefs& out) {
    if (!v.is_object()) return fail("provider", "'provider' must be an object");
    out.given = true;
    for (const auto& [key, value] : v.items()) {
      const std::string param = "provider." + key;
      if (key == "order" && !strings(value, param, out.order)) return false;
      if (key == "only" && !strings(value, param, out.only)) return false;
      if (key == "ignore" && !strings(value, param, out.ignore)) return false;
      if (key == "allow_fallbacks") {
        if (!value.is_boolean()) return fail(param, "'" + param + "' must be true or false");
        out.allow_fallbacks = value.get<bool>();
      }
      if (key == "sort") {
        const json& by = value.is_object() && value.contains("by") ? value["by"] : value;
        std::string text = by.is_string() ? by.get<std::string>() : "";
        if (text == "price")
          out.sort = sort_by::price;
        else if (text == "throughput")
          out.sort = sort_by::throughput;
        else if (text == "latency")
          out.sort = sort_by::latency;
        else
          return fail(param, "'" + param + "' must be one of price, throughput, latency");
      }
      if (key == "max_price") {
        if (!value.is_object()) return fail(param, "'" + param + "' must be an object");
        if (auto it = value.find("prompt");
            it != value.end() && !number(*it, param + ".prompt", out.max_prompt_price))
          return false;
        if (auto it = value.find("completion");
            it != value.end() && !number(*it, param + ".completion", out.max_completion_price))
          return false;
      }
      if (key == "preferred_max_latency" && !percentile(value, param, out.preferred_max_latency_s))
        return false;
      if (key == "preferred_min_throughput" &&
          !percentile(value, param, out.preferred_min_throughput))
        return false;
      if (key == "data_collection") {
        std::string text = value.is_string() ? value.get<std::string>() : "";
        if (text != "allow" && text != "deny")
          return fail(param, "'" + param + "' must be allow or deny");
        out.deny_data_collection = text == "deny";
      }
    }
    return true;
  }
};

}  // namespace

// The DOM-free reader. `body` is valid JSON whose top-level members are `scan`; only the
// small members whose rules are intricate (`models`, `provider`, odd numbers) are parsed into a
// DOM, so a long conversation costs one pass over its bytes and no allocation per message.
namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::size_t skip_ws(std::string_view t, std::size_t i) {
  while (i < t.size() && is_ws(t[i])) ++i;
  return i;
}

// i at an opening quote -> one past the closing quote (valid JSON assumed). memchr finds the
// candidate quotes; one preceded by an odd run of backslashes is escaped.
std::size_t skip_string(std::string_view t, std::size_t i) {
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
std::size_t skip_value(std::string_view t, std::size_t i) {
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

// An element that is not an object is skipped.
template <class F>
std::size_t members_or_skip(std::string_view t, std::size_t i, F&& f) {
  return t[i] == '{' ? for_each_member(t, i, f) : skip_value(t, i);
}

unsigned hex4(std::string_view s) {
  unsigned v = 0;
  for (char c : s.substr(0, 4))
    v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  return v;
}

// The UTF-8 length of a (valid) JSON string literal's decoded text; `lit` includes the quotes.
std::uint64_t decoded_length(std::string_view lit) {
  if (lit.find('\\') == std::string_view::npos) return lit.size() - 2;
  std::uint64_t n = 0;
  for (std::size_t i = 1; i + 1 < lit.size(); ++i) {
    if (lit[i] != '\\') {
      ++n;
      continue;
    }
    if (lit[++i] != 'u') {
      ++n;
      continue;
    }
    const unsigned cp = hex4(lit.substr(i + 1));
    i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low half follows
      n += 4;
      i += 6;
    } else {
      n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
    }
  }
  return n;
}

// A string literal's decoded text; the raw bytes when it has no escape.
std::string decode_string(std::string_view lit) {
  if (lit.find('\\') == std::string_view::npos) return std::string(lit.substr(1, lit.size() - 2));
  return json::parse(lit).get<std::string>();
}

bool is_string_value(std::string_view t, std::size_t b) {
  return b < t.size() && t[b] == '"';
}

// Whether a raw member key (escapes not decoded) names `want`, as a DOM parse would read it.
bool key_is(std::string_view raw, std::string_view want) {
  if (raw.find('\\') == std::string_view::npos) return raw == want;
  return decode_string("\"" + std::string(raw) + "\"") == want;
}

}  // namespace

std::variant<request_facts, facts_error> facts_from_openai_body(
    std::string_view body, const providers::json_object_scan& scan) {
  request_facts out;
  reader r;
  // A repeated member counts with its last value, as a DOM parse would keep it.
  auto last = [&](std::string_view key) -> const providers::json_member* {
    for (auto it = scan.members.rbegin(); it != scan.members.rend(); ++it)
      if (key_is(it->key, key)) return &*it;
    return nullptr;
  };
  auto value = [&](const providers::json_member& m) {
    return body.substr(m.value_begin, m.value_end - m.value_begin);
  };
  if (const auto* m = last("model")) {
    if (!is_string_value(body, m->value_begin))
      return facts_error{"model", "'model' must be a string"};
    out.model = decode_string(value(*m));
  }
  if (const auto* m = last("models")) {
    if (!r.strings(json::parse(value(*m)), "models", out.models)) return *r.error;
    if (out.models.size() > k_max_fallback_models)
      return facts_error{"models", "'models' lists more than " +
                                       std::to_string(k_max_fallback_models) + " models"};
  }
  if (const auto* m = last("provider"); m && !r.provider(json::parse(value(*m)), out.provider))
    return *r.error;
  // max_completion_tokens is the newer name; when both are sent it wins.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    const auto* m = last(key);
    if (!m) continue;
    const std::string_view v = value(*m);
    if (v == "null") continue;
    // Up to 18 digits is always a non-negative int64; anything else takes the DOM's rules.
    if (!v.empty() && v.size() <= 18 &&
        v.find_first_not_of("0123456789") == std::string_view::npos) {
      std::uint64_t n = 0;
      for (char c : v) n = n * 10 + static_cast<std::uint64_t>(c - '0');
      out.max_tokens = n;
      continue;
    }
    const json j = json::parse(v);
    if (!j.is_number_integer() || j.get<std::int64_t>() < 0)
      return facts_error{key, std::string("'") + key + "' must be a non-negative integer"};
    out.max_tokens = j.get<std::uint64_t>();
  }
  for (const char* key : {"tools", "functions"})
    if (const auto* m = last(key);
        m && body[m->value_begin] == '[' && body[skip_ws(body, m->value_begin + 1)] != ']')
      out.needs_tools = true;
  if (const auto* m = last("response_format"); m && body[m->value_begin] == '{') {
    std::optional<std::string_view> type;
    for_each_member(body, m->value_begin, [&](std::string_view key, std::size_t b, std::size_t e) {
      if (key_is(key, "type")) type = body.substr(b, e - b);
    });
    if (type && is_string_value(*type, 0)) {
      const std::string t = decode_string(*type);
      out.needs_json = t == "json_object" || t == "json_schema";
    }
  }
  std::uint64_t bytes = 0;
  if (const auto* m = last("messages"); m && body[m->value_begin] == '[') {
    for_each_element(body, m->value_begin, [&](std::size_t mb) {
      std::optional<std::pair<std::size_t, std::size_t>> content;
      const std::size_t end =
          members_or_skip(body, mb, [&](std::string_view key, std::size_t b, std::size_t e) {
            if (key_is(key, "content")) content.emplace(b, e);
          });
      if (!content) return end;
      const auto [cb, ce] = *content;
      if (body[cb] == '"') {
        bytes += decoded_length(body.substr(cb, ce - cb));
        return end;
      }
      if (body[cb] != '[') return end;
      for_each_element(body, cb, [&](std::size_t pb) {
        std::optional<std::string_view> type, text;
        const std::size_t part_end =
            members_or_skip(body, pb, [&](std::string_view key, std::size_t b, std::size_t e) {
              if (key_is(key, "type"))
                type = body.substr(b, e - b);
              else if (key_is(key, "text"))
                text = body.substr(b, e - b);
            });
        if (type && is_string_value(*type, 0)) {
          const std::string t = decode_string(*type);
          if (t == "image_url" || t == "input_image" || t == "image") out.needs_images = true;
        }
        if (text && is_string_value(*text, 0)) bytes += decoded_length(*text);
        return part_end;
      });
      return end;
    });
  }
  out.est_prompt_tokens = (bytes + 3) / 4;
  return out;
}

namespace {

// One past a valid string literal starting at t[i] (a '"'), or npos. The rules are
// nlohmann::json's: no control characters, known escapes only, \u surrogates in pairs, and
// UTF-8 as RFC 3629 allows it.
std::size_t valid_string(std::string_view t, std::size_t i) {
  const std::size_t n = t.size();
  auto byte = [&](std::size_t k) { return k < n ? static_cast<unsigned char>(t[k]) : 0u; };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return k < n && b >= lo && b <= hi;
  };
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
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(i + 1)) return std::string_view::npos;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const bool ok = c == 0xE0   ? cont(i + 1, 0xA0, 0xBF)
                      : c == 0xED ? cont(i + 1, 0x80, 0x9F)
                                  : cont(i + 1);
      if (!ok || !cont(i + 2)) return std::string_view::npos;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const bool ok = c == 0xF0   ? cont(i + 1, 0x90, 0xBF)
                      : c == 0xF4 ? cont(i + 1, 0x80, 0x8F)
                                  : cont(i + 1);
      if (!ok || !cont(i + 2) || !cont(i + 3)) return std::string_view::npos;
      i += 4;
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
bool valid_json(std::string_view t) {
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
      // nlohmann's lexer reads a NUL byte outside a string as the end of the input
      if (stack.empty()) return i == n || t[i] == '\0';
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

std::variant<request_facts, facts_error> facts_from_openai_body(std::string_view body) {
  if (!valid_json(body)) return facts_error{"", "the request body is not valid JSON"};
  if (static_cast<unsigned char>(body[0]) == 0xEF) body.remove_prefix(3);  // the byte order mark
  const std::size_t open = skip_ws(body, 0);
  if (body[open] != '{') return facts_error{"", "the request body must be a JSON object"};
  providers::json_object_scan scan{};
  scan.open = open;
  scan.close =
      for_each_member(body, open,
                      [&](std::string_view key, std::size_t b, std::size_t e) {
                        scan.members.push_back(
                            {key, static_cast<std::size_t>(key.data() - body.data()) - 1, b, e});
                      }) -
      1;
  return facts_from_openai_body(body, scan);
}

}  // namespace meridian::policies
