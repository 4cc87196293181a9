// Model addressing: which provider and model a request's `model` names. "provider/model"
// picks that provider; a bare name must be served by exactly one provider.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "providers/catalog.hpp"

namespace meridian::policies {

struct target {
  const providers::provider* provider;
  const providers::model_info* model;
};

struct resolve_error {
  enum class kind { not_found, ambiguous } what;
  std::string message;
};

std::variant<target, resolve_error> resolve_model(const providers::catalog& cat,
                                                  std::string_view model);

}  // namespace meridian::policies
