// Token estimates for what an upstream did not count: the one place that turns relayed text
// into a number someone pays. The rule, measured against the fixtures' real usage in
// docs/accounting.md: one token per CJK character (Han, kana, Hangul, CJK punctuation and
// full-width forms) and one per four other characters, rounded up. Characters, not bytes: a
// Chinese character is three UTF-8 bytes and about one token; an English word is about five
// characters and one token and a bit.
#pragma once

#include <cstdint>
#include <string_view>

namespace meridian::stats {

struct text_tally {
  std::uint64_t cjk = 0;    // code points in the CJK ranges
  std::uint64_t other = 0;  // every other code point, whitespace and escapes' results included

  text_tally& operator+=(const text_tally& o) {
    cjk += o.cjk;
    other += o.other;
    return *this;
  }
  bool empty() const { return cjk == 0 && other == 0; }
};

// Counts the code points of UTF-8 text (a malformed byte counts as one other character).
void tally_utf8(std::string_view text, text_tally& t);
// Counts the characters a JSON string literal denotes; `raw` is what lies between its quotes,
// escapes as written ("\n" is one character, "\u4e2d" one CJK character, a surrogate pair one).
void tally_json_string(std::string_view raw, text_tally& t);

// The estimate: cjk + ceil(other / 4).
std::uint64_t estimate_tokens(const text_tally& t);

}  // namespace meridian::stats
