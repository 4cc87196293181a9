// The Anthropic Messages dialect (POST /messages): OpenAI chat requests out, Messages answers in.
#pragma once

#include <memory>

#include "providers/dialect.hpp"

namespace meridian::providers {

std::unique_ptr<dialect> make_anthropic_dialect();

// Automatic prompt caching (a provider's `cache_prompts: true`): Anthropic caches only up to
// the blocks a request marks with cache_control, which OpenAI-shaped clients never send. Marks
// the stable prefix of a translated Messages body: the last tool, the last system block and the
// last block of the turn before the final user message (three of Anthropic's four
// breakpoints). A body that marks anything itself, or that is not a JSON object, is left as it
// is. Returns whether it changed.
bool add_cache_breakpoints(std::string& messages_body);

}  // namespace meridian::providers
