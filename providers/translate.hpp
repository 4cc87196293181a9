// Pieces shared by the dialects that translate to and from the OpenAI chat-completions shape.
#pragma once

#include "providers/dialect.hpp"

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/request.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// The text of an OpenAI message `content`: a string, null (empty), or an array of parts whose
// `text` / `refusal` parts are joined. nullopt when the content holds anything but text, so
// that a caller can refuse rather than silently drop an image or audio part.
std::optional<std::string> content_text(const nlohmann::json& content);

// A `data:` URL with base64 payload, as OpenAI clients send inline images.
struct data_url {
  std::string media_type;
  std::string data;  // still base64-encoded
};
// nullopt when `url` is not a base64 data URL (plain http(s) URLs included).
std::optional<data_url> parse_data_url(std::string_view url);

// A MIME type guessed from a URL's file extension; image/jpeg when nothing matches.
std::string guess_image_mime(std::string_view url);

// `max_completion_tokens`, else the older `max_tokens`; nullopt when neither is given.
std::variant<std::optional<std::uint64_t>, request_error> max_output_tokens(
    const nlohmann::json& req);

// `stop` as an array of strings (empty when absent or null).
std::variant<nlohmann::json, request_error> stop_sequences(const nlohmann::json& req);

// An assistant tool call's `function.arguments` (a JSON string) parsed into an object; the
// empty string some clients send for argument-less calls counts as {}.
std::variant<nlohmann::json, request_error> tool_call_arguments(const nlohmann::json& call,
                                                                const std::string& param);

// Provider stop reasons -> OpenAI finish_reason.
std::string anthropic_finish_reason(std::string_view stop_reason);
std::string gemini_finish_reason(std::string_view finish_reason);

// A non-negative integer member of `obj`, 0 when absent or of another type.
std::uint64_t token_count(const nlohmann::json& obj, const char* key);

// The OpenAI `usage` object for disjoint buckets: cached tokens are a subset of prompt tokens
// and reasoning tokens a subset of completion tokens, as OpenAI reports them.
nlohmann::json openai_usage(const usage& u);

// One OpenAI chat.completion.chunk with a single choice. A null `finish_reason` stays null.
nlohmann::json make_chunk(const std::string& id, std::int64_t created, std::string_view model,
                          nlohmann::json delta, const nlohmann::json& finish_reason = nullptr);

// The last chunk of a stream when usage is known: no choices, only usage (as OpenAI sends it
// with stream_options.include_usage).
nlohmann::json make_usage_chunk(const std::string& id, std::int64_t created, std::string_view model,
                                const usage& u);

// Seconds since the epoch, for `created`.
std::int64_t unix_now();

// What a translating encoder leaves out of a canonical call, by name (listed in
// x-meridian-dropped): top-level members it does not carry (`carried`; the gateway's own —
// model, messages, stream, stream_options, OpenRouter's provider and models — are never listed);
// "reasoning_content" on assistant turns (neither Anthropic nor Gemini takes another model's
// reasoning back as text); and "system.position" when a system message stands after the first
// turn, since the dialect has one system prompt and the messages are joined into it.
std::vector<std::string> encoding_drops(const nlohmann::json& req,
                                        std::initializer_list<std::string_view> carried);

// What every translating stream decoder shares: the fields each chunk repeats (model, creation
// time), usage seen so far, completion and error, and the rule that an event of an unexpected
// shape ends this stream only. A dialect implements handle().
class translating_stream : public stream_decoder {
 public:
  translating_stream(std::string_view model, std::string_view dialect_name);
  bool on_event(const sse_event& ev, std::vector<std::string>& out) final;
  bool complete() const override { return complete_; }
  std::optional<usage> tokens() const override;
  std::string error() const override { return error_; }

 protected:
  virtual bool handle(const sse_event& ev, std::vector<std::string>& out) = 0;

  std::string model_;
  std::int64_t created_;
  usage tokens_;
  bool complete_ = false;
  std::string error_;

 private:
  std::string dialect_name_;
};

}  // namespace meridian::providers
