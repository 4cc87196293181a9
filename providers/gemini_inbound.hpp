// Inbound Gemini API (POST /v1beta/models/{model}:generateContent and :streamGenerateContent):
// lets apps written with Google's @google/genai call any backend. A Gemini backend gets the
// client's own bytes (the pass-through lane, providers/lanes.hpp); the others get this
// translation to the canonical call, and the answer is translated back. Sans-I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "providers/anthropic_inbound.hpp"  // answer_notes
#include "providers/request.hpp"
#include "providers/sse.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

struct gemini_translation {
  std::string chat_body;                        // the OpenAI chat-completions body
  std::vector<std::string> dropped;             // left out by a translation lane, by name (listed)
  std::optional<request_error> untranslatable;  // the first part a translation can only refuse
};

// A generateContent body as the canonical call. `model` is the path's ({model} of
// models/{model}:generateContent, as the client wrote it); `stream` is true for
// streamGenerateContent. What Gemini itself would refuse is a request_error on every lane.
std::variant<gemini_translation, request_error> gemini_request_to_openai(std::string_view body,
                                                                         std::string_view model,
                                                                         bool stream);

// A canonical chat.completion as a GenerateContentResponse; usage from `tokens` (the gateway's
// buckets) and the gateway's notes (`provider`, `usageMetadata.cost`, `estimated`).
std::string openai_response_to_gemini(std::string_view openai_body, std::string_view model,
                                      const usage& tokens, const answer_notes* notes = nullptr);

// Canonical chunks as Gemini's stream (alt=sse: one GenerateContentResponse per data line).
// Text and thought parts go out as they come; a function call goes out whole (Gemini never
// splits one), with the final chunk's finishReason and usageMetadata.
class gemini_stream_encoder {
 public:
  explicit gemini_stream_encoder(std::string model) : model_(std::move(model)) {}
  void on_chunk(std::string_view chunk_json, std::vector<sse_event>& out);
  void finish(const usage& tokens, std::vector<sse_event>& out, const answer_notes* notes);
  void fail(std::string_view message, std::vector<sse_event>& out);

 private:
  struct call {
    std::string name, arguments;
  };
  std::string model_, id_, finish_reason_;
  std::vector<call> calls_;  // by OpenAI tool_calls index
  bool ended_ = false;
};

}  // namespace meridian::providers
