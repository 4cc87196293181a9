// What the router needs to know about one request: the model as sent, OpenRouter's `models`
// and `provider` fields, token estimates and required capabilities. Parsed once per request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/json_scan.hpp"
#include "policies/task.hpp"

namespace meridian::policies {

// provider.sort; `none` leaves the choice to the route or the price-weighted default.
enum class sort_by { none, price, throughput, latency };

// OpenRouter's `provider` object. Prices are USD per million tokens.
struct provider_prefs {
  bool given = false;              // the request carried a `provider` object
  std::vector<std::string> order;  // try these first, in this order
  bool allow_fallbacks = true;     // false: only providers named in `order`
  std::vector<std::string> only, ignore;
  sort_by sort = sort_by::none;
  std::optional<double> max_prompt_price, max_completion_price;
  std::optional<double> preferred_max_latency_s;   // soft: time to first token
  std::optional<double> preferred_min_throughput;  // soft: tokens per second
  bool deny_data_collection = false;

  // Whether the client expressed any preference (an explicit empty object counts).
  bool stated() const {
    return given || !order.empty() || !allow_fallbacks || !only.empty() || !ignore.empty() ||
           sort != sort_by::none || max_prompt_price || max_completion_price ||
           preferred_max_latency_s || preferred_min_throughput || deny_data_collection;
  }
};

struct request_facts {
  std::string model;                // as sent, suffix included ("auto", "p/m:floor", ...)
  std::vector<std::string> models;  // OpenRouter fallback models, tried after `model`
  provider_prefs provider;
  std::uint64_t est_prompt_tokens = 0;
  std::optional<std::uint64_t> max_tokens;
  bool needs_tools = false, needs_images = false, needs_json = false;
  // The request's `metadata` members with string values, for routes' `when`.
  std::vector<std::pair<std::string, std::string>> metadata;
  task_guess task;  // what the prompt is for, and its language (policies/task.hpp)
  // The conversation as the body names it, for session affinity: "prompt_cache_key:…" or
  // "user:…"; empty when it does not. Else its stable prefix, located in the body (views valid
  // while the body is): the tools and the messages up to the first user one.
  std::string session;
  std::string_view prefix_tools, prefix_messages;
};

// `metadata` members kept (OpenAI allows 16).
inline constexpr std::size_t k_max_metadata = 16;

// Completion tokens assumed when the request does not cap them.
inline constexpr std::uint64_t k_default_completion_tokens = 256;

// A field with the wrong shape; maps to HTTP 400 with `param` in the error body.
struct facts_error {
  std::string param;  // e.g. "provider.sort"
  std::string message;
};

// Reads an OpenAI chat body; malformed JSON is reported as a facts_error with an empty param.
// The prompt estimate is ceil(bytes of message text / 4).
std::variant<request_facts, facts_error> facts_from_openai_body(std::string_view body);
// The same for a body already validated as JSON whose top-level members are `scan` (what
// providers::parse_chat_request returns), so the gateway does not validate it twice.
std::variant<request_facts, facts_error> facts_from_openai_body(std::string_view body,
                                                                const core::json_object_scan& scan);

}  // namespace meridian::policies
