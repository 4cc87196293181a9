// One finished attempt at an upstream call, as token accounting sees it: the unit the metrics,
// the ledger and the share reports are all built from.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace meridian::stats {

// Token counts in disjoint buckets (the same split as providers::usage, which stats must not
// depend on): their sum is what OpenRouter's rankings call prompt + completion tokens.
struct token_buckets {
  std::uint64_t input = 0;
  std::uint64_t cache_read = 0;
  std::uint64_t cache_write = 0;
  std::uint64_t output = 0;
  std::uint64_t reasoning = 0;

  std::uint64_t total() const { return input + cache_read + cache_write + output + reasoning; }
  token_buckets& operator+=(const token_buckets& o) {
    input += o.input;
    cache_read += o.cache_read;
    cache_write += o.cache_write;
    output += o.output;
    reasoning += o.reasoning;
    return *this;
  }
};

struct usage_event {
  std::string request_id;         // Meridian's own: the record's key
  std::string client_request_id;  // the client's x-request-id, "" when it sent none
  std::string session;  // the client's session (x-claude-code-session-id), "" when none
  std::string key;  // the client key's name; "" until keys exist
  std::string app;  // the client app (X-Title, else HTTP-Referer's host), "" when unnamed
  std::string task;      // the classifier's task of the prompt (policies/task.hpp), "" for none
  std::string language;  // the prompt's language, "zh", "en", ..., "" for none
  std::string route;
  std::string provider;
  std::string model;   // the provider's own model name
  std::string author;  // the model's vendor
  std::string region;
  token_buckets tokens;
  double cost_usd = 0;
  double uncached_cost_usd = 0;  // the same tokens with every cached one billed as input
  double energy_kwh = 0;
  double electricity_usd = 0;
  double latency_ms = 0;
  std::optional<double> ttft_ms;  // unset for non-streamed answers and failures before a token
  std::string outcome = "ok";     // "ok", "error", "client_closed", "timeout", ...
  int status = 200;               // HTTP status of the attempt
  unsigned fallback_index = 0;    // 0 = the first candidate tried
  bool estimated = false;         // true: the upstream reported no usage and it was counted here
  std::chrono::system_clock::time_point time;  // when the attempt finished
};

}  // namespace meridian::stats
