// stream_pipeline: upstream bytes in, the client's bytes out — usage costed, text tallied, the
// output ceiling enforced, each client API framed — with no socket. Fed whole and byte by byte.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/stream_pipeline.hpp"

using namespace meridian;
using namespace meridian::providers;
using json = nlohmann::json;

namespace {

model_info priced(std::string id) {
  model_info m;
  m.id = std::move(id);
  m.input = 1.0;  // USD per million
  m.output = 2.0;
  return m;
}

std::string openai_chunk(const std::string& text) {
  return "data: " +
         json{{"object", "chat.completion.chunk"},
              {"choices", {{{"index", 0}, {"delta", {{"content", text}}}}}}}
             .dump() +
         "\n\n";
}

const std::string k_usage =
    "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14}}\n\n";

std::string openai_stream() {
  return openai_chunk("Hello") + openai_chunk(" world") + k_usage + "data: [DONE]\n\n";
}

// Everything the pipeline hands out for `upstream`, fed in pieces of `step` bytes.
std::vector<std::string> run(stream_pipeline& p, const std::string& upstream, std::size_t step) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < upstream.size() && p.running(); i += step) {
    REQUIRE(p.feed(std::string_view(upstream).substr(i, step)));
    while (auto w = p.next()) out.emplace_back(*w);
  }
  return out;
}

std::string read_fixture(const std::string& path) {
  std::ifstream f(std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/" + path, std::ios::binary);
  REQUIRE(f.good());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("stream pipeline: OpenAI to an OpenAI client, usage gains its cost, fed any way") {
  const model_info m = priced("gpt-x");
  for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
    CAPTURE(step);
    stream_pipeline p(dialect_for(config::dialect_kind::openai), m, core::api_shape::openai,
                      "gpt-x", std::nullopt);
    auto out = run(p, openai_stream(), step);
    REQUIRE(out.size() == 3);  // two text chunks and the usage chunk; [DONE] is the gateway's
    CHECK(out[0] == openai_chunk("Hello"));
    CHECK(out[1] == openai_chunk(" world"));
    const auto usage = json::parse(out[2].substr(6))["usage"];
    CHECK(usage["cost"].get<double>() == doctest::Approx((10 * 1.0 + 4 * 2.0) / 1e6));
    CHECK(p.complete());
    CHECK_FALSE(p.running());
    CHECK(p.stopped() == stream_pipeline::stop::none);
    REQUIRE(p.tokens());
    CHECK(p.tokens()->completion_total() == 4);
    CHECK(p.relayed_chunks() == 3);
    CHECK(p.relayed().other == std::string("Hello world").size());
    CHECK(p.finish(*p.tokens(), {"prov", 0.0, false}) == "data: [DONE]\n\n");
  }
}

TEST_CASE("stream pipeline: an Anthropic client gets Anthropic events ending in message_stop") {
  const model_info m = priced("gpt-x");
  stream_pipeline p(dialect_for(config::dialect_kind::openai), m, core::api_shape::anthropic,
                    "claude-asked", std::nullopt);
  auto out = run(p, openai_stream(), 5);
  std::string all;
  for (const auto& w : out) all += w;
  CHECK(all.find("event: message_start") != std::string::npos);
  CHECK(all.find("claude-asked") != std::string::npos);
  CHECK(all.find("\"text\":\"Hello\"") != std::string::npos);
  const std::string& end = p.finish(*p.tokens(), {"prov", 0.5, false});
  CHECK(end.find("event: message_stop") != std::string::npos);
  CHECK(end.find("\"provider\":\"prov\"") != std::string::npos);
}

TEST_CASE("stream pipeline: Anthropic upstream to an OpenAI client, from the fixture") {
  const model_info m = priced("claude-sonnet-4-5");
  stream_pipeline p(dialect_for(config::dialect_kind::anthropic), m, core::api_shape::openai,
                    "claude-sonnet-4-5", std::nullopt);
  auto out = run(p, read_fixture("anthropic/stream_text_cache.sse"), 3);
  REQUIRE_FALSE(out.empty());
  for (const auto& w : out) CHECK(w.rfind("data: {", 0) == 0);
  CHECK(p.complete());
  REQUIRE(p.tokens());
  CHECK(p.tokens()->completion_total() > 0);
  CHECK_FALSE(p.relayed().empty());
}

TEST_CASE("stream pipeline: the chunk that crosses the output ceiling is the last one out") {
  const model_info m = priced("gpt-x");
  stream_pipeline p(dialect_for(config::dialect_kind::openai), m, core::api_shape::openai, "gpt-x",
                    std::uint64_t{3});
  std::string endless;
  for (int i = 0; i < 50; ++i) endless += openai_chunk("abcd");  // one estimated token each
  auto out = run(p, endless, 1 << 20);
  CHECK(out.size() == 4);  // 4 tokens > 3: the fourth chunk goes out, nothing after it
  CHECK(p.stopped() == stream_pipeline::stop::output_limit);
  CHECK_FALSE(p.running());
  CHECK_FALSE(p.next());
  const std::string& fail = p.fail("Provider 'p' sent too much", "output_limit_exceeded");
  CHECK(json::parse(fail.substr(6))["error"]["code"] == "output_limit_exceeded");
}

TEST_CASE("stream pipeline: an upstream error event stops it after that event's chunks") {
  const model_info m = priced("claude-sonnet-4-5");
  stream_pipeline p(dialect_for(config::dialect_kind::anthropic), m, core::api_shape::openai,
                    "claude-sonnet-4-5", std::nullopt);
  run(p, read_fixture("anthropic/stream_overloaded.sse"), 11);
  CHECK(p.stopped() == stream_pipeline::stop::upstream_error);
  CHECK_FALSE(p.complete());
  CHECK_FALSE(p.decoder_error().empty());
}

TEST_CASE("stream pipeline: an event over the SSE bound stops it and says so") {
  const model_info m = priced("gpt-x");
  stream_pipeline p(dialect_for(config::dialect_kind::openai), m, core::api_shape::openai, "gpt-x",
                    std::nullopt);
  const std::string huge = "data: " + std::string((4u << 20) + 16, 'x');
  CHECK_FALSE(p.feed(huge));
  CHECK(p.stopped() == stream_pipeline::stop::event_too_large);
  CHECK_FALSE(p.running());
  CHECK_FALSE(p.next());
}

TEST_CASE("stream pipeline: a chunk with nothing to say to an Anthropic client is still counted") {
  const model_info m = priced("gpt-x");
  stream_pipeline p(dialect_for(config::dialect_kind::openai), m, core::api_shape::anthropic,
                    "claude-asked", std::nullopt);
  const std::string role_only =
      "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"role\":\"assistant\"}}]}\n\n";
  REQUIRE(p.feed(role_only + role_only));
  std::size_t handed = 0;
  while (p.next()) ++handed;
  CHECK(handed == 2);
  CHECK(p.relayed_chunks() == 2);
}

TEST_CASE("stream pipeline: an Anthropic client on an Anthropic backend gets the upstream's events") {
  // The pass-through lane: thinking with its signature, every event as the upstream wrote it;
  // only the message_delta gains the gateway's provider and cost. Usage and the tally still work.
  const model_info m = priced("claude-sonnet-4-5");
  const std::string upstream = read_fixture("anthropic/stream_thinking_tool_use.sse");
  for (std::size_t step : {upstream.size(), std::size_t{7}}) {
    CAPTURE(step);
    stream_pipeline p(dialect_for(config::dialect_kind::anthropic), m, core::api_shape::anthropic,
                      "claude-sonnet-4-5", std::nullopt, nullptr, "claude");
    CHECK(p.passes_through());
    std::string got;
    for (const auto& w : run(p, upstream, step)) got += w;
    CHECK(p.complete());
    REQUIRE(p.tokens());
    CHECK(p.tokens()->input == 50);
    CHECK_FALSE(p.relayed().empty());
    CHECK(p.finish(*p.tokens(), answer_notes{"claude", 0.5, false}).empty());

    // Parsed back, the events are the upstream's, in order, with one annotation.
    sse_parser want_parser, got_parser;
    REQUIRE(want_parser.feed(upstream));
    REQUIRE(got_parser.feed(got));
    sse_event want_ev, got_ev;
    int events = 0;
    while (want_parser.next(want_ev)) {
      REQUIRE(got_parser.next(got_ev));
      ++events;
      CHECK(got_ev.event == want_ev.event);
      if (want_ev.event != "message_delta") {
        CHECK(got_ev.data == want_ev.data);  // byte for byte
        continue;
      }
      json w = json::parse(want_ev.data), g = json::parse(got_ev.data);
      CHECK(g["provider"] == "claude");
      CHECK(g["usage"]["cost"].get<double>() == doctest::Approx(cost_usd(*p.tokens(), m)));
      g.erase("provider");
      g["usage"].erase("cost");
      CHECK(g == w);
    }
    CHECK_FALSE(got_parser.next(got_ev));
    CHECK(events > 10);
    CHECK(got.find("signature_delta") != std::string::npos);
  }
}

TEST_CASE("stream pipeline: a pass-through upstream's error event is not relayed as it was") {
  // Its words could carry what the client must not see; the gateway's fail() ends the stream.
  const model_info m = priced("claude-sonnet-4-5");
  stream_pipeline p(dialect_for(config::dialect_kind::anthropic), m, core::api_shape::anthropic,
                    "claude-sonnet-4-5", std::nullopt, nullptr, "claude");
  auto out = run(p, read_fixture("anthropic/stream_overloaded.sse"), 5);
  for (const auto& w : out) CHECK(w.find("\"error\"") == std::string::npos);
  CHECK(p.stopped() == stream_pipeline::stop::upstream_error);
  CHECK(p.fail("Provider 'claude' failed", "upstream_error").find("event: error") == 0);
}
