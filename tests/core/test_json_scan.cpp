// json_scan: the validator must accept exactly what nlohmann::json::accept accepts (it replaces
// it on the request and response paths), and the member scan must find every top-level member.
#include <doctest/doctest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "core/json_scan.hpp"

using meridian::core::ambiguous_member;
using meridian::core::json_valid;
using meridian::core::scan_object;

TEST_CASE("json_scan: nesting is counted exactly, outside strings only") {
  using meridian::core::json_nesting_exceeds;
  const std::string at_limit = std::string(128, '[') + std::string(128, ']');
  CHECK_FALSE(json_nesting_exceeds(at_limit, 128));
  CHECK(json_nesting_exceeds("[" + at_limit + "]", 128));
  CHECK_FALSE(json_nesting_exceeds(R"({"a":"[[[[[[\"[[[[","b":[{}]})", 3));
  CHECK(json_nesting_exceeds(R"({"a":[{"b":[]}]})", 3));
  CHECK_FALSE(
      json_nesting_exceeds("]]]]}}}" + std::string(3, '['), 3));  // closers never go below 0
}

TEST_CASE("json_scan: the validator agrees with nlohmann::json::accept on hand-picked cases") {
  const std::vector<std::string> cases = {"{}",
                                          "[]",
                                          "0",
                                          "-0",
                                          "1.5e10",
                                          "-1E-2",
                                          "01",
                                          "1.",
                                          ".5",
                                          "1e",
                                          "+1",
                                          "\"\"",
                                          "\"a\\u00e9\"",
                                          "\"\\ud83d\\ude00\"",
                                          "\"\\ud83d\"",
                                          "\"\\ude00\"",
                                          "\"\\x\"",
                                          "\"tab\there\"",
                                          "true",
                                          "tru",
                                          "null",
                                          "nul",
                                          "[1,]",
                                          "[,1]",
                                          "{\"a\":1,}",
                                          "{\"a\" 1}",
                                          "{1:2}",
                                          "[1 2]",
                                          "  {\"a\":[1,{\"b\":null}]}  ",
                                          "\xEF\xBB\xBF{}",
                                          "\xEF\xBB{}",
                                          "{}x",
                                          "{} {}",
                                          "\"\xC3\xA9\"",
                                          "\"\xC3\"",
                                          "\"\xE0\x80\x80\"",
                                          "\"\xED\xA0\x80\"",
                                          "\"\xF4\x90\x80\x80\"",
                                          "\"\xF0\x9F\x98\x80\"",
                                          "1e999999",
                                          "[[[[[]]]]]",
                                          "{\"a\":1}\0",
                                          "",
                                          " ",
                                          "[\"\\/\\b\\f\\n\\r\\t\\\\\\\"\"]"};
  for (const auto& c : cases) {
    INFO(c);
    CHECK(json_valid(c) == nlohmann::json::accept(c));
  }
}

TEST_CASE("json_scan: unlike nlohmann, nothing after a NUL byte is ignored") {
  const std::string with_nul("{\"a\":1}\0{\"b\":2}", 15);
  CHECK(nlohmann::json::accept(with_nul));  // the differential this guards against
  CHECK_FALSE(json_valid(with_nul));
  CHECK_FALSE(json_valid(std::string("{}\0", 3)));
  CHECK(json_valid("{} \r\n"));
}

TEST_CASE("json_scan: ambiguous_member finds duplicate and escaped names") {
  auto check = [](const std::string& text) { return ambiguous_member(*scan_object(text)); };
  CHECK_FALSE(check(R"({"a":1,"b":{"a":2}})"));
  auto dup = check(R"({"a":1,"b":2,"a":3})");
  REQUIRE(dup);
  CHECK(dup->name == "a");
  CHECK_FALSE(dup->escaped);
  auto esc = check(R"({"\u0061":1})");
  REQUIRE(esc);
  CHECK(esc->escaped);
}

TEST_CASE("json_scan: without_member removes one member and its comma, nothing else") {
  auto without = [](const std::string& text, const char* key) {
    const std::string out = meridian::core::without_member(text, *scan_object(text), key);
    INFO(text << " without " << key << " -> " << out);
    CHECK(json_valid(out));
    return out;
  };
  CHECK(without(R"({"a":1, "b":[2], "c":{"a":3}})", "a") == R"({"b":[2], "c":{"a":3}})");
  CHECK(without(R"({"a":1, "b":[2], "c":{"a":3}})", "b") == R"({"a":1, "c":{"a":3}})");
  CHECK(without(R"({"a":1, "b":[2], "c":{"a":3}})", "c") == R"({"a":1, "b":[2]})");
  CHECK(without(R"( { "only" : true } )", "only") == R"( {  } )");
  CHECK(without(R"({"a":1})", "x") == R"({"a":1})");
}

TEST_CASE("json_scan: the validator agrees with nlohmann::json::accept on 20,000 mutations") {
  const std::vector<std::string> seeds = {
      R"({"model":"auto","messages":[{"role":"user","content":"héllo \"there\" \u00e9"}],"stream":true,"max_tokens":16,"temperature":0.5})",
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1e2}})",
      R"([null,true,false,-12.5e-3,{"a":[[],{}]},"\ud83d\ude00"])",
      // long strings: the validator reads plain text eight bytes at a time
      R"({"content":"The quick brown fox jumps over the lazy dog; the quick brown fox jumps again","x":"0123456789abcdefghij\n\"klmnopqrstuvwxyz é 0123456789"})"};
  const std::string alphabet = "{}[]\":,.-+eE0123456789 \\/ubfnrtl\x01\x7f\xC3\xA9\xED\xF0\x80";
  std::mt19937_64 rng(42);
  int differences = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1);
          break;
        default:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    if (json_valid(s) != nlohmann::json::accept(s)) {
      ++differences;
      INFO("differs on: " << s);
      CHECK(false);
    }
  }
  CHECK(differences == 0);
}

// Every byte that ends the eight-byte fast path, at every offset of a long string, and the
// string cut short at every length: the answer is nlohmann's each time.
TEST_CASE("json_scan: the validator's fast path over plain text stops at every byte that matters") {
  const std::string plain = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
  const std::vector<std::string> specials = {"\"",   "\\",   "\\n",      "\\u00e9", "\x01", "\x1f",
                                             "\x7f", "\x80", "\xC3\xA9", "\xFF",    " ",    "~"};
  int differences = 0;
  for (std::size_t at = 0; at <= plain.size(); ++at)
    for (const auto& sp : specials) {
      const std::string doc = "[\"" + plain.substr(0, at) + sp + plain.substr(at) + "\"]";
      for (std::size_t cut : {doc.size(), doc.size() - 1, doc.size() - 2}) {
        const std::string d = doc.substr(0, cut);
        if (json_valid(d) != nlohmann::json::accept(d)) {
          ++differences;
          INFO("differs on: " << d);
          CHECK(false);
        }
      }
    }
  CHECK(differences == 0);
}

TEST_CASE("json_scan: scan_object finds every top-level member and nothing nested") {
  const std::string t = R"( {"a": 1, "b" : {"a": [1, "}"]}, "c\"d": "x", "e": []} )";
  auto scan = scan_object(t);
  REQUIRE(scan);
  REQUIRE(scan->members.size() == 4);
  CHECK(scan->members[0].key == "a");
  CHECK(t.substr(scan->members[1].value_begin,
                 scan->members[1].value_end - scan->members[1].value_begin) ==
        R"({"a": [1, "}"]})");
  CHECK(scan->members[2].key == R"(c\"d)");
  CHECK(t[scan->open] == '{');
  CHECK(t[scan->close] == '}');
  CHECK(scan->close == t.size() - 2);
  CHECK_FALSE(scan_object("[1]"));
  CHECK(scan_object("{}")->members.empty());
}
