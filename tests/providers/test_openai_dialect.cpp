// The OpenAI dialect object: pass-through encode/decode and the stream decoder.
#include <doctest/doctest.h>

#include "providers/openai.hpp"
#include "providers/openai_dialect.hpp"

using namespace meridian::providers;

TEST_CASE("openai dialect: encode rewrites only the model and targets /chat/completions") {
  auto d = make_openai_dialect();
  std::string body = R"({"model":"p/m","messages":[{"role":"user","content":"x"}],"extra":1})";
  auto req = std::get<chat_request>(parse_chat_request(body));
  auto up = std::get<upstream_request>(d->encode_chat(body, req, "m"));
  CHECK(up.path == "/chat/completions");
  CHECK(up.headers.empty());
  CHECK(up.body == R"({"model":"m","messages":[{"role":"user","content":"x"}],"extra":1})");
}

TEST_CASE("openai dialect: decode passes the body through and reads usage") {
  auto d = make_openai_dialect();
  std::string body = R"({"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}})";
  auto r = std::get<decoded_chat>(d->decode_chat(body, "m"));
  CHECK(r.body == body);
  REQUIRE(r.tokens);
  CHECK(r.tokens->input == 5);
  CHECK(std::holds_alternative<decode_error>(d->decode_chat("not json", "m")));
}

TEST_CASE("openai dialect: the stream decoder forwards chunks and stops at DONE") {
  auto dec = make_openai_dialect()->stream("m");
  std::vector<std::string> out;
  CHECK(dec->on_event({"", R"({"choices":[{"delta":{"content":"hi"}}]})", ""}, out));
  CHECK(dec->on_event(
      {"", R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}})", ""}, out));
  CHECK_FALSE(dec->complete());
  CHECK(dec->on_event({"", "[DONE]", ""}, out));
  CHECK(dec->complete());
  REQUIRE(out.size() == 2);
  CHECK(out[0] == R"({"choices":[{"delta":{"content":"hi"}}]})");
  REQUIRE(dec->tokens());
  CHECK(dec->tokens()->input == 3);
}

TEST_CASE("openai dialect: an error inside a 200 stream fails the decoder") {
  auto dec = make_openai_dialect()->stream("m");
  std::vector<std::string> out;
  CHECK_FALSE(dec->on_event({"", R"({"error":{"message":"overloaded"}})", ""}, out));
  CHECK(dec->error().find("overloaded") != std::string::npos);
  CHECK(out.empty());
}
