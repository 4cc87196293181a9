// The OpenAI chat-completions dialect: the canonical form, spoken as-is by OpenAI, DeepSeek,
// Qwen, Kimi, GLM, MiniMax, Ollama, vLLM and llama.cpp. Bodies pass through untouched except
// for the members the gateway must own (`model`, `stream_options`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json_fwd.hpp>

#include "core/json_scan.hpp"
#include "providers/request.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// A request_error for a member name the gateway and a provider could read two ways (see
// ambiguous_member), naming it; nullopt when the object has none. `where` prefixes the
// name for nested objects ("stream_options.").
std::optional<request_error> refuse_ambiguous(const core::json_object_scan& scan,
                                              std::string_view where = {});

// The checks every model-addressed body shares, whatever its API: valid JSON with nothing after
// it, an object whose member names read one way (refuse_ambiguous), a non-empty string `model`.
// The result's `stream` is false and `n` 1; the caller reads what its API adds.
// `models_may_name`: a missing `model` is read from `models`[0] (OpenRouter's chat form).
std::variant<chat_request, request_error> parse_model_request(std::string_view body,
                                                              bool models_may_name = false);

// Validates an inbound /v1/chat/completions body (valid JSON and nothing after it, an object
// with no duplicate or escaped member names at its top level, in `stream_options` or in
// `provider`; a string `model`, a non-empty `messages` array, a boolean `stream`, an integer
// `n` from 1 to k_max_choices).
std::variant<chat_request, request_error> parse_chat_request(std::string_view body);

// Validates an inbound /v1/embeddings body (valid JSON, a string `model`, an `input` that is
// a non-empty string or array). The result's `stream` is always false.
std::variant<chat_request, request_error> parse_embeddings_request(std::string_view body);

// The upstream body: the client's bytes with `model` replaced and, for a stream,
// `stream_options.include_usage` forced on so that the usage chunk always arrives. OpenRouter's
// routing members `provider` and `models` are the gateway's: read by the router, never sent
// (an OpenAI-family upstream would refuse them as unknown arguments).
// Whether a streamed chat request asked for the usage chunk itself
// (stream_options.include_usage: true), before encode_chat_request forces it on.
bool asks_stream_usage(std::string_view body, const chat_request& req);

std::string encode_chat_request(std::string_view body, const chat_request& req,
                                std::string_view upstream_model);

// Normalises an OpenAI-style `usage` object (DeepSeek's cache fields included).
usage parse_usage(const nlohmann::json& u);
// The same read from a validated `usage` value's text without a DOM (the pass-through lane's
// answers and stream chunks); nullopt when the value is not an object. Equal to the DOM
// reading, repeated keys (the last counts) and escaped keys (decoded by a DOM) included.
std::optional<usage> parse_usage_text(std::string_view usage_json);

// The usage carried by one streamed chunk's data; nullopt for ordinary chunks.
std::optional<usage> usage_in_chunk(std::string_view data);

// What the gateway needs to know of a whole chat.completion body.
chat_response_info read_chat_response(std::string_view body);

// A canonical chat.completion (known valid) with `"provider": NAME` added at the top level
// and, when `cost` is given, `"cost": USD` inside `usage`, as OpenRouter reports them.
// Every other byte is left as it was.
std::string annotate_chat_body(std::string_view body, std::string_view provider,
                               std::optional<double> cost, const usage* estimated = nullptr);
// The same for a body whose layout read_chat_response already found (no second scan). With
// `estimated` (the answer reported no usage, so Meridian counted it), a body without `usage`
// gains one: prompt_tokens, completion_tokens, total_tokens, cost and `"estimated": true`, so
// the client is told the number the ledger bills.
std::string annotate_chat_body(std::string_view body, const chat_body_layout& layout,
                               std::string_view provider, std::optional<double> cost,
                               const usage* estimated = nullptr);

// A stream chunk that carries usage, with `"cost": USD` added inside `usage`.
std::string annotate_usage_chunk(std::string_view chunk, double cost);

// Calls f(raw) for each piece of generated text in a canonical chunk (choices[].delta) or a
// whole chat.completion (choices[].message): the string values of `content`,
// `reasoning_content`, `reasoning` and `refusal`, and each tool call's `function.arguments`.
// `raw` lies between the string's quotes, escapes as written. What an estimate of output
// tokens is made from when the upstream reports none. `json` must have been validated.
template <class F>
void for_each_generated_text(std::string_view json, F&& f) {
  using namespace core::json_cursor;
  auto string_value = [&](std::size_t vb, std::size_t ve) {
    if (vb < json.size() && json[vb] == '"' && ve >= vb + 2) f(json.substr(vb + 1, ve - vb - 2));
  };
  auto arguments = [&](std::string_view key, std::size_t vb, std::size_t ve) {
    if (key == "arguments") string_value(vb, ve);
  };
  auto tool_call = [&](std::string_view key, std::size_t vb, std::size_t) {
    if (key == "function" && json[vb] == '{') for_each_member(json, vb, arguments);
  };
  auto text_member = [&](std::string_view key, std::size_t vb, std::size_t ve) {
    if (key == "content" || key == "reasoning_content" || key == "reasoning" || key == "refusal") {
      string_value(vb, ve);
    } else if (key == "tool_calls" && json[vb] == '[') {
      for_each_element(json, vb, [&](std::size_t e) {
        return json[e] == '{' ? for_each_member(json, e, tool_call) : skip_value(json, e);
      });
    }
  };
  auto choice = [&](std::string_view key, std::size_t vb, std::size_t) {
    if ((key == "delta" || key == "message") && json[vb] == '{')
      for_each_member(json, vb, text_member);
  };
  const std::size_t open = skip_ws(json, 0);
  if (open >= json.size() || json[open] != '{') return;
  for_each_member(json, open, [&](std::string_view key, std::size_t vb, std::size_t) {
    if (key != "choices" || json[vb] != '[') return;
    for_each_element(json, vb, [&](std::size_t e) {
      return json[e] == '{' ? for_each_member(json, e, choice) : skip_value(json, e);
    });
  });
}

}  // namespace meridian::providers
