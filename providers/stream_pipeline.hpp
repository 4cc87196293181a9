// One streamed answer from the upstream's bytes to the client's: SSE parse -> the dialect's
// decoder -> usage and cost annotation -> the relayed-text tally and the output ceiling ->
// framing for the client's API (OpenAI chunks as they are, Anthropic events, or Responses events).
// On a pass-through lane (providers/lanes.hpp: an Anthropic client on an Anthropic backend) the
// decoder still reads every event — usage, the text tally and the ceiling work as on any lane —
// but the client gets the upstream's own events, the final message_delta annotated with the
// gateway's `provider` and `usage.cost`.
// Sans-I/O: the gateway's relay coroutine only reads bytes in and writes what this hands out, so
// every rule of a stream is unit-tested without a socket
// (tests/providers/test_stream_pipeline.cpp).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/api_error.hpp"
#include "providers/anthropic_inbound.hpp"
#include "providers/catalog.hpp"
#include "providers/dialect.hpp"
#include "providers/gemini_inbound.hpp"
#include "providers/responses_inbound.hpp"
#include "providers/sse.hpp"
#include "providers/usage.hpp"
#include "stats/estimate.hpp"

namespace meridian::providers {

class stream_pipeline {
 public:
  // Why the pipeline stopped before the upstream finished: the upstream reported an error in
  // the stream, one event was larger than the SSE bound, or the relayed output passed the
  // ceiling (an upstream ignoring max_tokens).
  enum class stop { none, upstream_error, event_too_large, output_limit };

  // `client_model` is the name the client asked for (what an Anthropic or Responses client is
  // shown); `output_ceiling` is in estimated output tokens, none for no ceiling; `responses`
  // is the request's translation when the client speaks the Responses API (it must outlive
  // the pipeline).
  // `provider` names the backend in a pass-through lane's annotations.
  stream_pipeline(const dialect& d, const model_info& model, core::api_shape client,
                  std::string client_model, std::optional<std::uint64_t> output_ceiling,
                  const responses_translation* responses = nullptr, std::string provider = {});

  // The gateway's estimate of the request's input tokens, for an Anthropic client's
  // message_start on a translation lane (anthropic_stream_encoder::expect_input).
  void expect_input(std::uint64_t tokens) {
    if (anthropic_) anthropic_->expect_input(tokens);
  }

  // An OpenAI chat client that did not ask for stream usage: the usage-only chunk the gateway
  // asked the upstream for (choices: []) is read for accounting but not relayed.
  void hide_usage_chunk() { hide_usage_ = true; }

  // Upstream body bytes, in order. False once an event exceeds the SSE bound.
  bool feed(std::string_view bytes);

  // The next relayed chunk's bytes for the client, or nullopt when no more can be made of what
  // was fed (or the pipeline stopped). The bytes may be empty: the chunk was relayed (tallied
  // and counted) but the client's API has nothing to say for it yet. The chunk that crosses the
  // output ceiling is the last one handed out.
  std::optional<std::string_view> next();

  // Whether to keep reading the upstream: not stopped and the decoder has not seen the end.
  bool running() const { return stopped_ == stop::none && !decoder_->complete(); }
  stop stopped() const { return stopped_; }
  bool complete() const { return decoder_->complete(); }
  std::optional<usage> tokens() const { return decoder_->tokens(); }
  std::string decoder_error() const { return decoder_->error(); }
  // Generated text relayed so far (what an estimate of output tokens is made from).
  const stats::text_tally& relayed() const { return relayed_; }
  std::uint64_t relayed_chunks() const { return relayed_chunks_; }
  std::optional<std::uint64_t> output_ceiling() const { return ceiling_; }

  // Whether the client gets the upstream's own events (a pass-through lane).
  bool passes_through() const { return pass_through_; }

  // The end of a complete stream: "data: [DONE]" or Anthropic's message_delta and
  // message_stop carrying `tokens` and the gateway's notes; empty on a pass-through lane, where
  // the upstream's own end was relayed.
  const std::string& finish(const usage& tokens, const answer_notes& notes);
  // An in-band error event that ends the stream: OpenAI's error object in a data line, or
  // Anthropic's error event.
  const std::string& fail(const std::string& message, std::string_view code);
  // For a Responses client, once complete: the final Response object (the gateway's, or on a
  // pass-through lane the upstream's with `provider` and `usage.cost`); empty otherwise.
  const std::string& final_response() const {
    static const std::string none;
    if (native_responses_) return native_final_;
    return responses_ ? responses_->final_response() : none;
  }

  // A Responses client on a backend that serves /responses itself: the upstream's events are
  // relayed as they are (responses_event_decoder reads them), the final one annotated. Call
  // before the first feed().
  void pass_responses_through();

 private:
  const std::string& frame(std::string_view chunk);
  std::optional<std::string_view> next_native();
  const std::string& flatten();

  std::unique_ptr<stream_decoder> decoder_;
  const model_info& model_;
  std::optional<anthropic_stream_encoder> anthropic_;  // set for an Anthropic client
  std::optional<responses_stream_encoder> responses_;  // set for a Responses client
  std::optional<gemini_stream_encoder> gemini_;        // set for a Gemini client
  std::optional<std::uint64_t> ceiling_;
  sse_parser sse_;
  sse_event event_;
  std::vector<std::string> decoded_;  // the canonical chunks of the last event
  std::size_t next_chunk_ = 0;        // the first of them not handed out yet
  std::vector<sse_event> events_;     // Anthropic events for one chunk
  std::string chunk_, wire_;
  stats::text_tally relayed_;
  std::uint64_t relayed_chunks_ = 0;
  stop stopped_ = stop::none;
  bool decoder_failed_ = false;  // this event's chunks go out, then the pipeline stops
  bool pass_through_ = false;
  bool hide_usage_ = false;
  responses_event_decoder* native_responses_ = nullptr;  // owned by decoder_
  std::string native_final_;
  std::string provider_;
};

}  // namespace meridian::providers
