// Lanes: see lanes.hpp.
#include "providers/lanes.hpp"

#include "providers/openai.hpp"

namespace meridian::providers {

lane lane_for(core::api_shape client, config::dialect_kind backend, bool responses_api) {
  switch (client) {
    case core::api_shape::openai:
      return backend == config::dialect_kind::openai ? lane::pass_through : lane::translation;
    case core::api_shape::anthropic:
      return backend == config::dialect_kind::anthropic ? lane::pass_through : lane::translation;
    case core::api_shape::responses:
      return backend == config::dialect_kind::openai && responses_api ? lane::pass_through
                                                                      : lane::translation;
    case core::api_shape::gemini:
      return backend == config::dialect_kind::gemini ? lane::pass_through : lane::translation;
  }
  return lane::translation;
}

const std::vector<std::string_view>& dialect_headers(core::api_shape client) {
  static const std::vector<std::string_view> anthropic{"anthropic-version", "anthropic-beta"};
  static const std::vector<std::string_view> none;
  return client == core::api_shape::anthropic ? anthropic : none;
}

upstream_request encode_pass_through(const native_call& call, core::api_shape client,
                                     std::string_view upstream_model) {
  upstream_request up;
  if (client == core::api_shape::gemini) {  // the model is in the path, not the body
    std::string_view model = upstream_model;
    if (model.substr(0, 7) == "models/") model.remove_prefix(7);
    up.path = "/models/" + std::string(model) +
              (call.parsed.stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
    up.body = std::string(call.body);
    return up;
  }
  chat_request whole = call.parsed;
  whole.stream = false;  // an Anthropic stream reports its usage unasked: only `model` changes
  up.body = encode_chat_request(call.body, whole, upstream_model);
  up.headers = call.headers;
  if (client == core::api_shape::responses) up.path = "/responses";
  if (client == core::api_shape::anthropic) {
    up.path = "/messages";
    bool versioned = false;
    for (const auto& [name, value] : up.headers) versioned |= name == "anthropic-version";
    if (!versioned) up.headers.emplace_back("anthropic-version", "2023-06-01");
  }
  return up;
}

std::string dropped_header(const std::vector<std::string>& dropped) {
  std::string out;
  for (const auto& d : dropped) {
    if (!out.empty()) out += ',';
    out += d;
  }
  return out;
}

}  // namespace meridian::providers
