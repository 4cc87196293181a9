// Shared translation helpers: content text, data URLs, MIME guesses, stop reasons, usage shape.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "providers/openai.hpp"
#include "providers/translate.hpp"

using namespace meridian::providers;
using json = nlohmann::json;

TEST_CASE("translate: content text from strings, null and text parts") {
  CHECK(content_text(json("hello")) == "hello");
  CHECK(content_text(json()) == "");
  CHECK(content_text(json::parse(R"([{"type":"text","text":"a"},{"type":"text","text":"b"}])")) ==
        "ab");
  CHECK(content_text(json::parse(R"([{"type":"refusal","refusal":"no"}])")) == "no");
  CHECK_FALSE(content_text(json::parse(R"([{"type":"image_url","image_url":{"url":"x"}}])")));
  CHECK_FALSE(content_text(json::parse(R"([{"type":"text"}])")));
  CHECK_FALSE(content_text(json(3)));
}

TEST_CASE("translate: base64 data URLs are split, others are not data URLs") {
  auto d = parse_data_url("data:image/png;base64,iVBORw0KGgo=");
  REQUIRE(d);
  CHECK(d->media_type == "image/png");
  CHECK(d->data == "iVBORw0KGgo=");
  d = parse_data_url("data:image/jpeg;charset=binary;base64,/9j/4AAQ");
  REQUIRE(d);
  CHECK(d->media_type == "image/jpeg");
  CHECK(d->data == "/9j/4AAQ");
  CHECK_FALSE(parse_data_url("https://example.com/a.png"));
  CHECK_FALSE(parse_data_url("data:text/plain,hello%20world"));
  CHECK_FALSE(parse_data_url("data:;base64,AAAA"));
  CHECK_FALSE(parse_data_url("data:image/png;base64"));
}

TEST_CASE("translate: MIME types are guessed from the file extension") {
  CHECK(guess_image_mime("https://x.test/a.png") == "image/png");
  CHECK(guess_image_mime("https://x.test/a.PNG?w=10#frag") == "image/png");
  CHECK(guess_image_mime("https://x.test/a.webp") == "image/webp");
  CHECK(guess_image_mime("https://x.test/a.gif") == "image/gif");
  CHECK(guess_image_mime("https://x.test/doc.pdf") == "application/pdf");
  CHECK(guess_image_mime("https://x.test/image") == "image/jpeg");
  CHECK(guess_image_mime("https://x.test/png") == "image/jpeg");
}

TEST_CASE("translate: stop reasons map to OpenAI finish reasons") {
  CHECK(anthropic_finish_reason("end_turn") == "stop");
  CHECK(anthropic_finish_reason("stop_sequence") == "stop");
  CHECK(anthropic_finish_reason("max_tokens") == "length");
  CHECK(anthropic_finish_reason("tool_use") == "tool_calls");
  CHECK(anthropic_finish_reason("refusal") == "content_filter");
  CHECK(gemini_finish_reason("STOP") == "stop");
  CHECK(gemini_finish_reason("MAX_TOKENS") == "length");
  for (const char* r : {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"})
    CHECK(gemini_finish_reason(r) == "content_filter");
  CHECK(gemini_finish_reason("OTHER") == "stop");
}

TEST_CASE("translate: OpenAI usage keeps cached and reasoning tokens as subsets") {
  usage u;
  u.input = 10;
  u.cache_read = 20;
  u.cache_write = 5;
  u.output = 7;
  u.reasoning = 3;
  CHECK(openai_usage(u) == json::parse(R"({"prompt_tokens":35,"completion_tokens":10,
        "total_tokens":45,"prompt_tokens_details":{"cached_tokens":20},
        "completion_tokens_details":{"reasoning_tokens":3}})"));
  // Parsing the shape back as OpenAI usage gives the same read and reasoning buckets.
  usage back = parse_usage(openai_usage(u));
  CHECK(back.cache_read == 20);
  CHECK(back.reasoning == 3);
  CHECK(back.output == 7);
}

TEST_CASE("translate: token counts ignore absent, negative and non-integer members") {
  json j = json::parse(R"({"a":5,"b":-2,"c":"7","d":1.5})");
  CHECK(token_count(j, "a") == 5);
  CHECK(token_count(j, "b") == 0);
  CHECK(token_count(j, "c") == 0);
  CHECK(token_count(j, "d") == 0);
  CHECK(token_count(j, "e") == 0);
  CHECK(token_count(json::array(), "a") == 0);
}

TEST_CASE("translate: max tokens, stop sequences and tool call arguments") {
  using opt = std::optional<std::uint64_t>;
  auto max = max_output_tokens(json::parse(R"({"max_tokens":10,"max_completion_tokens":20})"));
  REQUIRE(std::holds_alternative<opt>(max));
  CHECK(std::get<opt>(max) == opt(20));
  max = max_output_tokens(json::parse(R"({"max_tokens":10,"max_completion_tokens":null})"));
  CHECK(std::get<opt>(max) == opt(10));
  CHECK_FALSE(std::get<opt>(max_output_tokens(json::object())));
  CHECK(std::holds_alternative<request_error>(
      max_output_tokens(json::parse(R"({"max_tokens":-1})"))));
  CHECK(std::holds_alternative<request_error>(
      max_output_tokens(json::parse(R"({"max_tokens":"5"})"))));

  CHECK(std::get<json>(stop_sequences(json::parse(R"({"stop":"x"})"))) == json::parse(R"(["x"])"));
  CHECK(std::get<json>(stop_sequences(json::parse(R"({"stop":null})"))).empty());
  CHECK(std::holds_alternative<request_error>(stop_sequences(json::parse(R"({"stop":["a",2]})"))));

  auto args =
      tool_call_arguments(json::parse(R"({"function":{"name":"f","arguments":"{\"a\":1}"}})"), "p");
  CHECK(std::get<json>(args) == json::parse(R"({"a":1})"));
  CHECK(std::get<json>(tool_call_arguments(
            json::parse(R"({"function":{"name":"f","arguments":""}})"), "p")) == json::object());
  auto bad = tool_call_arguments(json::parse(R"({"function":{"name":"f","arguments":"[1"}})"), "p");
  REQUIRE(std::holds_alternative<request_error>(bad));
  CHECK(std::get<request_error>(bad).param == "p");
}

TEST_CASE("translate: chunks carry one choice, usage chunks none") {
  json c = make_chunk("id1", 5, "m", {{"content", "hi"}});
  CHECK(c == json::parse(R"({"id":"id1","object":"chat.completion.chunk","created":5,"model":"m",
        "choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]})"));
  usage u;
  u.input = 1;
  u.output = 2;
  json uc = make_usage_chunk("id1", 5, "m", u);
  CHECK(uc["choices"] == json::array());
  CHECK(uc["usage"]["total_tokens"] == 3);
  CHECK(unix_now() > 1700000000);
}
