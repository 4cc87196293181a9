// The SSE parser fed whole, byte by byte and in random splits must yield the same events.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "providers/sse.hpp"

using meridian::providers::sse_event;
using meridian::providers::sse_parser;

namespace {

std::vector<sse_event> drain(sse_parser& p) {
  std::vector<sse_event> out;
  sse_event ev;
  while (p.next(ev)) out.push_back(ev);
  return out;
}

const std::string k_stream =
    ": keep-alive comment\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "event: message_start\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "data: line one\r"
    "data: line two\r\r"
    "id: 7\n"
    "data:no-space\n"
    "retry: 100\n\n"
    "data: [DONE]\n\n";

void check_events(const std::vector<sse_event>& evs) {
  REQUIRE(evs.size() == 5);
  CHECK(evs[0].data == R"({"choices":[{"delta":{"content":"Hel"}}]})");
  CHECK(evs[0].event.empty());
  CHECK(evs[1].event == "message_start");
  CHECK(evs[1].data == R"({"a":1})");
  CHECK(evs[2].data == "line one\nline two");
  CHECK(evs[3].data == "no-space");
  CHECK(evs[3].id == "7");
  CHECK(evs[4].data == "[DONE]");
}

}  // namespace

TEST_CASE("sse: a whole stream at once") {
  sse_parser p;
  REQUIRE(p.feed(k_stream));
  check_events(drain(p));
  CHECK_FALSE(p.partial());
}

TEST_CASE("sse: byte by byte") {
  sse_parser p;
  std::vector<sse_event> evs;
  for (char c : k_stream) {
    REQUIRE(p.feed(std::string_view(&c, 1)));
    for (auto& e : drain(p)) evs.push_back(e);
  }
  check_events(evs);
}

TEST_CASE("sse: random splits") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    sse_parser p;
    std::vector<sse_event> evs;
    std::size_t i = 0;
    while (i < k_stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(1, 17)(rng);
      REQUIRE(p.feed(std::string_view(k_stream).substr(i, n)));
      i += n;
      for (auto& e : drain(p)) evs.push_back(e);
    }
    check_events(evs);
  }
}

TEST_CASE("sse: an event larger than the bound fails the parser") {
  sse_parser p(64);
  CHECK_FALSE(p.feed("data: " + std::string(100, 'x') + "\n\n"));
  CHECK(p.failed());
  CHECK_FALSE(p.feed("data: ok\n\n"));
}

TEST_CASE("sse: an unfinished event is reported as partial") {
  sse_parser p;
  REQUIRE(p.feed("data: {\"half\""));
  CHECK(p.partial());
  sse_event ev;
  CHECK_FALSE(p.next(ev));
}

TEST_CASE("sse: to_wire round-trips") {
  sse_event ev{"ping", "a\nb", ""};
  CHECK(meridian::providers::to_wire(ev) == "event: ping\ndata: a\ndata: b\n\n");
  sse_parser p;
  REQUIRE(p.feed(meridian::providers::to_wire(ev)));
  auto evs = drain(p);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].event == "ping");
  CHECK(evs[0].data == "a\nb");
}
