// The OpenAI dialect behind the dialect interface: requests pass through with only `model`
// (and `stream_options`) rewritten; answers and stream events pass through untouched.
#pragma once

#include <memory>

#include "providers/dialect.hpp"

namespace meridian::providers {

std::unique_ptr<dialect> make_openai_dialect();

}  // namespace meridian::providers
