// The token estimator: characters by class, JSON escapes decoded, one documented rule.
#include <doctest/doctest.h>

#include "stats/estimate.hpp"

using namespace meridian::stats;

namespace {

text_tally utf8(std::string_view s) {
  text_tally t;
  tally_utf8(s, t);
  return t;
}

text_tally json(std::string_view s) {
  text_tally t;
  tally_json_string(s, t);
  return t;
}

}  // namespace

TEST_CASE("estimate: CJK characters count one token each, other characters one per four") {
  CHECK(estimate_tokens(utf8("")) == 0);
  CHECK(estimate_tokens(utf8("a")) == 1);
  CHECK(estimate_tokens(utf8("abcd")) == 1);
  CHECK(estimate_tokens(utf8("abcde")) == 2);
  auto zh = utf8("你好，世界");  // the full-width comma is CJK punctuation
  CHECK(zh.cjk == 5);
  CHECK(zh.other == 0);
  CHECK(estimate_tokens(zh) == 5);
  auto mixed = utf8("Hello 世界 こんにちは 안녕");
  CHECK(mixed.cjk == 2 + 5 + 2);
  CHECK(mixed.other == 8);  // "Hello" and three spaces
  auto emoji = utf8("é😀");  // two-byte and four-byte sequences are one character each
  CHECK(emoji.other == 2);
  CHECK(utf8("\xff\xfe").other == 2);  // malformed bytes count, never crash
}

TEST_CASE("estimate: a JSON string's escapes are the characters they denote") {
  CHECK(json(R"(line\nbreak)").other == 10);
  CHECK(json(R"(\"quoted\")").other == 8);
  auto zh = json(R"(\u4f60\u597d)");
  CHECK(zh.cjk == 2);
  CHECK(zh.other == 0);
  CHECK(json(R"(\ud83d\ude00)").other == 1);     // a surrogate pair is one character
  CHECK(json(R"(你好)").cjk == 2);                  // raw UTF-8 inside a JSON string
  CHECK(json(R"(bad\u12)").other == 6);  // a short escape is one character, then "12"; no crash
  CHECK(json("\\").other == 1);
}
