// libFuzzer target: everything that reads another party's wire format. The first byte picks
// the reader; the rest is its input (an upstream stream or body, or an inbound Anthropic call).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "providers/anthropic_inbound.hpp"
#include "providers/dialect.hpp"
#include "providers/openai.hpp"
#include "providers/sse.hpp"

namespace {

namespace pv = meridian::providers;
using meridian::config::dialect_kind;

// An upstream SSE stream through a dialect's decoder, as the streaming relay drives it.
void decode_stream(dialect_kind kind, std::string_view bytes) {
  auto decoder = pv::dialect_for(kind).stream("upstream-model");
  pv::sse_parser parser;
  parser.feed(bytes);
  std::vector<std::string> chunks;
  pv::sse_event ev;
  while (parser.next(ev)) {
    if (!decoder->on_event(ev, chunks)) {
      (void)decoder->error();
      break;
    }
  }
  (void)decoder->complete();
  (void)decoder->tokens();
  // The relay reads usage out of every chunk it forwards and re-encodes for /v1/messages.
  pv::anthropic_stream_encoder enc("client-model");
  std::vector<pv::sse_event> out;
  for (const auto& c : chunks) {
    (void)pv::usage_in_chunk(c);
    enc.on_chunk(c, out);
  }
  enc.finish(decoder->tokens(), out);
}

// A whole upstream body; a decoded answer must be a body the gateway can account and annotate.
void decode_whole(dialect_kind kind, std::string_view bytes) {
  auto r = pv::dialect_for(kind).decode_chat(bytes, "upstream-model");
  if (const auto* ok = std::get_if<pv::decoded_chat>(&r)) {
    auto info = pv::read_chat_response(ok->body);
    if (!info.valid) std::abort();
    (void)pv::annotate_chat_body(ok->body, "provider", 0.5);
    (void)pv::openai_response_to_anthropic(ok->body, "client-model", ok->tokens);
  }
}

// An inbound /v1/messages body; a translation must be a request the canonical path accepts.
void inbound_request(std::string_view bytes) {
  (void)pv::estimate_tokens(bytes);
  auto r = pv::anthropic_request_to_openai(bytes);
  if (const auto* t = std::get_if<pv::anthropic_translation>(&r)) {
    if (!std::holds_alternative<pv::chat_request>(pv::parse_chat_request(t->chat_body)))
      std::abort();
  }
}

// Canonical chunks (one per line) re-encoded as an Anthropic event stream, cut short or failed.
void encode_stream(std::string_view bytes, bool fail) {
  pv::anthropic_stream_encoder enc("client-model");
  std::vector<pv::sse_event> out;
  std::size_t at = 0;
  while (at <= bytes.size()) {
    std::size_t nl = bytes.find('\n', at);
    if (nl == std::string_view::npos) nl = bytes.size();
    enc.on_chunk(bytes.substr(at, nl - at), out);
    at = nl + 1;
  }
  if (fail)
    enc.fail("upstream failed", out);
  else
    enc.finish(std::nullopt, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 9) {
    case 0:
      decode_stream(dialect_kind::anthropic, bytes);
      break;
    case 1:
      decode_stream(dialect_kind::gemini, bytes);
      break;
    case 2:
      decode_stream(dialect_kind::openai, bytes);
      break;
    case 3:
      decode_whole(dialect_kind::anthropic, bytes);
      break;
    case 4:
      decode_whole(dialect_kind::gemini, bytes);
      break;
    case 5:
      decode_whole(dialect_kind::openai, bytes);
      break;
    case 6:
      inbound_request(bytes);
      break;
    case 7:  // an OpenAI-dialect answer as the gateway relays it, to either API
      (void)pv::openai_response_to_anthropic(bytes, "client-model");
      if (pv::read_chat_response(bytes).valid) (void)pv::annotate_chat_body(bytes, "p", 0.25);
      break;
    case 8:
      encode_stream(bytes, bytes.size() % 2 == 1);
      break;
  }
  return 0;
}
