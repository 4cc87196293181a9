// The stream pipeline: see stream_pipeline.hpp.
#include "providers/stream_pipeline.hpp"

#include <nlohmann/json.hpp>

#include "providers/lanes.hpp"
#include "providers/openai.hpp"

namespace meridian::providers {

namespace {

// A chunk with usage and no choices: the one stream_options.include_usage adds. Only chunks
// that mention usage are parsed.
bool usage_only(std::string_view chunk) {
  if (chunk.find("\"usage\"") == std::string_view::npos) return false;
  const auto j = nlohmann::json::parse(chunk, nullptr, false);
  if (!j.is_object() || !j.contains("usage") || !j["usage"].is_object()) return false;
  const auto c = j.find("choices");
  return c == j.end() || (c->is_array() && c->empty());
}

}  // namespace

stream_pipeline::stream_pipeline(const dialect& d, const model_info& model, core::api_shape client,
                                 std::string client_model,
                                 std::optional<std::uint64_t> output_ceiling,
                                 const responses_translation* responses, std::string provider)
    : decoder_(d.stream(model.id)),
      model_(model),
      ceiling_(output_ceiling),
      pass_through_(client != core::api_shape::openai &&
                    lane_for(client, d.kind()) == lane::pass_through),
      provider_(std::move(provider)) {
  if (client == core::api_shape::anthropic) anthropic_.emplace(std::move(client_model));
  if (client == core::api_shape::gemini) gemini_.emplace(std::move(client_model));
  if (client == core::api_shape::responses && responses)
    responses_.emplace(*responses, std::move(client_model));
}

void stream_pipeline::pass_responses_through() {
  auto d = std::make_unique<responses_event_decoder>();
  native_responses_ = d.get();
  decoder_ = std::move(d);
  pass_through_ = true;
}

bool stream_pipeline::feed(std::string_view bytes) {
  if (bytes.empty() || sse_.feed(bytes)) return true;
  stopped_ = stop::event_too_large;
  return false;
}

std::optional<std::string_view> stream_pipeline::next() {
  if (stopped_ != stop::none) return std::nullopt;
  if (pass_through_) return next_native();
  while (next_chunk_ == decoded_.size()) {
    if (decoder_failed_) {
      stopped_ = stop::upstream_error;
      return std::nullopt;
    }
    if (!sse_.next(event_)) return std::nullopt;
    decoded_.clear();
    next_chunk_ = 0;
    if (!decoder_->on_event(event_, decoded_)) decoder_failed_ = true;
  }
  chunk_ = std::move(decoded_[next_chunk_++]);
  if (auto tokens = decoder_->tokens(); tokens && chunk_.find("\"usage\":{") != std::string::npos)
    chunk_ = annotate_usage_chunk(chunk_, cost_usd(*tokens, model_));
  ++relayed_chunks_;
  for_each_generated_text(chunk_,
                          [&](std::string_view raw) { stats::tally_json_string(raw, relayed_); });
  // Past the ceiling, this chunk is the last one relayed (and billed).
  if (ceiling_ && stats::estimate_tokens(relayed_) > *ceiling_) stopped_ = stop::output_limit;
  return std::string_view(frame(chunk_));
}

// One upstream event at a time: decoded for its usage and text, relayed as the upstream wrote it.
// An event the decoder reads as an error is not relayed: the gateway's own error event (fail(),
// with the upstream's words redacted) ends the stream instead.
std::optional<std::string_view> stream_pipeline::next_native() {
  if (!sse_.next(event_)) return std::nullopt;
  decoded_.clear();
  if (!decoder_->on_event(event_, decoded_)) {
    stopped_ = stop::upstream_error;
    return std::nullopt;
  }
  for (const auto& chunk : decoded_)
    for_each_generated_text(chunk,
                            [&](std::string_view raw) { stats::tally_json_string(raw, relayed_); });
  relayed_chunks_ += decoded_.size();
  if (ceiling_ && stats::estimate_tokens(relayed_) > *ceiling_) stopped_ = stop::output_limit;
  if (anthropic_ && event_.event == "message_delta") {
    if (auto tokens = decoder_->tokens())
      event_.data = annotate_chat_body(event_.data, provider_, cost_usd(*tokens, model_));
  }
  if (native_responses_ && native_responses_->complete() && native_final_.empty()) {
    std::optional<double> cost;
    if (auto tokens = decoder_->tokens()) cost = cost_usd(*tokens, model_);
    event_.data = native_responses_->annotate_final(event_, provider_, cost);
    native_final_ = native_responses_->final_response().dump();
  }
  return std::string_view(wire_ = to_wire(event_));
}

const std::string& stream_pipeline::frame(std::string_view chunk) {
  events_.clear();
  if (anthropic_)
    anthropic_->on_chunk(chunk, events_);
  else if (gemini_)
    gemini_->on_chunk(chunk, events_);
  else if (responses_)
    responses_->on_chunk(chunk, events_);
  else if (hide_usage_ && usage_only(chunk))
    return wire_.assign("");
  else
    return wire_.assign("data: ").append(chunk).append("\n\n");
  return flatten();
}

const std::string& stream_pipeline::finish(const usage& tokens, const answer_notes& notes) {
  events_.clear();
  if (pass_through_) return wire_.assign("");
  if (anthropic_)
    anthropic_->finish(tokens, events_, &notes);
  else if (gemini_)
    gemini_->finish(tokens, events_, &notes);
  else if (responses_)
    responses_->finish(tokens, events_, &notes);
  else
    return wire_.assign("data: [DONE]\n\n");
  return flatten();
}

const std::string& stream_pipeline::fail(const std::string& message, std::string_view code) {
  events_.clear();
  if (anthropic_)
    anthropic_->fail(message, events_);
  else if (gemini_)
    gemini_->fail(message, events_);
  else if (responses_)
    responses_->fail(message, code, events_);
  else
    return wire_.assign("data: ")
        .append(core::openai_error_body(message, "upstream_error", {}, code))
        .append("\n\n");
  return flatten();
}

const std::string& stream_pipeline::flatten() {
  wire_.clear();
  for (const auto& e : events_) wire_ += to_wire(e);
  return wire_;
}

}  // namespace meridian::providers
