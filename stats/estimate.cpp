// The token estimator: code points by class, then one documented rule.
#include "stats/estimate.hpp"

namespace meridian::stats {
namespace {

bool is_cjk(std::uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x11FF) ||  // Hangul Jamo
         (cp >= 0x2E80 && cp <= 0x9FFF) ||  // radicals, CJK punctuation, kana, Han (ext. A too)
         (cp >= 0xAC00 && cp <= 0xD7AF) ||  // Hangul syllables
         (cp >= 0xF900 && cp <= 0xFAFF) ||  // compatibility ideographs
         (cp >= 0xFF00 && cp <= 0xFFEF) ||  // full-width and half-width forms
         (cp >= 0x20000 && cp <= 0x3FFFF);  // Han extensions B and beyond
}

void count(std::uint32_t cp, text_tally& t) {
  if (is_cjk(cp))
    ++t.cjk;
  else
    ++t.other;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at text[i..i+4), or -1.
long hex4(std::string_view text, std::size_t i) {
  if (i + 4 > text.size()) return -1;
  long v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const int d = hex_value(text[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// The code point of the UTF-8 sequence at text[i] and its length (1 for a malformed byte).
std::uint32_t decode_utf8(std::string_view text, std::size_t i, std::size_t& len) {
  const auto b = static_cast<unsigned char>(text[i]);
  len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (len == 1 || i + len > text.size()) {
    len = 1;
    return b;
  }
  std::uint32_t cp = b & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(text[i + k]);
    if ((c & 0xC0) != 0x80) {
      len = 1;
      return b;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  return cp;
}

}  // namespace

void tally_utf8(std::string_view text, text_tally& t) {
  for (std::size_t i = 0, len = 0; i < text.size(); i += len) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      len = 1;
      ++t.other;
      continue;
    }
    count(decode_utf8(text, i, len), t);
  }
}

void tally_json_string(std::string_view raw, text_tally& t) {
  for (std::size_t i = 0, len = 0; i < raw.size(); i += len) {
    const char c = raw[i];
    if (c != '\\') {
      if (static_cast<unsigned char>(c) < 0x80) {
        len = 1;
        ++t.other;
      } else {
        count(decode_utf8(raw, i, len), t);
      }
      continue;
    }
    if (i + 1 >= raw.size()) {  // a lone backslash at the end: count it as written
      len = 1;
      ++t.other;
      continue;
    }
    if (raw[i + 1] != 'u') {  // \n, \t, \", \\ and the rest: one character
      len = 2;
      ++t.other;
      continue;
    }
    const long hi = hex4(raw, i + 2);
    if (hi < 0) {
      len = 2;
      ++t.other;
      continue;
    }
    len = 6;
    std::uint32_t cp = static_cast<std::uint32_t>(hi);
    if (hi >= 0xD800 && hi <= 0xDBFF && i + 12 <= raw.size() && raw[i + 6] == '\\' &&
        raw[i + 7] == 'u') {
      const long lo = hex4(raw, i + 8);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((static_cast<std::uint32_t>(hi) - 0xD800) << 10) +
             (static_cast<std::uint32_t>(lo) - 0xDC00);
        len = 12;
      }
    }
    count(cp, t);
  }
}

std::uint64_t estimate_tokens(const text_tally& t) {
  return t.cjk + (t.other + 3) / 4;
}

}  // namespace meridian::stats
