// Inbound Anthropic Messages API: lets Anthropic SDK and Claude Code clients call any backend by
// translating /v1/messages requests to the canonical OpenAI shape and the answers back. Sans-I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "providers/request.hpp"
#include "providers/sse.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// An Anthropic Messages request as the canonical call, for the translation lanes (OpenAI-family
// and Gemini backends), with what those lanes cannot carry. The pass-through lane to Anthropic
// backends sends the client's own bytes instead (providers/lanes.hpp) and needs neither list.
struct anthropic_translation {
  std::string chat_body;  // the OpenAI chat-completions body; `model` as the client wrote it
  // Members and block types a translation leaves out, by name ("thinking", "cache_control",
  // "top_k", "tools.web_search_20250305", ...): listed in x-meridian-dropped and the debug log.
  std::vector<std::string> dropped;
  // The first part a translation can only refuse (a PDF document block, say): a translation
  // lane answers 400 with it (or falls back to a pass-through candidate); nullopt when none.
  std::optional<request_error> untranslatable;
  // For the pass-through lane, when the conversation holds thinking blocks Anthropic did not
  // sign (turns another backend answered, before a fallback or a route change): the client's
  // body without them, since Anthropic rejects them. nullopt when every thinking block is signed.
  std::optional<std::string> signed_body;
  std::vector<std::string> pass_through_dropped;  // "thinking.unsigned" when signed_body is set
};

// Validates an Anthropic Messages request (what Anthropic itself would refuse is a
// request_error on every lane) and translates it to the canonical call. System messages may
// stand anywhere in `messages` (Claude Code's mid-conversation system messages); each becomes a
// system message in place.
std::variant<anthropic_translation, request_error> anthropic_request_to_openai(
    std::string_view body);

// A canonical chat.completion as an Anthropic Message. `model` is the name the client asked for.
// Usage comes from the body's own `usage` object.
std::string openai_response_to_anthropic(std::string_view openai_body, std::string_view model);

// What the gateway adds to an answer in Anthropic's shape, as it does to OpenAI's: `provider` at
// the top level and, in `usage`, `cost` (USD) and `estimated: true` when Meridian counted the
// tokens itself. Anthropic's SDKs ignore members they do not know.
struct answer_notes {
  std::string provider;
  std::optional<double> cost;
  bool estimated = false;
};

// The same, with usage taken from already-normalised buckets when `tokens` is given, and the
// gateway's notes when `notes` is.
std::string openai_response_to_anthropic(std::string_view openai_body, std::string_view model,
                                         const std::optional<usage>& tokens,
                                         const answer_notes* notes = nullptr);

// Turns canonical chat.completion.chunk payloads (the JSON after "data: ") into the Anthropic
// event stream: message_start, content_block_start/delta/stop per block, message_delta,
// message_stop. One instance per response.
class anthropic_stream_encoder {
 public:
  explicit anthropic_stream_encoder(std::string model);

  // The input tokens the gateway estimates for the request, told in message_start (marked
  // `estimated`) when the backend has reported none by then: OpenAI-style streams count only at
  // the end, and Claude Code reads the context size from message_start. The final
  // message_delta carries the backend's own counts.
  void expect_input(std::uint64_t tokens) { input_estimate_ = tokens; }
  // Consumes one chunk payload; payloads that are not JSON objects (such as "[DONE]") are ignored.
  void on_chunk(std::string_view chunk_json, std::vector<sse_event>& out);
  // Ends the message. `tokens`, when given, wins over usage seen in the chunks; `notes` go into
  // the final message_delta's usage.
  void finish(const std::optional<usage>& tokens, std::vector<sse_event>& out,
              const answer_notes* notes = nullptr);
  // Ends the stream with an Anthropic `error` event (the upstream failed mid-stream).
  void fail(std::string_view message, std::vector<sse_event>& out);

 private:
  enum class block_kind { none, thinking, text, tool };

  void start(const std::string& chunk_id, std::vector<sse_event>& out);
  void open_block(block_kind kind, const nlohmann::ordered_json& block,
                  std::vector<sse_event>& out);
  void close_block(std::vector<sse_event>& out);

  std::string model_;
  std::string id_;
  bool started_ = false;
  bool ended_ = false;
  block_kind open_ = block_kind::none;
  int next_index_ = 0;   // the Anthropic index the next block gets
  long open_tool_ = -1;  // the OpenAI tool_calls index of the open tool block
  std::vector<std::pair<long, int>> tool_blocks_;  // OpenAI tool index -> Anthropic block index
  std::string finish_reason_;
  std::optional<usage> tokens_;
  std::uint64_t input_estimate_ = 0;
};

// For /v1/messages/count_tokens. An ESTIMATE, not a tokenizer: the backend may be any model and
// its tokenizer is not available here. ceil(UTF-8 bytes of all text / 4) + 4 per message
// + 8 per tool + a flat allowance per image; deterministic for a given body.
std::uint64_t estimate_tokens(std::string_view anthropic_request_body);

}  // namespace meridian::providers
