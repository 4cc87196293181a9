// The dialect registry: one implementation per dialect_kind, and the default error
// classification shared by every dialect.
#include <stdexcept>
#include <string>

#include "providers/anthropic.hpp"
#include "providers/dialect.hpp"
#include "providers/gemini.hpp"
#include "providers/openai_dialect.hpp"

namespace meridian::providers {

bool dialect::retryable(unsigned status, std::string_view body) const {
  if (status == 429) {
    // Quota and balance errors come back as 429 on some providers (Zhipu code 1113,
    // OpenAI insufficient_quota): retrying them anywhere on the same account cannot help.
    return body.find("insufficient_quota") == std::string_view::npos &&
           body.find("\"1113\"") == std::string_view::npos &&
           body.find("\"code\":1113") == std::string_view::npos;
  }
  return status == 408 || status >= 500;
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
