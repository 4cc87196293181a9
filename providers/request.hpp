// The canonical request and response types every dialect and the gateway share: what the
// gateway knows of an inbound call (`chat_request`), a client's mistake in one
// (`request_error`), and where the gateway writes in a canonical answer (`chat_body_layout`).
// The OpenAI chat shape's parsers and encoders that produce them are in openai.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/json_scan.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// A client's mistake in a request body; `param` names the offending member, as OpenAI does.
struct request_error {
  std::string message;
  std::string param;
};

// What the gateway needs to know of an inbound chat request, plus where its members lie.
struct chat_request {
  std::string model;
  bool stream = false;
  std::uint64_t n = 1;  // choices asked for: each is billed, so each is reserved
  core::json_object_scan scan;
};

// The most choices (`n`) one request may ask for, as OpenAI allows; more is a 400.
constexpr std::uint64_t k_max_choices = 128;

// Where annotate_chat_body writes, found by the scan read_chat_response makes anyway: byte
// offsets only, so it stays valid for any copy of the same bytes.
struct chat_body_layout {
  std::size_t close = 0;  // the top-level '}'
  bool has_members = false, has_provider = false;
  std::size_t usage_begin = 0, usage_end = 0;  // the `usage` value; equal when there is none
};

struct chat_response_info {
  bool valid = false;           // a JSON object
  std::optional<usage> tokens;  // nullopt when it reports no usage
  chat_body_layout layout;      // set when valid
};

}  // namespace meridian::providers
