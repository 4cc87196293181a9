// The Anthropic Messages dialect (POST /messages): OpenAI chat requests out, Messages answers in.
#pragma once

#include <memory>

#include "providers/dialect.hpp"

namespace meridian::providers {

std::unique_ptr<dialect> make_anthropic_dialect();

}  // namespace meridian::providers
