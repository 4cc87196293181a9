// The Anthropic Messages dialect (POST /v1/messages): reply planning, the message body, the
// `event:`/`data:` stream and Anthropic's error bodies.
#include "tools/sim/detail.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::sim {

using json = nlohmann::json;
using detail::join;
using detail::last_user_text;
using detail::message_tokens;
using detail::text_bytes;

namespace {

bool has_cache_control(const json& j) {
  if (j.is_object()) {
    if (j.contains("cache_control")) return true;
    for (const auto& [k, v] : j.items()) {
      if (has_cache_control(v)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (has_cache_control(v)) return true;
    }
  }
  return false;
}

// Tool input as streamed: the JSON text in three pieces, as Anthropic splits it arbitrarily.
std::vector<std::string> json_fragments(const std::string& text) {
  const std::size_t n = text.size();
  return {text.substr(0, n / 3), text.substr(n / 3, n / 3), text.substr(2 * (n / 3))};
}

std::string anthropic_event(const nlohmann::ordered_json& data) {
  return "event: " + data["type"].get<std::string>() + "\ndata: " + data.dump() + "\n\n";
}

// The Anthropic tool block's position: after the text block when there is one.
bool anthropic_has_text(const anthropic_reply& r) {
  return !r.tokens.empty() || !r.tool;
}

nlohmann::ordered_json anthropic_usage(const anthropic_reply& r, int output_tokens) {
  return {{"input_tokens", r.input_tokens},
          {"cache_creation_input_tokens", r.cache_creation_input_tokens},
          {"cache_read_input_tokens", r.cache_read_input_tokens},
          {"output_tokens", output_tokens}};
}

}  // namespace

int anthropic_reply::output_tokens() const {
  return static_cast<int>(tokens.size()) + (tool ? k_tool_call_tokens : 0);
}

int count_anthropic_prompt_tokens(const nlohmann::json& request) {
  if (!request.is_object()) return 0;
  int total = 0;
  if (auto it = request.find("messages"); it != request.end()) total += count_prompt_tokens(*it);
  if (auto it = request.find("system"); it != request.end() && !it->is_null()) {
    total += message_tokens(text_bytes(*it));
  }
  return total;
}

anthropic_reply plan_anthropic_reply(const nlohmann::json& request, std::string_view provider,
                                     int reply_tokens_config, std::uint64_t serial) {
  if (!request.is_object()) throw request_error("request body must be a JSON object");
  auto model = request.find("model");
  if (model == request.end() || !model->is_string()) throw request_error("model: Field required");
  auto messages = request.find("messages");
  if (messages == request.end() || !messages->is_array()) {
    throw request_error("messages: Field required");
  }
  auto max_tokens = request.find("max_tokens");
  if (max_tokens == request.end() || !max_tokens->is_number_integer()) {
    throw request_error("max_tokens: Field required");
  }
  const auto cap = max_tokens->get<std::int64_t>();
  if (cap < 1) throw request_error("max_tokens: Input should be greater than or equal to 1");

  anthropic_reply r;
  r.id = "msg_sim_" + std::to_string(serial);
  r.model = model->get<std::string>();
  int count = std::max(0, reply_tokens_config);
  const bool capped = cap < count;
  if (capped) count = static_cast<int>(cap);
  const std::string last_user = last_user_text(*messages, "content", false);

  std::string tool_name;
  nlohmann::json tool_schema;
  if (auto tools = request.find("tools"); tools != request.end() && tools->is_array()) {
    for (const auto& t : *tools) {
      // A deferred tool (Claude Code's tool search) is not offered to the model yet.
      if (t.is_object() && t.contains("name") && t["name"].is_string() &&
          !t.value("defer_loading", false)) {
        tool_name = t["name"].get<std::string>();
        tool_schema = t.value("input_schema", nlohmann::json());
        break;
      }
    }
  }
  if (!tool_name.empty() && mentions_weather(last_user)) {
    // A short preamble (the greeting without the echo) before the call, as Claude tends to.
    r.tokens = reply_tokens(provider, r.model, last_user, std::min(count, 8));
    r.tool = tool_call{"toolu_sim_" + std::to_string(serial), tool_name,
                       tool_arguments(tool_schema)};
    r.stop_reason = "tool_use";
  } else {
    r.tokens = reply_tokens(provider, r.model, last_user, count);
    r.stop_reason = capped ? "max_tokens" : "end_turn";
  }

  const int prompt = count_anthropic_prompt_tokens(request);
  if (has_cache_control(request)) {
    auto system = request.find("system");
    if (system != request.end() && !system->is_null()) {
      r.cache_read_input_tokens = message_tokens(text_bytes(*system));
    }
  }
  r.input_tokens = prompt - r.cache_read_input_tokens;
  return r;
}

nlohmann::json anthropic_message(const anthropic_reply& r) {
  json content = json::array();
  if (anthropic_has_text(r)) content.push_back({{"type", "text"}, {"text", join(r.tokens)}});
  if (r.tool) {
    content.push_back({{"type", "tool_use"},
                       {"id", r.tool->id},
                       {"name", r.tool->name},
                       {"input", r.tool->input}});
  }
  return {{"id", r.id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", r.model},
          {"content", std::move(content)},
          {"stop_reason", r.stop_reason},
          {"stop_sequence", nullptr},
          {"usage", anthropic_usage(r, r.output_tokens())}};
}

stream_script anthropic_stream(const anthropic_reply& r) {
  using oj = nlohmann::ordered_json;
  stream_script s;
  s.prelude.push_back(anthropic_event({{"type", "message_start"},
                                       {"message",
                                        {{"id", r.id},
                                         {"type", "message"},
                                         {"role", "assistant"},
                                         {"model", r.model},
                                         {"content", oj::array()},
                                         {"stop_reason", nullptr},
                                         {"stop_sequence", nullptr},
                                         {"usage", anthropic_usage(r, 1)}}}}));
  const bool text = anthropic_has_text(r);
  if (text) {
    s.prelude.push_back(anthropic_event({{"type", "content_block_start"},
                                         {"index", 0},
                                         {"content_block", {{"type", "text"}, {"text", ""}}}}));
  }
  s.prelude.push_back(anthropic_event({{"type", "ping"}}));
  for (const auto& t : r.tokens) {
    s.content.push_back(anthropic_event({{"type", "content_block_delta"},
                                         {"index", 0},
                                         {"delta", {{"type", "text_delta"}, {"text", t}}}}));
  }
  if (text) s.epilogue.push_back(anthropic_event({{"type", "content_block_stop"}, {"index", 0}}));
  if (r.tool) {
    const int index = text ? 1 : 0;
    s.epilogue.push_back(anthropic_event({{"type", "content_block_start"},
                                          {"index", index},
                                          {"content_block",
                                           {{"type", "tool_use"},
                                            {"id", r.tool->id},
                                            {"name", r.tool->name},
                                            {"input", oj::object()}}}}));
    for (const auto& piece : json_fragments(r.tool->input.dump())) {
      s.epilogue.push_back(
          anthropic_event({{"type", "content_block_delta"},
                           {"index", index},
                           {"delta", {{"type", "input_json_delta"}, {"partial_json", piece}}}}));
    }
    s.epilogue.push_back(anthropic_event({{"type", "content_block_stop"}, {"index", index}}));
  }
  s.epilogue.push_back(
      anthropic_event({{"type", "message_delta"},
                       {"delta", {{"stop_reason", r.stop_reason}, {"stop_sequence", nullptr}}},
                       {"usage", {{"output_tokens", r.output_tokens()}}}}));
  s.epilogue.push_back(anthropic_event({{"type", "message_stop"}}));
  return s;
}

std::string anthropic_error_body(int status, std::string_view message) {
  std::string_view type = "invalid_request_error";
  switch (status) {
    case 401:
      type = "authentication_error";
      break;
    case 402:
      type = "billing_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 404:
      type = "not_found_error";
      break;
    case 413:
      type = "request_too_large";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 504:
      type = "timeout_error";
      break;
    case 529:
      type = "overloaded_error";
      break;
    default:
      if (status >= 500) type = "api_error";
  }
  nlohmann::ordered_json j = {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
  return j.dump();
}

}  // namespace meridian::sim
