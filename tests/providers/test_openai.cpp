// OpenAI dialect: request validation, byte-preserving rewrite, usage normalisation.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "core/json_scan.hpp"
#include "providers/openai.hpp"

using namespace meridian::providers;
using meridian::core::append_json_string;
using meridian::core::scan_object;

namespace {

chat_request parse_ok(std::string_view body) {
  auto r = parse_chat_request(body);
  REQUIRE(std::holds_alternative<chat_request>(r));
  return std::get<chat_request>(r);
}

request_error parse_err(std::string_view body) {
  auto r = parse_chat_request(body);
  REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

}  // namespace

TEST_CASE("openai: request validation names the parameter") {
  CHECK(parse_err("{not json").message.find("not valid JSON") != std::string::npos);
  CHECK(parse_err("[1,2]").message.find("JSON object") != std::string::npos);
  CHECK(parse_err(R"({"messages":[{"role":"user","content":"x"}]})").param == "model");
  CHECK(parse_err(R"({"model":3,"messages":[{"role":"user","content":"x"}]})").param == "model");
  CHECK(parse_err(R"({"model":"m"})").param == "messages");
  CHECK(parse_err(R"({"model":"m","messages":[ ]})").param == "messages");
  CHECK(parse_err(R"({"model":"m","messages":{}})").param == "messages");
  CHECK(parse_err(R"({"model":"m","messages":[{}],"stream":"yes"})").param == "stream");
  auto r = parse_ok(
      R"({"model":"deepseek/deepseek-chat","messages":[{"role":"user","content":"hi"}],"stream":true})");
  CHECK(r.model == "deepseek/deepseek-chat");
  CHECK(r.stream);
}

TEST_CASE("openai: a body the gateway and the provider could read two ways is a 400") {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  // Routing read the last `model`, the rewrite edited the first: the provider served another.
  auto dup = parse_err(R"({"model":"x","model":"gpt-4o",)" + msgs + "}");
  CHECK(dup.param == "model");
  CHECK(dup.message.find("duplicate member 'model'") != std::string::npos);
  CHECK(parse_err(R"({"model":"x",)" + msgs + R"(,"n":1,"n":5})").param == "n");
  CHECK(parse_err(R"({"model":"x",)" + msgs + R"(,"stream":true,"stream":false})").param ==
        "stream");
  // Inside the members the gateway reads or rewrites.
  CHECK(
      parse_err(R"({"model":"x",)" + msgs +
                R"(,"stream":true,"stream_options":{"include_usage":true,"include_usage":false}})")
          .param == "stream_options.include_usage");
  CHECK(
      parse_err(R"({"model":"x",)" + msgs + R"(,"provider":{"only":["a"],"only":["b"]}})").param ==
      "provider.only");
  // An escaped name is the same member to a provider that decodes it.
  auto esc = parse_err(R"({"model":"x","mod\u0065l":"gpt-4o",)" + msgs + "}");
  CHECK(esc.param == "mod\\u0065l");
  CHECK(esc.message.find("escape sequence") != std::string::npos);
  CHECK(parse_err(R"({"model":"x",)" + msgs + R"(,"stre\u0061m":true})").param == "stre\\u0061m");
  // Duplicates deeper down (inside messages) are the message's business, not the gateway's.
  parse_ok(R"({"model":"x","messages":[{"role":"user","content":"a","content":"b"}]})");
  // Nothing may follow the JSON value, NUL bytes included (nlohmann stops reading at one).
  const std::string nul_junk =
      R"({"model":"x",)" + msgs + std::string("}\0", 2) + R"(,"model":"y")";
  CHECK(parse_err(nul_junk).message.find("nothing but whitespace") != std::string::npos);
  CHECK(parse_err(R"({"model":"x",)" + msgs + "} junk").message.find("not valid JSON") !=
        std::string::npos);
  parse_ok(R"({"model":"x",)" + msgs + "} \n\t ");
}

TEST_CASE("openai: n is a whole number from 1 to 128, and read once") {
  const std::string head = R"({"model":"x","messages":[{"role":"user","content":"x"}],"n":)";
  CHECK(parse_ok(head + "1}").n == 1);
  CHECK(parse_ok(head + "128}").n == 128);
  CHECK(parse_ok(head + "null}").n == 1);
  CHECK(parse_ok(R"({"model":"x","messages":[{"role":"user","content":"x"}]})").n == 1);
  for (const char* bad : {"0", "129", "1000", "-1", "2.5", "1e2", "\"3\"", "true"}) {
    INFO(bad);
    auto e = parse_err(head + bad + "}");
    CHECK(e.param == "n");
    CHECK(e.message.find("from 1 to 128") != std::string::npos);
  }
}

TEST_CASE("openai: only the model changes and every other byte is the client's") {
  const std::string body =
      "{ \"model\" : \"deepseek/deepseek-chat\",\n  "
      "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\\\"}\"}],"
      "\"x_custom\": {\"nested\": [1, 2.50, \"}\"]}, \"temperature\":0.70 }";
  auto r = parse_ok(body);
  std::string out = encode_chat_request(body, r, "deepseek-chat");
  std::string expected = body;
  expected.replace(expected.find("\"deepseek/deepseek-chat\""), 24, "\"deepseek-chat\"");
  CHECK(out == expected);
}

TEST_CASE("openai: OpenRouter's provider and models are read by the router, never sent") {
  const std::string body =
      R"({"provider":{"sort":"price"}, "model":"a","models":["x/y","z/w"],)"
      R"( "messages":[{"role":"user","content":"x"}], "stream":true, "temperature":0.50})";
  const std::string out = encode_chat_request(body, parse_ok(body), "b");
  CHECK(out == R"({"model":"b", "messages":[{"role":"user","content":"x"}], "stream":true, )"
               R"("temperature":0.50,"stream_options":{"include_usage":true}})");
}

TEST_CASE("openai: models without model names the model by its first entry, as OpenRouter's") {
  const std::string body = R"({"models":["x/y","z/w"],"messages":[{"role":"user","content":"x"}]})";
  auto r = parse_ok(body);
  CHECK(r.model == "x/y");
  CHECK(encode_chat_request(body, r, "y") == R"({"model":"y","messages":[{"role":"user","content":"x"}]})");
  auto empty = parse_chat_request(R"({"models":[],"messages":[{"role":"user","content":"x"}]})");
  REQUIRE(std::holds_alternative<request_error>(empty));
  CHECK(std::get<request_error>(empty).param == "models");
  auto neither = parse_chat_request(R"({"messages":[{"role":"user","content":"x"}]})");
  REQUIRE(std::holds_alternative<request_error>(neither));
  CHECK(std::get<request_error>(neither).param == "model");
}

TEST_CASE("openai: streams always ask for usage") {
  SUBCASE("no stream_options: added") {
    std::string body = R"({"model":"a","messages":[{"role":"user","content":"x"}],"stream":true})";
    std::string out = encode_chat_request(body, parse_ok(body), "b");
    auto j = nlohmann::json::parse(out);
    CHECK(j["stream_options"]["include_usage"] == true);
    CHECK(j["model"] == "b");
    CHECK(out.rfind(R"({"model":"b","messages":[{"role":"user","content":"x"}],"stream":true,)",
                    0) == 0);
  }
  SUBCASE("stream_options with other members: merged") {
    std::string body =
        R"({"model":"a","messages":[1],"stream":true,"stream_options":{"foo":1,"include_usage":false}})";
    auto j = nlohmann::json::parse(encode_chat_request(body, parse_ok(body), "b"));
    CHECK(j["stream_options"]["include_usage"] == true);
    CHECK(j["stream_options"]["foo"] == 1);
  }
  SUBCASE("already on: untouched") {
    std::string body =
        R"({"model":"b","messages":[1],"stream":true,"stream_options":{"include_usage":true}})";
    CHECK(encode_chat_request(body, parse_ok(body), "b") == body);
  }
  SUBCASE("not a stream: no stream_options") {
    std::string body = R"({"model":"a","messages":[1]})";
    CHECK(encode_chat_request(body, parse_ok(body), "b") == R"({"model":"b","messages":[1]})");
  }
}

TEST_CASE("openai: usage buckets are disjoint") {
  SUBCASE("OpenAI cached and reasoning tokens are subsets") {
    auto u = parse_usage(nlohmann::json::parse(
        R"({"prompt_tokens":100,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":20}})"));
    CHECK(u.input == 70);
    CHECK(u.cache_read == 30);
    CHECK(u.output == 30);
    CHECK(u.reasoning == 20);
    CHECK(u.prompt_total() == 100);
    CHECK(u.completion_total() == 50);
  }
  SUBCASE("DeepSeek cache hit tokens") {
    auto u = parse_usage(nlohmann::json::parse(
        R"({"prompt_tokens":64,"completion_tokens":5,"prompt_cache_hit_tokens":60,"prompt_cache_miss_tokens":4})"));
    CHECK(u.input == 4);
    CHECK(u.cache_read == 60);
    CHECK(u.output == 5);
  }
}

// The pass-through lane reads usage without a DOM; it must count what the DOM reading counts,
// whatever an upstream writes: repeated keys, escaped names, signs, fractions, overflow, nulls.
TEST_CASE("openai: usage read from text equals the DOM reading") {
  const std::vector<std::string> numbers = {"0",
                                            "7",
                                            "-3",
                                            "2.9",
                                            "1e2",
                                            "-0",
                                            "null",
                                            "\"5\"",
                                            "true",
                                            "[1]",
                                            "{}",
                                            "18446744073709551615",
                                            "18446744073709551616",
                                            "-9223372036854775809",
                                            "1.5E+3"};
  std::vector<std::string> bodies = {
      R"({})",
      R"({"prompt_tokens":10,"prompt_tokens":4,"completion_tokens":3})",
      R"({"prompt_tokens_details":{"cached_tokens":9},"prompt_tokens":20,"prompt_tokens_details":{"x":1}})",
      R"({"prompt_tokens":20,"prompt_cache_hit_tokens":null,"prompt_tokens_details":{"cached_tokens":9}})",
      R"({"prompt_tokens":20,"prompt_tokens_details":{"cached_tokens":9,"cached_tokens":30}})",
      R"({"prompt\u005ftokens":12,"completion_tokens":2})",
      R"({"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":4,"reasoning\u005Ftokens":1}})",
      R"({"prompt_tokens":1,"note":"a \"quoted\" prompt_tokens","completion_tokens":2})",
      R"( {"prompt_tokens" : 5 , "completion_tokens":[1,{"prompt_tokens":99}] } )",
      R"({"prompt_tokens_details":[{"cached_tokens":3}],"prompt_tokens":8})",
      R"([1,2])",
      R"("usage")",
  };
  for (const auto& n : numbers)
    for (const auto& m : numbers)
      bodies.push_back(R"({"prompt_tokens":)" + n + R"(,"completion_tokens":)" + m +
                       R"(,"prompt_tokens_details":{"cached_tokens":)" + m +
                       R"(},"completion_tokens_details":{"reasoning_tokens":)" + n + "}}");
  for (const auto& b : bodies) {
    CAPTURE(b);
    REQUIRE(meridian::core::json_valid(b));
    const auto dom = nlohmann::json::parse(b);
    const auto text = parse_usage_text(b);
    REQUIRE(text.has_value() == dom.is_object());
    if (!dom.is_object()) continue;
    const usage want = parse_usage(dom);
    CHECK(text->input == want.input);
    CHECK(text->cache_read == want.cache_read);
    CHECK(text->output == want.output);
    CHECK(text->reasoning == want.reasoning);
    CHECK(text->present);
  }
}

TEST_CASE("openai: a response gets its provider and cost and nothing else changes") {
  const std::string body =
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})";
  auto info = read_chat_response(body);
  REQUIRE(info.valid);
  REQUIRE(info.tokens);
  CHECK(info.tokens->input == 3);
  CHECK(info.tokens->output == 4);
  CHECK(
      annotate_chat_body(body, "deepseek", 0.25) ==
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"cost":0.25},"provider":"deepseek"})");
  CHECK(annotate_chat_body(R"({"id":"x"})", "p", 1.0) == R"({"id":"x","provider":"p"})");
  CHECK(annotate_chat_body("{}", "p", std::nullopt) == R"({"provider":"p"})");
  CHECK(annotate_usage_chunk(R"({"choices":[],"usage":{"prompt_tokens":1}})", 0.5) ==
        R"({"choices":[],"usage":{"prompt_tokens":1,"cost":0.5}})");
  CHECK_FALSE(read_chat_response("{\"id\":").valid);
  CHECK_FALSE(read_chat_response("{}").tokens);
}

TEST_CASE("openai: usage is read only from the chunk that carries it") {
  CHECK_FALSE(usage_in_chunk(R"({"choices":[{"delta":{"content":"hi"}}]})"));
  CHECK_FALSE(usage_in_chunk(R"({"choices":[],"usage":null})"));
  auto u = usage_in_chunk(
      R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}})");
  REQUIRE(u);
  CHECK(u->input == 9);
  CHECK(u->output == 2);
}

TEST_CASE("json_scan: strings with braces and escapes do not confuse the scanner") {
  std::string t = R"({"a":"}\"{","b":[{"c":"]"}],"d":null})";
  auto s = scan_object(t);
  REQUIRE(s);
  REQUIRE(s->members.size() == 3);
  CHECK(t.substr(s->members[1].value_begin, s->members[1].value_end - s->members[1].value_begin) ==
        R"([{"c":"]"}])");
  CHECK(t.substr(s->members[2].value_begin, s->members[2].value_end - s->members[2].value_begin) ==
        "null");
  std::string out;
  append_json_string(out, "a\"b\\\n\x01");
  CHECK(out == "\"a\\\"b\\\\\\n\\u0001\"");
}

TEST_CASE("openai: an answer without usage is told the estimate the ledger bills") {
  const std::string body = R"({"id":"x","choices":[{"index":0,"message":{"content":"hi"}}]})";
  usage est;
  est.input = 12;
  est.output = 5;
  auto j = nlohmann::json::parse(annotate_chat_body(body, "local", 0.0001, &est));
  CHECK(j["provider"] == "local");
  CHECK(j["usage"]["prompt_tokens"] == 12);
  CHECK(j["usage"]["completion_tokens"] == 5);
  CHECK(j["usage"]["total_tokens"] == 17);
  CHECK(j["usage"]["estimated"] == true);
  CHECK(j["usage"]["cost"].get<double>() == doctest::Approx(0.0001));
  // A body that has usage keeps its own, with only the cost added.
  const std::string with = R"({"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}})";
  auto k = nlohmann::json::parse(annotate_chat_body(with, "p", 0.5, &est));
  CHECK(k["usage"]["prompt_tokens"] == 1);
  CHECK_FALSE(k["usage"].contains("estimated"));
}

TEST_CASE("openai: the generated text of chunks and answers is found for estimates") {
  std::vector<std::string> seen;
  auto collect = [&](std::string_view raw) { seen.emplace_back(raw); };
  for_each_generated_text(
      R"({"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel\"lo","reasoning_content":"think"}}]})",
      collect);
  for_each_generated_text(
      R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]})",
      collect);
  for_each_generated_text(
      R"({"choices":[{"message":{"content":"whole","refusal":null}}],"usage":{"content":"no"}})",
      collect);
  CHECK(seen == std::vector<std::string>{"Hel\\\"lo", "think", "{\\\"a\\\":1}", "whole"});
}
