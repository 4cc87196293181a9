// Shared translation helpers: OpenAI content parts, data URLs, stop reasons and usage shapes.
#include "providers/translate.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>

namespace meridian::providers {

using json = nlohmann::json;

namespace {

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  s = s.substr(s.size() - suffix.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> content_text(const json& content) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return std::nullopt;
  std::string out;
  for (const json& part : content) {
    if (!part.is_object()) return std::nullopt;
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return std::nullopt;
    // Assistant messages may carry a refusal part; it is text the model produced.
    const char* key = *type == "text" ? "text" : *type == "refusal" ? "refusal" : nullptr;
    if (!key) return std::nullopt;
    auto text = part.find(key);
    if (text == part.end() || !text->is_string()) return std::nullopt;
    out += text->get_ref<const std::string&>();
  }
  return out;
}

std::optional<data_url> parse_data_url(std::string_view url) {
  constexpr std::string_view k_scheme = "data:";
  constexpr std::string_view k_base64 = ";base64";
  if (url.substr(0, k_scheme.size()) != k_scheme) return std::nullopt;
  url.remove_prefix(k_scheme.size());
  auto comma = url.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  std::string_view meta = url.substr(0, comma);
  // Only base64 payloads: both providers take inline bytes base64-encoded, and a
  // percent-encoded image would need decoding and re-encoding.
  auto b64 = meta.find(k_base64);
  if (b64 == std::string_view::npos) return std::nullopt;
  std::string_view media = meta.substr(0, meta.find(';'));
  if (media.empty()) return std::nullopt;
  return data_url{std::string(media), std::string(url.substr(comma + 1))};
}

std::string guess_image_mime(std::string_view url) {
  // Query and fragment are not part of the file name.
  url = url.substr(0, url.find_first_of("?#"));
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 8> k_types{{
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".heic", "image/heic"},
      {".heif", "image/heif"},
      {".pdf", "application/pdf"},
  }};
  for (const auto& [ext, mime] : k_types)
    if (ends_with_ci(url, ext)) return std::string(mime);
  return "image/jpeg";
}

std::variant<std::optional<std::uint64_t>, request_error> max_output_tokens(const json& req) {
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    auto it = req.find(key);
    if (it == req.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
      return request_error{std::string("'") + key + "' must be a positive integer", key};
    return std::optional<std::uint64_t>(it->get<std::uint64_t>());
  }
  return std::optional<std::uint64_t>();
}

std::variant<json, request_error> stop_sequences(const json& req) {
  json out = json::array();
  auto it = req.find("stop");
  if (it == req.end() || it->is_null()) return out;
  if (it->is_string()) {
    out.push_back(*it);
    return out;
  }
  if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) break;
      out.push_back(s);
    }
    if (out.size() == it->size()) return out;
  }
  return request_error{"'stop' must be a string or an array of strings", "stop"};
}

std::variant<json, request_error> tool_call_arguments(const json& call, const std::string& param) {
  auto fn = call.find("function");
  if (fn == call.end() || !fn->is_object())
    return request_error{"a tool call needs a 'function' object", param};
  auto args = fn->find("arguments");
  if (args == fn->end() || args->is_null()) return json::object();
  if (!args->is_string())
    return request_error{"tool call 'arguments' must be a JSON string", param};
  const auto& text = args->get_ref<const std::string&>();
  if (text.empty()) return json::object();
  json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    return request_error{"tool call 'arguments' must be a JSON object encoded as a string", param};
  return parsed;
}

std::string anthropic_finish_reason(std::string_view r) {
  if (r == "max_tokens" || r == "model_context_window_exceeded") return "length";
  if (r == "tool_use") return "tool_calls";
  if (r == "refusal") return "content_filter";
  // end_turn, stop_sequence, pause_turn and reasons added later all end the turn normally.
  return "stop";
}

std::string gemini_finish_reason(std::string_view r) {
  if (r == "MAX_TOKENS") return "length";
  if (r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" ||
      r == "SPII" || r == "IMAGE_SAFETY")
    return "content_filter";
  return "stop";
}

std::uint64_t token_count(const json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  auto v = it->get<std::int64_t>();
  return v > 0 ? static_cast<std::uint64_t>(v) : 0;
}

json openai_usage(const usage& u) {
  return {
      {"prompt_tokens", u.prompt_total()},
      {"completion_tokens", u.completion_total()},
      {"total_tokens", u.prompt_total() + u.completion_total()},
      {"prompt_tokens_details", {{"cached_tokens", u.cache_read}}},
      {"completion_tokens_details", {{"reasoning_tokens", u.reasoning}}},
  };
}

json make_chunk(const std::string& id, std::int64_t created, std::string_view model, json delta,
                const json& finish_reason) {
  return {
      {"id", id},
      {"object", "chat.completion.chunk"},
      {"created", created},
      {"model", model},
      {"choices",
       json::array(
           {{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish_reason}}})},
  };
}

json make_usage_chunk(const std::string& id, std::int64_t created, std::string_view model,
                      const usage& u) {
  return {
      {"id", id},       {"object", "chat.completion.chunk"}, {"created", created},
      {"model", model}, {"choices", json::array()},          {"usage", openai_usage(u)},
  };
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

translating_stream::translating_stream(std::string_view model, std::string_view dialect_name)
    : model_(model), created_(unix_now()), dialect_name_(dialect_name) {}

bool translating_stream::on_event(const sse_event& ev, std::vector<std::string>& out) {
  if (!error_.empty()) return false;
  // The subclasses check the shapes their provider documents; a member of an unexpected type
  // elsewhere makes nlohmann throw, which ends this stream only.
  try {
    return handle(ev, out);
  } catch (const nlohmann::json::exception& e) {
    error_ = "unexpected " + dialect_name_ + " stream event: " + e.what();
    return false;
  }
}

std::optional<usage> translating_stream::tokens() const {
  return tokens_.present ? std::optional<usage>(tokens_) : std::nullopt;
}

std::vector<std::string> encoding_drops(const nlohmann::json& req,
                                        std::initializer_list<std::string_view> carried) {
  static constexpr std::string_view k_gateway[] = {"model",          "messages", "stream",
                                                   "stream_options", "provider", "models"};
  std::vector<std::string> out;
  if (!req.is_object()) return out;
  for (const auto& [key, value] : req.items()) {
    if (value.is_null()) continue;
    if (std::find(std::begin(k_gateway), std::end(k_gateway), key) != std::end(k_gateway))
      continue;
    if (std::find(carried.begin(), carried.end(), key) == carried.end()) out.push_back(key);
  }
  auto messages = req.find("messages");
  if (messages == req.end() || !messages->is_array()) return out;
  bool reasoning = false, late_system = false, turns = false;
  for (const auto& m : *messages) {
    if (!m.is_object()) continue;
    const std::string role = m.value("role", "");
    if (role == "system" || role == "developer") {
      late_system |= turns;
    } else {
      turns = true;
    }
    if (role == "assistant") {
      auto r = m.find("reasoning_content");
      reasoning |= r != m.end() && r->is_string() && !r->get_ref<const std::string&>().empty();
    }
  }
  if (reasoning) out.emplace_back("reasoning_content");
  if (late_system) out.emplace_back("system.position");
  return out;
}

}  // namespace meridian::providers
