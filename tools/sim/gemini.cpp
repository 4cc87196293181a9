// The Gemini dialect (POST /v1beta/models/{model}:generateContent and :streamGenerateContent):
// reply planning, the response, its SSE and JSON-array streams and Google's error bodies.
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

nlohmann::ordered_json gemini_usage(const gemini_reply& r, int candidates) {
  return {{"promptTokenCount", r.prompt_tokens},
          {"candidatesTokenCount", candidates},
          {"totalTokenCount", r.prompt_tokens + candidates + r.thoughts_tokens()},
          {"thoughtsTokenCount", r.thoughts_tokens()},
          {"cachedContentTokenCount", r.cached_tokens}};
}

nlohmann::ordered_json gemini_chunk(const gemini_reply& r, nlohmann::ordered_json parts,
                                    const std::string* finish_reason, int candidates) {
  nlohmann::ordered_json candidate = {
      {"content", {{"role", "model"}, {"parts", std::move(parts)}}}};
  if (finish_reason) candidate["finishReason"] = *finish_reason;
  candidate["index"] = 0;
  return {{"candidates", nlohmann::ordered_json::array({std::move(candidate)})},
          {"usageMetadata", gemini_usage(r, candidates)},
          {"modelVersion", r.model},
          {"responseId", r.response_id}};
}

nlohmann::ordered_json gemini_function_part(const tool_call& t) {
  return {{"functionCall", {{"name", t.name}, {"args", t.input}}}};
}

nlohmann::ordered_json gemini_thought_part() {
  return {{"text", "thinking..."}, {"thought", true}};
}

// The streamed chunks, split like stream_script: a thought chunk, one chunk per token, then a
// tool call or, for an empty reply, a bare finish.
struct gemini_chunks {
  std::vector<nlohmann::ordered_json> prelude, content, epilogue;
};

gemini_chunks make_gemini_chunks(const gemini_reply& r) {
  using oj = nlohmann::ordered_json;
  gemini_chunks c;
  if (r.thought)
    c.prelude.push_back(gemini_chunk(r, oj::array({gemini_thought_part()}), nullptr, 0));
  const int n = static_cast<int>(r.tokens.size());
  for (int i = 0; i < n; ++i) {
    const bool last = i + 1 == n && !r.tool;
    c.content.push_back(gemini_chunk(r,
                                     oj::array({{{"text", r.tokens[static_cast<std::size_t>(i)]}}}),
                                     last ? &r.finish_reason : nullptr, i + 1));
  }
  if (r.tool) {
    c.epilogue.push_back(gemini_chunk(r, oj::array({gemini_function_part(*r.tool)}),
                                      &r.finish_reason, r.candidates_tokens()));
  } else if (n == 0) {
    c.epilogue.push_back(gemini_chunk(r, oj::array({{{"text", ""}}}), &r.finish_reason, 0));
  }
  return c;
}

}  // namespace

int gemini_reply::candidates_tokens() const {
  return static_cast<int>(tokens.size()) + (tool ? k_tool_call_tokens : 0);
}

int gemini_reply::thoughts_tokens() const {
  return thought ? k_thought_tokens : 0;
}

int count_gemini_prompt_tokens(const nlohmann::json& request) {
  if (!request.is_object()) return 0;
  int total = 0;
  if (auto it = request.find("contents"); it != request.end() && it->is_array()) {
    for (const auto& c : *it) {
      total += message_tokens(c.is_object() && c.contains("parts") ? text_bytes(c["parts"]) : 0);
    }
  }
  if (auto it = request.find("systemInstruction"); it != request.end() && !it->is_null()) {
    total += message_tokens(it->is_object() && it->contains("parts") ? text_bytes((*it)["parts"])
                                                                     : text_bytes(*it));
  }
  return total;
}

gemini_reply plan_gemini_reply(const nlohmann::json& request, std::string_view provider,
                               std::string_view model, int reply_tokens_config,
                               std::uint64_t serial) {
  if (!request.is_object()) throw request_error("Invalid JSON payload received.");
  auto contents = request.find("contents");
  if (contents == request.end() || !contents->is_array() || contents->empty()) {
    throw request_error("* GenerateContentRequest.contents: contents is not specified");
  }
  gemini_reply r;
  r.response_id = "sim-" + std::to_string(serial);
  r.model = std::string(model);

  int count = std::max(0, reply_tokens_config);
  bool capped = false;
  bool thinking_config = false;
  if (auto gc = request.find("generationConfig"); gc != request.end() && gc->is_object()) {
    if (auto m = gc->find("maxOutputTokens"); m != gc->end() && m->is_number_integer()) {
      auto cap = m->get<std::int64_t>();
      if (cap >= 0 && cap < count) {
        count = static_cast<int>(cap);
        capped = true;
      }
    }
    if (auto tc = gc->find("thinkingConfig"); tc != gc->end() && tc->is_object()) {
      // A budget of 0 switches thinking off on Flash models.
      auto budget = tc->find("thinkingBudget");
      thinking_config = !(budget != tc->end() && budget->is_number() && *budget == 0);
    }
  }
  r.thought = thinking_config || model.find("thinking") != std::string_view::npos ||
              model.find("pro") != std::string_view::npos;

  const std::string last_user = last_user_text(*contents, "parts", true);
  std::string tool_name;
  nlohmann::json tool_schema;
  if (auto tools = request.find("tools"); tools != request.end() && tools->is_array()) {
    for (const auto& t : *tools) {
      if (!t.is_object()) continue;
      for (const char* key : {"functionDeclarations", "function_declarations"}) {
        auto decls = t.find(key);
        if (decls == t.end() || !decls->is_array()) continue;
        for (const auto& d : *decls) {
          if (d.is_object() && d.contains("name") && d["name"].is_string()) {
            tool_name = d["name"].get<std::string>();
            tool_schema = d.contains("parameters") ? d["parameters"]
                                                   : d.value("parametersJsonSchema", nlohmann::json());
            break;
          }
        }
        if (!tool_name.empty()) break;
      }
      if (!tool_name.empty()) break;
    }
  }
  if (!tool_name.empty() && mentions_weather(last_user)) {
    r.tool = tool_call{"", tool_name, tool_arguments(tool_schema)};
    r.finish_reason = "STOP";
  } else {
    r.tokens = reply_tokens(provider, model, last_user, count);
    r.finish_reason = capped ? "MAX_TOKENS" : "STOP";
  }

  r.prompt_tokens = count_gemini_prompt_tokens(request);
  if (auto cc = request.find("cachedContent"); cc != request.end() && cc->is_string()) {
    auto si = request.find("systemInstruction");
    if (si != request.end() && !si->is_null()) {
      json only_system = {{"systemInstruction", *si}};
      r.cached_tokens = count_gemini_prompt_tokens(only_system);
    }
  }
  return r;
}

nlohmann::json gemini_response(const gemini_reply& r) {
  using oj = nlohmann::ordered_json;
  oj parts = oj::array();
  if (r.thought) parts.push_back(gemini_thought_part());
  if (!r.tokens.empty() || !r.tool) parts.push_back({{"text", join(r.tokens)}});
  if (r.tool) parts.push_back(gemini_function_part(*r.tool));
  return json::parse(
      gemini_chunk(r, std::move(parts), &r.finish_reason, r.candidates_tokens()).dump());
}

stream_script gemini_stream(const gemini_reply& r) {
  const auto chunks = make_gemini_chunks(r);
  auto event = [](const nlohmann::ordered_json& j) { return "data: " + j.dump() + "\r\n\r\n"; };
  stream_script s;
  for (const auto& c : chunks.prelude) s.prelude.push_back(event(c));
  for (const auto& c : chunks.content) s.content.push_back(event(c));
  for (const auto& c : chunks.epilogue) s.epilogue.push_back(event(c));
  return s;
}

nlohmann::json gemini_stream_array(const gemini_reply& r) {
  const auto chunks = make_gemini_chunks(r);
  json out = json::array();
  for (const auto* part : {&chunks.prelude, &chunks.content, &chunks.epilogue}) {
    for (const auto& c : *part) out.push_back(json::parse(c.dump()));
  }
  return out;
}

std::string gemini_error_body(int status, std::string_view message) {
  std::string_view code = "UNKNOWN";
  switch (status) {
    case 400:
      code = "INVALID_ARGUMENT";
      break;
    case 401:
      code = "UNAUTHENTICATED";
      break;
    case 403:
      code = "PERMISSION_DENIED";
      break;
    case 404:
      code = "NOT_FOUND";
      break;
    case 409:
      code = "ABORTED";
      break;
    case 429:
      code = "RESOURCE_EXHAUSTED";
      break;
    case 499:
      code = "CANCELLED";
      break;
    case 500:
      code = "INTERNAL";
      break;
    case 501:
      code = "UNIMPLEMENTED";
      break;
    case 503:
      code = "UNAVAILABLE";
      break;
    case 504:
      code = "DEADLINE_EXCEEDED";
      break;
    default:
      if (status >= 400 && status < 500) code = "FAILED_PRECONDITION";
      if (status >= 500) code = "INTERNAL";
  }
  nlohmann::ordered_json j = {
      {"error", {{"code", status}, {"message", message}, {"status", code}}}};
  return j.dump();
}

}  // namespace meridian::sim
