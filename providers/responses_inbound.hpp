// Inbound OpenAI Responses API (POST /v1/responses): lets Codex CLI, the AI SDK's default OpenAI
// provider and `client.responses.create` call any backend, by translating a Responses request to
// the canonical chat-completions body and the answer (whole or streamed) back. Sans-I/O.
//
// State is the gateway's (stats/response_store.hpp): the translation reads `store` and
// `previous_response_id`, and takes the stored conversation a previous response continues as
// `history` (responses_history). `item_reference` items and `conversation` are refused with a
// clear 400. What a chat backend cannot use (built-in tools such as web_search, `reasoning`
// input items, `input_file` parts, `include`) is dropped and listed in the response's
// `metadata.meridian_dropped`, never silently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/anthropic_inbound.hpp"  // answer_notes
#include "providers/dialect.hpp"            // stream_decoder
#include "providers/request.hpp"
#include "providers/sse.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// A Responses request as the canonical call, and what answering it in the Responses shape needs.
struct responses_translation {
  std::string chat_body;  // the canonical OpenAI chat-completions body (model as the client sent)
  // Names of `custom` tools (free-form input, e.g. Codex's apply_patch): sent as functions with
  // one string parameter `input`, and answered as custom_tool_call items.
  std::vector<std::string> custom_tools;
  // What was dropped because a chat backend cannot use it, e.g. "tools[3]: web_search".
  std::vector<std::string> dropped;
  // The request's members a Response object echoes (instructions, tools, tool_choice,
  // parallel_tool_calls, max_output_tokens, metadata, reasoning, text, temperature, top_p, user).
  nlohmann::ordered_json echo = nlohmann::ordered_json::object();
  bool stream = false;
  std::string id;  // the Response's id (resp_…): the answer, its events and the store use it
  // `store` as the client sent it (OpenAI's default: true); the gateway sets it false when it
  // keeps nothing. store_asked: the client said `store: true` itself.
  bool store = true, store_asked = false;
  std::string previous_response_id;  // empty: none
  bool history_applied = false;      // the translation was given previous_response_id's history
  // With store: every input item the response answers (the history it continues, then this
  // request's input, a string as one user message), each with a type and an id.
  nlohmann::ordered_json input_items = nlohmann::ordered_json::array();
  // The functions of `namespace` tools, sent flat: {flat name, namespace, name in it}.
  struct namespaced_function {
    std::string flat, ns, name;
  };
  std::vector<namespaced_function> namespaces;
};

// Validates a Responses request; a request_error names the member at fault (`param`). With
// previous_response_id and no `history`, the result has history_applied false: the caller
// looks the response up and translates again with its history (items named
// `previous_response[i]` in errors and drops).
std::variant<responses_translation, request_error> responses_request_to_openai(
    std::string_view body, const nlohmann::ordered_json* history = nullptr);

// The conversation a stored response continues: its input items, then its output items
// (`input` a JSON array, `response` a Response object); nullopt when either is malformed.
std::optional<nlohmann::ordered_json> responses_history(std::string_view input,
                                                        std::string_view response);

// One page of GET /v1/responses/{id}/input_items over the stored items: `limit` (1-100,
// default 20), `order` (asc or desc, the default), `after` (an item id); the list object
// {object: list, data, first_id, last_id, has_more}, or the request_error of a bad parameter.
std::variant<std::string, request_error> responses_input_items_page(
    std::string_view items, std::optional<std::string_view> limit,
    std::optional<std::string_view> order, std::optional<std::string_view> after);

// A namespace tool's function as one flat name: `ns` and `name`, with "__" between unless the
// namespace already ends in "_" (Codex's "mcp__<server>__").
std::string namespaced(std::string_view ns, std::string_view name);

// A fresh id for an item of `type` (response → resp_, message → msg_, function_call → fc_, …).
std::string new_item_id(std::string_view type);

// A canonical chat.completion (known valid) as a Response object: reasoning_content as a
// `reasoning` item, content as a `message` item with `output_text`, tool calls as
// `function_call` (or `custom_tool_call`) items; `finish_reason: length` is status
// "incomplete". `model` is the name the client asked for; usage from `tokens` (normalised
// buckets) as input_tokens (cached included) with cached_tokens, output_tokens with
// reasoning_tokens, plus the gateway's notes (`cost`, `estimated`, `provider`).
std::string openai_response_to_responses(std::string_view openai_body,
                                         const responses_translation& t, std::string_view model,
                                         const std::optional<usage>& tokens,
                                         const answer_notes* notes = nullptr);

// Turns canonical chat.completion.chunk payloads into the Responses event stream, each event
// with its `sequence_number`: response.created, response.in_progress, then per output item
// response.output_item.added, (response.content_part.added, response.output_text.delta,
// response.output_text.done, response.content_part.done | response.reasoning_text.delta,
// response.reasoning_text.done | response.function_call_arguments.delta,
// response.function_call_arguments.done | response.custom_tool_call_input.delta,
// response.custom_tool_call_input.done), response.output_item.done; and at the end
// response.completed (or response.incomplete) carrying the whole Response with usage.
// No "[DONE]". One instance per response.
class responses_stream_encoder {
 public:
  responses_stream_encoder(const responses_translation& t, std::string model);

  // Consumes one chunk payload; payloads that are not JSON objects are ignored.
  void on_chunk(std::string_view chunk_json, std::vector<sse_event>& out);
  // Ends the response: closes the open item, then response.completed or response.incomplete.
  void finish(const std::optional<usage>& tokens, std::vector<sse_event>& out,
              const answer_notes* notes = nullptr);
  // Ends the stream after an upstream failure: an `error` event, then response.failed.
  void fail(std::string_view message, std::string_view code, std::vector<sse_event>& out);
  // After finish(): the final Response object (what a stored response keeps).
  const std::string& final_response() const { return final_; }

 private:
  enum class item_kind { none, reasoning, message, function, custom };

  // A tool call seen in the stream: its canonical index, where its item is in `output_` once
  // done, and its raw arguments (a fragment arriving after the item closed still lands there).
  struct tool_slot {
    long index = 0;
    std::size_t output_index = 0;
    bool custom = false;
    std::string arguments;
  };

  void start(std::vector<sse_event>& out);
  void open_item(item_kind kind, std::vector<sse_event>& out, const nlohmann::ordered_json* call);
  void close_item(std::vector<sse_event>& out);
  void open_part(bool refusal, std::vector<sse_event>& out);
  void close_part(std::vector<sse_event>& out);
  void on_tool_call(const nlohmann::ordered_json& call, std::vector<sse_event>& out);
  void emit(std::string type, nlohmann::ordered_json body, std::vector<sse_event>& out);
  nlohmann::ordered_json response(std::string_view status) const;

  const responses_translation& t_;
  std::string model_;
  std::string id_;
  std::int64_t created_ = 0;
  std::uint64_t sequence_ = 0;
  bool started_ = false, ended_ = false;
  item_kind open_ = item_kind::none;
  long open_tool_ = -1;          // the canonical tool_calls index of the open call item
  std::string item_id_;          // the open item's id
  std::string text_;             // the open item's text, reasoning or arguments so far
  nlohmann::ordered_json item_;  // the open item (without its final text)
  nlohmann::ordered_json output_ = nlohmann::ordered_json::array();  // items done
  // The open message's content: the parts done, and the open part (output_text or refusal).
  nlohmann::ordered_json parts_ = nlohmann::ordered_json::array();
  bool part_open_ = false, part_refusal_ = false;
  std::vector<tool_slot> tools_;
  std::string finish_reason_;
  std::optional<usage> tokens_;
  std::string final_;
};

// ---- the pass-through lane: a backend that serves /responses itself (responses_native.cpp) --

// The client's body for the backend when the gateway resolved previous_response_id: `input` is
// the whole conversation (`history`, then the client's input) and previous_response_id is left
// out, since the backend never saw that id. `model` is replaced later, as on every lane.
std::string responses_pass_through_body(std::string_view body,
                                        const nlohmann::ordered_json& history);

// A Response object's usage in the disjoint buckets (input_tokens includes cached_tokens,
// output_tokens includes reasoning_tokens); nullopt without one.
std::optional<usage> response_usage_buckets(const nlohmann::ordered_json& response);
std::optional<usage> responses_usage_of(std::string_view response);

// A whole upstream Response with `provider` and `usage.cost` added; with `estimated` (the
// upstream reported no usage), the gateway's counts in `usage`, marked `estimated: true`.
std::string annotate_response(std::string_view response, std::string_view provider,
                              std::optional<double> cost, const usage* estimated = nullptr);

// Calls f(raw) for each piece of generated text in a Response's output (text, refusals,
// reasoning, call arguments and custom inputs), JSON-escaped as stats::tally_json_string wants.
void for_each_response_text(const nlohmann::ordered_json& response,
                            const std::function<void(std::string_view)>& f);

// Reads an upstream's Responses event stream for the gateway, which relays the events as they
// are: text, reasoning and argument deltas become canonical chunks (for the output tally and
// ceiling), response.completed / response.incomplete end it with usage, response.failed and
// `error` events are errors.
class responses_event_decoder final : public stream_decoder {
 public:
  bool on_event(const sse_event& ev, std::vector<std::string>& out) override;
  bool complete() const override { return complete_; }
  std::optional<usage> tokens() const override { return tokens_; }
  std::string error() const override { return error_; }
  // The final event's data with `provider` and `usage.cost` in its Response, which is kept
  // as final_response().
  std::string annotate_final(const sse_event& ev, std::string_view provider,
                             std::optional<double> cost);
  const nlohmann::ordered_json& final_response() const { return final_; }

 private:
  bool complete_ = false;
  std::optional<usage> tokens_;
  std::string error_;
  nlohmann::ordered_json final_;
};

// The Response object's `usage`: input_tokens (cached included) with
// input_tokens_details.cached_tokens, output_tokens with output_tokens_details.reasoning_tokens,
// total_tokens, and the notes' cost / estimated.
nlohmann::ordered_json responses_usage(const usage& u, const answer_notes* notes);

}  // namespace meridian::providers
