// One interface per upstream wire format. A call whose client speaks the backend's own format
// passes through (lanes.hpp); every other call is translated through the canonical form, the
// OpenAI chat-completions shape: a dialect turns a canonical call into its provider's request and
// the provider's answer (whole, or as a stream of SSE events) back into canonical form.
// Everything here is sans-I/O: bytes in, bytes out, so it is unit-tested without sockets.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "providers/catalog.hpp"
#include "providers/request.hpp"
#include "providers/sse.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

// An upstream HTTP request without transport details. The gateway adds Host, the provider's
// auth header, Content-Length and the provider's configured extra headers.
struct upstream_request {
  std::string path;  // appended to the provider's base path, e.g. "/chat/completions"
  std::vector<std::pair<std::string, std::string>>
      headers;  // dialect-specific, e.g. anthropic-version
  std::string body;
  // What a translating encoder left out of the canonical call, by name (x-meridian-dropped).
  std::vector<std::string> dropped;
};

// The upstream sent something the dialect cannot understand (maps to 502).
struct decode_error {
  std::string message;
};

// A whole (non-streamed) answer in canonical form.
struct decoded_chat {
  std::string body;                        // an OpenAI chat.completion object (JSON)
  std::optional<usage> tokens;             // nullopt when the upstream reported none
  std::optional<chat_body_layout> layout;  // of `body`, when the decoder already scanned it
};

// Turns one upstream SSE stream into OpenAI chat.completion.chunk payloads (the text after
// "data: "), in order. The final "[DONE]" is the gateway's to write, not the decoder's.
class stream_decoder {
 public:
  virtual ~stream_decoder() = default;
  // Consumes one upstream event, appending zero or more chunk payloads to `out`. Returns
  // false when the upstream reported an error in the stream; error() then says what.
  virtual bool on_event(const sse_event& ev, std::vector<std::string>& out) = 0;
  // The upstream said its answer is complete ([DONE], message_stop, a final finishReason).
  virtual bool complete() const = 0;
  // Usage reported so far; nullopt when none has arrived.
  virtual std::optional<usage> tokens() const = 0;
  virtual std::string error() const { return {}; }
};

// An upstream's error answer, as far as choosing the next candidate cares.
enum class upstream_error {
  retryable,       // try another candidate, or the same one again
  final,           // the client's answer: another candidate would refuse it too
  quota,           // the account's balance or quota is spent: never this provider again now
  context_length,  // the prompt is over the model's window: only a larger window can help
  content_policy,  // the provider's content filter refused: another provider may not
};

// "quota", "context_length", "content_policy", "retryable" or "final": how x-meridian-route's
// failed= and meridian_fallbacks_total{reason} name it.
std::string_view to_string(upstream_error kind);

class dialect {
 public:
  virtual ~dialect() = default;
  virtual config::dialect_kind kind() const = 0;

  // Canonical chat request (the client's raw OpenAI body and its parse) -> the upstream
  // request for `upstream_model`. A request the target cannot express is a request_error.
  virtual std::variant<upstream_request, request_error> encode_chat(
      std::string_view body, const chat_request& req, std::string_view upstream_model) const = 0;

  // A whole 2xx upstream body -> canonical chat.completion. `model` is the upstream model id.
  virtual std::variant<decoded_chat, decode_error> decode_chat(std::string_view body,
                                                               std::string_view model) const = 0;

  // A fresh decoder for one streamed answer.
  virtual std::unique_ptr<stream_decoder> stream(std::string_view model) const = 0;

  // What an upstream error (status and body) means for the attempt loop: 429 (except "no
  // balance" style quota errors), 5xx and 408 are retryable; a context-length error, a content
  // filter's refusal and an exhausted balance or quota are told apart from other 4xx, which are
  // final (the client's answer).
  virtual upstream_error classify(unsigned status, std::string_view body) const;
  bool retryable(unsigned status, std::string_view body) const {
    return classify(status, body) == upstream_error::retryable;
  }
};

// The registry: the one dialect object for each wire format.
const dialect& dialect_for(config::dialect_kind kind);

}  // namespace meridian::providers
