// Shared support for the dialect fixture tests: fixtures, encode/decode helpers and stream runs
// fed whole, byte by byte and in seeded random splits. Each test file defines target().
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/dialect.hpp"
#include "providers/openai.hpp"

using namespace meridian::providers;
using json = nlohmann::json;

namespace {

// The dialect under test, its fixture folder and the model names its tests use.
struct dialect_target {
  const dialect& d;
  std::string fixture_dir;
  std::string model;         // used for decoding and streams
  std::string encode_model;  // the default upstream model for encoding
};
const dialect_target& target();  // defined by each test file

std::string read_fixture(const std::string& name) {
  std::ifstream f(
      std::string(MERIDIAN_SOURCE_DIR) + "/tests/fixtures/" + target().fixture_dir + "/" + name,
      std::ios::binary);
  REQUIRE(f.good());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

upstream_request encode_ok(const std::string& body,
                           const std::string& model = target().encode_model) {
  auto parsed = parse_chat_request(body);
  REQUIRE(std::holds_alternative<chat_request>(parsed));
  auto r = target().d.encode_chat(body, std::get<chat_request>(parsed), model);
  REQUIRE(std::holds_alternative<upstream_request>(r));
  return std::get<upstream_request>(r);
}

request_error encode_err(const std::string& body) {
  auto parsed = parse_chat_request(body);
  REQUIRE(std::holds_alternative<chat_request>(parsed));
  auto r = target().d.encode_chat(body, std::get<chat_request>(parsed), target().encode_model);
  REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

json encoded_body(const std::string& body) {
  return json::parse(encode_ok(body).body);
}

struct stream_run {
  std::vector<std::string> chunks;
  bool failed = false;
  std::string error;
  bool complete = false;
  std::optional<usage> tokens;
};

// Feeds `wire` to a fresh parser and decoder in pieces ending at `cuts` (ascending).
stream_run run_stream(const std::string& wire, const std::vector<std::size_t>& cuts) {
  stream_run run;
  sse_parser parser;
  auto decoder = target().d.stream(target().model);
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    REQUIRE(parser.feed(std::string_view(wire).substr(at, cut - at)));
    at = cut;
    sse_event ev;
    while (!run.failed && parser.next(ev)) {
      if (!decoder->on_event(ev, run.chunks)) {
        run.failed = true;
        run.error = decoder->error();
      }
    }
  }
  run.complete = decoder->complete();
  run.tokens = decoder->tokens();
  return run;
}

// Whole, byte by byte and in seeded random splits: all must decode alike.
std::vector<std::vector<std::size_t>> splits(std::size_t size) {
  std::vector<std::vector<std::size_t>> out{{size}};
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i <= size; ++i) bytes.push_back(i);
  out.push_back(bytes);
  for (unsigned seed : {1u, 7u, 42u, 2024u}) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> step(1, 64);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0; at < size;) {
      at = std::min(size, at + step(rng));
      cuts.push_back(at);
    }
    out.push_back(cuts);
  }
  return out;
}

// Chunks without `created` (a clock reading), checked for the fields every chunk shares.
json normalised(const std::vector<std::string>& chunks, const std::string& id) {
  json out = json::array();
  for (const std::string& c : chunks) {
    json j = json::parse(c);
    CHECK(j["id"] == id);
    CHECK(j["object"] == "chat.completion.chunk");
    CHECK(j["model"] == target().model);
    CHECK(j["created"].is_number_integer());
    j.erase("id");
    j.erase("object");
    j.erase("model");
    j.erase("created");
    out.push_back(std::move(j));
  }
  return out;
}

stream_run run_all_splits(const std::string& fixture) {
  const std::string wire = read_fixture(fixture);
  stream_run first;
  bool have_first = false;
  for (const auto& cuts : splits(wire.size())) {
    stream_run run = run_stream(wire, cuts);
    if (!have_first) {
      first = run;
      have_first = true;
      continue;
    }
    REQUIRE(run.chunks.size() == first.chunks.size());
    for (std::size_t i = 0; i < run.chunks.size(); ++i) {
      json a = json::parse(run.chunks[i]), b = json::parse(first.chunks[i]);
      a.erase("created");
      b.erase("created");
      CHECK(a == b);
    }
    CHECK(run.failed == first.failed);
    CHECK(run.complete == first.complete);
  }
  return first;
}

json decode_ok(const std::string& body, std::optional<usage>& tokens) {
  auto r = target().d.decode_chat(body, target().model);
  REQUIRE(std::holds_alternative<decoded_chat>(r));
  tokens = std::get<decoded_chat>(r).tokens;
  json j = json::parse(std::get<decoded_chat>(r).body);
  CHECK(j["created"].is_number_integer());
  j.erase("created");
  return j;
}

}  // namespace
