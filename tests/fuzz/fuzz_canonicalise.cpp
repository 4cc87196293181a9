// libFuzzer target: the inbound chat canonicaliser (validation, byte-preserving rewrite, every
// dialect's encoder) and the router's facts parser, on arbitrary client bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "policies/facts.hpp"
#include "providers/dialect.hpp"
#include "providers/openai.hpp"

namespace {

namespace pv = meridian::providers;

// A rewrite must stay a valid request for the same stream flag, or the upstream would see a
// body the client never could have sent.
void check_rewrite(std::string_view body, const pv::chat_request& req) {
  std::string out = pv::encode_chat_request(body, req, "upstream/model-x");
  auto again = pv::parse_chat_request(out);
  const auto* r = std::get_if<pv::chat_request>(&again);
  if (!r || r->model != "upstream/model-x" || r->stream != req.stream) std::abort();
}

// A body the gateway accepts reads the same to a DOM parser (most providers keep the last of
// duplicate names and decode escapes): the model it routes and bills, the stream flag and the
// number of choices must be what the provider will see.
void check_one_reading(std::string_view body, const pv::chat_request& req) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) std::abort();
  // The model is `model`, or (OpenRouter's form, without `model`) the first of `models`.
  const nlohmann::json named = j.contains("model") ? j["model"]
                               : j.contains("models") && j["models"].is_array() && !j["models"].empty()
                                   ? j["models"][0]
                                   : nlohmann::json();
  if (named != req.model) std::abort();
  const bool stream = j.contains("stream") && j["stream"].is_boolean() && j["stream"].get<bool>();
  if (stream != req.stream) std::abort();
  const auto n = j.find("n");
  const std::uint64_t choices = n == j.end() || n->is_null() ? 1 : n->get<std::uint64_t>();
  if (choices != req.n) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  (void)meridian::policies::facts_from_openai_body(body);
  (void)pv::parse_embeddings_request(body);

  auto parsed = pv::parse_chat_request(body);
  if (const auto* req = std::get_if<pv::chat_request>(&parsed)) {
    check_rewrite(body, *req);
    check_one_reading(body, *req);
    for (auto kind :
         {meridian::config::dialect_kind::openai, meridian::config::dialect_kind::anthropic,
          meridian::config::dialect_kind::gemini}) {
      (void)pv::dialect_for(kind).encode_chat(body, *req, "upstream-model");
    }
  }
  return 0;
}
