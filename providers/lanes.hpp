// Lanes: how a call travels from the client's API to the backend's dialect. When both speak the
// same wire format the lane is a pass-through: the client's bytes go upstream with only what
// routing must change rewritten (`model`), the dialect's own headers from the client forwarded
// (never its credentials: the gateway authenticates upstream with the provider's key), and the
// answer comes back as the upstream wrote it plus the gateway's annotations (`provider`,
// `usage.cost`). Otherwise the lane is a translation through the canonical call (dialect.hpp),
// which lists what it leaves out (docs/dialects.md). Sans-I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "core/api_error.hpp"
#include "providers/dialect.hpp"
#include "providers/request.hpp"

namespace meridian::providers {

enum class lane { pass_through, translation };

// The lane from a client API to a backend dialect: the same wire format passes through. OpenAI
// chat clients on OpenAI-dialect backends pass through by their dialect's own encoder (the
// canonical form is theirs); Gemini clients on Gemini backends pass through; Responses clients
// pass through to OpenAI-dialect backends that serve the Responses API (`responses_api`,
// provider::responses_api) and are translated to chat for every other.
lane lane_for(core::api_shape client, config::dialect_kind backend, bool responses_api = false);

// The request headers of a client API that belong to its dialect and reach the backend on a
// pass-through lane: for Anthropic, `anthropic-version` and `anthropic-beta` (prompt-caching,
// thinking and mid-conversation-system betas live there). Credentials are never among them.
const std::vector<std::string_view>& dialect_headers(core::api_shape client);

// A client's call in its own wire format, kept for the pass-through lane. `body` is the
// client's bytes (they outlive the call); `parsed` their model-addressed parse
// (parse_model_request: member names that read one way, so the gateway and the backend cannot
// read two different models out of one body); `headers` the dialect headers the client sent.
struct native_call {
  std::string_view body;
  chat_request parsed;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The upstream request of a pass-through: the client's body with `model` replaced by
// `upstream_model` (a Responses call goes to /responses), and the client's dialect headers (Anthropic's version defaults to
// 2023-06-01, which Anthropic requires, when the client sent none).
upstream_request encode_pass_through(const native_call& call, core::api_shape client,
                                     std::string_view upstream_model);

// The names a translation lane left out, as the x-meridian-dropped header carries them:
// comma-separated, in the order found.
std::string dropped_header(const std::vector<std::string>& dropped);

}  // namespace meridian::providers
