// The Google Gemini dialect (models/{model}:generateContent and :streamGenerateContent).
#pragma once

#include <memory>

#include "providers/dialect.hpp"

namespace meridian::providers {

std::unique_ptr<dialect> make_gemini_dialect();

}  // namespace meridian::providers
