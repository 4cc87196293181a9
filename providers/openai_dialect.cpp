// OpenAI-compatible backends (OpenAI, DeepSeek, Qwen, Kimi, GLM, MiniMax, Ollama, vLLM,
// llama.cpp): the canonical form is their own, so translation is a pass-through.
#include "providers/openai_dialect.hpp"

#include <nlohmann/json.hpp>

#include "providers/openai.hpp"

namespace meridian::providers {
namespace {

class openai_stream final : public stream_decoder {
 public:
  bool on_event(const sse_event& ev, std::vector<std::string>& out) override {
    if (ev.data == "[DONE]") {
      complete_ = true;
      return true;
    }
    // Some servers report errors inside a 200 stream as {"error": {...}}.
    if (ev.data.size() > 8 && ev.data.compare(0, 9, "{\"error\":") == 0) {
      auto j = nlohmann::json::parse(ev.data, nullptr, false);
      error_ = "the provider reported an error mid-stream";
      if (j.is_object() && j["error"].is_object() && j["error"].contains("message") &&
          j["error"]["message"].is_string())
        error_ += ": " + j["error"]["message"].get<std::string>();
      return false;
    }
    if (auto u = usage_in_chunk(ev.data)) tokens_ = u;
    out.push_back(ev.data);
    return true;
  }
  bool complete() const override { return complete_; }
  std::optional<usage> tokens() const override { return tokens_; }
  std::string error() const override { return error_; }

 private:
  bool complete_ = false;
  std::optional<usage> tokens_;
  std::string error_;
};

class openai_dialect final : public dialect {
 public:
  config::dialect_kind kind() const override { return config::dialect_kind::openai; }

  std::variant<upstream_request, request_error> encode_chat(
      std::string_view body, const chat_request& req,
      std::string_view upstream_model) const override {
    return upstream_request{
        "/chat/completions", {}, encode_chat_request(body, req, upstream_model)};
  }

  std::variant<decoded_chat, decode_error> decode_chat(std::string_view body,
                                                       std::string_view) const override {
    auto r = read_chat_response(body);
    if (!r.valid) return decode_error{"the provider returned a malformed response"};
    return decoded_chat{std::string(body), r.tokens, r.layout};
  }

  std::unique_ptr<stream_decoder> stream(std::string_view) const override {
    return std::make_unique<openai_stream>();
  }
};

}  // namespace

std::unique_ptr<dialect> make_openai_dialect() {
  return std::make_unique<openai_dialect>();
}

}  // namespace meridian::providers
