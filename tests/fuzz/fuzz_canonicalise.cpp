// libFuzzer target: the inbound chat canonicaliser (validation, byte-preserving rewrite, every
// dialect's encoder) and the router's facts parser, on arbitrary client bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  (void)meridian::policies::facts_from_openai_body(body);
  (void)pv::parse_embeddings_request(body);

  auto parsed = pv::parse_chat_request(body);
  if (const auto* req = std::get_if<pv::chat_request>(&parsed)) {
    check_rewrite(body, *req);
    for (auto kind :
         {meridian::config::dialect_kind::openai, meridian::config::dialect_kind::anthropic,
          meridian::config::dialect_kind::gemini}) {
      (void)pv::dialect_for(kind).encode_chat(body, *req, "upstream-model");
    }
  }
  return 0;
}
