// The dialect registry: one explicit name -> implementation table, and the default error
// classification shared by every dialect.
#include <array>
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

const dialect& dialect_for(config::dialect_kind kind) {
  static const auto table = [] {
    std::array<std::unique_ptr<dialect>, 3> t;
    t[static_cast<int>(config::dialect_kind::openai)] = make_openai_dialect();
    t[static_cast<int>(config::dialect_kind::anthropic)] = make_anthropic_dialect();
    t[static_cast<int>(config::dialect_kind::gemini)] = make_gemini_dialect();
    return t;
  }();
  const auto& d = table[static_cast<int>(kind)];
  // The catalog skips providers whose dialect is missing, so this is a programming error.
  if (!d)
    throw std::logic_error("no " + std::string(config::to_string(kind)) + " dialect in this build");
  return *d;
}

}  // namespace meridian::providers
