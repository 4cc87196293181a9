// The dialect registry: one implementation per dialect_kind, and the default error
// classification shared by every dialect.
#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "providers/anthropic.hpp"
#include "providers/dialect.hpp"
#include "providers/gemini.hpp"
#include "providers/openai_dialect.hpp"

namespace meridian::providers {

namespace {

bool has_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  for (auto n : needles)
    if (text.find(n) != std::string_view::npos) return true;
  return false;
}

}  // namespace

// The markers are the providers' own error codes and messages (tests/fixtures/errors/ holds a
// body of each); the message part is compared in lowercase, over the first 4 KiB.
upstream_error dialect::classify(unsigned status, std::string_view body) const {
  std::string text(body.substr(0, 4096));
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // A spent balance or quota: 429 at OpenAI (insufficient_quota), Zhipu (1113) and Kimi
  // (exceeded_current_quota_error, also as 403), 402 at DeepSeek, 400 at Anthropic and Qwen
  // (Arrearage), even 500 at MiniMax (1008). Retrying anywhere on the same account cannot help.
  // Gemini's RESOURCE_EXHAUSTED says "exceeded your current quota" for per-minute limits too,
  // so it stays retryable.
  const bool quota_status = (status >= 400 && status <= 429) || status == 500;
  if (status == 402 ||
      (quota_status &&
       has_any(text, {"insufficient_quota", "\"1113\"", "\"code\":1113", "insufficient balance",
                      "insufficient_balance", "exceeded_current_quota", "credit balance is too low",
                      "arrearage", "billing_hard_limit", "prepayment credits are depleted"})))
    return upstream_error::quota;
  if ((status == 400 || status == 413 || status == 422) &&
      has_any(text, {"context_length_exceeded", "maximum context length", "prompt is too long",
                     "exceed context limit", "exceeds the maximum number of tokens",
                     "range of input length should be", "exceeded model token limit",
                     "input token length too long", "\"1261\"", "prompt exceeds max length",
                     "context window exceeds limit", "exceeds the context length",
                     "exceed_context_size", "exceeds the available context size"}))
    return upstream_error::context_length;
  if ((status == 400 || status == 403 || status == 422 || status == 451) &&
      has_any(text, {"content_filter", "responsibleaipolicyviolation", "invalid_prompt",
                     "flagged as potentially violating", "data_inspection_failed",
                     "content exists risk", "\"1301\"", "\"code\":1301", "considered high risk",
                     "(1026)", "(1027)", "new_sensitive"}))
    return upstream_error::content_policy;
  if (status == 429 || status == 408 || status >= 500) return upstream_error::retryable;
  return upstream_error::final;
}

std::string_view to_string(upstream_error kind) {
  switch (kind) {
    case upstream_error::quota:
      return "quota";
    case upstream_error::context_length:
      return "context_length";
    case upstream_error::content_policy:
      return "content_policy";
    case upstream_error::retryable:
      return "retryable";
    case upstream_error::final:
      break;
  }
  return "final";
}

// A switch the compiler checks (-Wswitch): a new dialect_kind without its implementation here
// is a warning, an error under the ci preset, rather than a null slot found at run time.
const dialect& dialect_for(config::dialect_kind kind) {
  switch (kind) {
    case config::dialect_kind::openai: {
      static const auto d = make_openai_dialect();
      return *d;
    }
    case config::dialect_kind::anthropic: {
      static const auto d = make_anthropic_dialect();
      return *d;
    }
    case config::dialect_kind::gemini: {
      static const auto d = make_gemini_dialect();
      return *d;
    }
  }
  throw std::logic_error("dialect_kind " + std::to_string(static_cast<int>(kind)) +
                         " is not a dialect");
}

}  // namespace meridian::providers
