// Anthropic Messages <-> canonical OpenAI chat-completions translation for inbound clients.
#include "providers/anthropic_inbound.hpp"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "providers/inbound_json.hpp"
#include "providers/openai.hpp"

namespace meridian::providers {
namespace {

// ordered_json keeps the client's key order, so tool schemas and tool inputs reach the
// backend (and the model's prompt) exactly as the client wrote them.
using inbound::ojson;

// Anthropic tokens a flat estimate charges per image: a ~1.15 megapixel image at Anthropic's
// published width*height/750 rate, the size images are scaled down to.
constexpr std::uint64_t k_image_tokens = 1600;

using inbound::failure;
using inbound::given;
using inbound::join;
using inbound::member;
using inbound::parse_bounded;
using inbound::string_member;

failure fail_at(std::string param, std::string message) {
  return {std::move(message), std::move(param)};
}

// What a translation lane cannot carry, gathered while translating: members and blocks it leaves
// out (listed to the client, never silently), and the first one it could only refuse. A
// pass-through lane carries the client's bytes and needs neither.
struct lane_notes {
  std::vector<std::string> dropped;
  std::optional<request_error> untranslatable;

  void drop(std::string what) {
    if (std::find(dropped.begin(), dropped.end(), what) == dropped.end())
      dropped.push_back(std::move(what));
  }
  void cannot(std::string param, std::string message) {
    if (!untranslatable) untranslatable = request_error{std::move(message), std::move(param)};
  }
  // Cache breakpoints mark prefixes for Anthropic's cache; OpenAI-family backends cache
  // prefixes on their own, so only the marks are lost.
  void block(const ojson& b) {
    if (member(b, "cache_control")) drop("cache_control");
  }
};

// An image block's source as the URL an OpenAI image_url part carries.
failure image_url(const ojson& block, const std::string& where, std::string& url) {
  const ojson* src = member(block, "source");
  std::string type = src ? string_member(*src, "type") : "";
  if (type == "base64") {
    url = "data:" + string_member(*src, "media_type") + ";base64," + string_member(*src, "data");
    return {};
  }
  if (type == "url") {
    url = string_member(*src, "url");
    if (!url.empty()) return {};
  }
  return fail_at("messages", where + ".source: only base64 and url image sources translate");
}

ojson image_part(std::string url) {
  return ojson{{"type", "image_url"}, {"image_url", {{"url", std::move(url)}}}};
}

// An OpenAI message's content from its parts: a plain string when every part is text (the
// widest-supported form among OpenAI-compatible backends), otherwise the parts array.
ojson content_of(const std::vector<ojson>& parts) {
  std::vector<std::string> texts;
  for (const auto& p : parts) {
    if (p["type"] != "text") return ojson(parts);
    texts.push_back(p["text"].get<std::string>());
  }
  return join(texts);
}

// A tool_result's content: its text for the tool message; images are handed back in `images`
// because OpenAI tool messages carry text only.
failure tool_result_text(const ojson& block, const std::string& where, std::string& text,
                         std::vector<ojson>& images, lane_notes& notes) {
  const ojson* c = member(block, "content");
  if (c && c->is_string()) {
    text = c->get<std::string>();
  } else if (c && c->is_array()) {
    std::vector<std::string> texts;
    for (std::size_t i = 0; i < c->size(); ++i) {
      const ojson& b = (*c)[i];
      std::string type = string_member(b, "type");
      std::string at = where + ".content." + std::to_string(i);
      if (type == "text") {
        texts.push_back(string_member(b, "text"));
      } else if (type == "image") {
        std::string url;
        if (auto f = image_url(b, at, url))
          notes.cannot(f.param, f.message);  // a file source: only Anthropic can resolve it
        else
          images.push_back(image_part(std::move(url)));
      } else {
        notes.cannot("messages", at + ": tool_result content type '" + type +
                                     "' has no translation for this backend's dialect");
      }
    }
    text = join(texts);
  } else if (c && !c->is_null()) {
    return fail_at("messages", where + ".content: must be a string or an array of blocks");
  }
  const ojson* err = member(block, "is_error");
  if (err && err->is_boolean() && err->get<bool>()) text = "Error: " + text;
  return {};
}

// A user message: tool_result blocks become `role: tool` messages first (OpenAI requires them
// right after the assistant's tool_calls), then one user message with whatever remains.
failure user_message(const ojson& content, const std::string& where, ojson& out,
                     lane_notes& notes) {
  if (content.is_string()) {
    out.push_back({{"role", "user"}, {"content", content}});
    return {};
  }
  std::vector<ojson> parts;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const ojson& b = content[i];
    std::string at = where + ".content." + std::to_string(i);
    std::string type = string_member(b, "type");
    notes.block(b);
    if (type == "text") {
      parts.push_back({{"type", "text"}, {"text", string_member(b, "text")}});
    } else if (type == "image") {
      std::string url;
      if (auto f = image_url(b, at, url))
        notes.cannot(f.param, f.message);  // a file source: only Anthropic can resolve it
      else
        parts.push_back(image_part(std::move(url)));
    } else if (type == "tool_result") {
      std::string id = string_member(b, "tool_use_id");
      if (id.empty()) return fail_at("messages", at + ".tool_use_id: required string");
      std::string text;
      std::vector<ojson> images;
      if (auto f = tool_result_text(b, at, text, images, notes)) return f;
      out.push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", text}});
      for (auto& img : images) parts.push_back(std::move(img));
    } else if (type == "document" && member(b, "source") &&
               string_member(*member(b, "source"), "type") == "text") {
      parts.push_back({{"type", "text"}, {"text", string_member(*member(b, "source"), "data")}});
    } else if (type == "thinking" || type == "redacted_thinking") {
      // Only meaningful in assistant turns; a client echoing one here loses nothing.
    } else {
      // A PDF document, a search result, a container upload: Anthropic reads them, a
      // translation has nothing to turn them into.
      notes.cannot("messages", at + ": content block type '" + type +
                                   "' has no translation for this backend's dialect");
    }
  }
  if (!parts.empty()) out.push_back({{"role", "user"}, {"content", content_of(parts)}});
  return {};
}

failure assistant_message(const ojson& content, const std::string& where, ojson& out,
                          lane_notes& notes) {
  ojson msg{{"role", "assistant"}};
  if (content.is_string()) {
    msg["content"] = content;
    out.push_back(std::move(msg));
    return {};
  }
  std::vector<std::string> texts;
  std::string reasoning;
  ojson calls = ojson::array();
  for (std::size_t i = 0; i < content.size(); ++i) {
    const ojson& b = content[i];
    std::string at = where + ".content." + std::to_string(i);
    std::string type = string_member(b, "type");
    notes.block(b);
    if (type == "text") {
      texts.push_back(string_member(b, "text"));
    } else if (type == "thinking") {
      // Reasoning models (DeepSeek, Kimi) want their reasoning replayed in tool loops.
      reasoning += string_member(b, "thinking");
    } else if (type == "redacted_thinking") {
      // Encrypted for Anthropic's models only; no other backend can read it.
      notes.drop("redacted_thinking");
    } else if (type == "server_tool_use" || type.ends_with("_tool_result")) {
      // A server tool's call and result (web search, code execution) ran inside Anthropic's
      // platform; another backend has no such tool to have called.
      notes.drop(type);
    } else if (type == "tool_use") {
      std::string id = string_member(b, "id");
      std::string name = string_member(b, "name");
      if (id.empty() || name.empty())
        return fail_at("messages", at + ": tool_use needs string id and name");
      const ojson* input = member(b, "input");
      std::string args = input && !input->is_null() ? input->dump() : "{}";
      calls.push_back({{"id", id},
                       {"type", "function"},
                       {"function", {{"name", name}, {"arguments", std::move(args)}}}});
    } else {
      notes.cannot("messages", at + ": content block type '" + type +
                                   "' in an assistant message has no translation for this "
                                   "backend's dialect");
    }
  }
  // OpenAI wants null content beside tool_calls when there is no text.
  msg["content"] = texts.empty() && !calls.empty() ? ojson() : ojson(join(texts));
  if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
  if (!calls.empty()) msg["tool_calls"] = std::move(calls);
  out.push_back(std::move(msg));
  return {};
}

// The top-level `system` (param "system") or a system message inside `messages` (Claude Code's
// mid-conversation system beta; param "messages"), as one OpenAI system message.
failure system_message(const ojson& system, const std::string& where, const char* param,
                       ojson& out, lane_notes& notes) {
  std::string text;
  if (system.is_string()) {
    text = system.get<std::string>();
  } else if (system.is_array()) {
    std::vector<std::string> texts;
    for (const auto& b : system) {
      if (string_member(b, "type") != "text")
        return fail_at(param, where + ": system blocks must be text blocks");
      notes.block(b);
      texts.push_back(string_member(b, "text"));
    }
    text = join(texts);
  } else if (!system.is_null()) {
    return fail_at(param, where + ": must be a string or an array of text blocks");
  }
  if (!text.empty()) out.push_back({{"role", "system"}, {"content", std::move(text)}});
  return {};
}

failure tools(const ojson& in, ojson& out, lane_notes& notes) {
  if (!in.is_array()) return fail_at("tools", "tools must be an array");
  ojson list = ojson::array();
  for (std::size_t i = 0; i < in.size(); ++i) {
    const ojson& t = in[i];
    std::string type = string_member(t, "type");
    // Server tools (web_search_*, bash_*, text_editor_*, computer_*, code_execution_*) run
    // inside Anthropic's platform; no other backend can execute them, so they are left out.
    if (!type.empty() && type != "custom") {
      notes.drop("tools." + type);
      continue;
    }
    // A deferred tool (Claude Code's tool search) is loaded by Anthropic's platform on demand;
    // offered to another backend as an ordinary function, it would be called as one.
    if (const ojson* d = member(t, "defer_loading"); d && d->is_boolean() && d->get<bool>()) {
      notes.drop("tools.defer_loading");
      continue;
    }
    notes.block(t);
    std::string name = string_member(t, "name");
    if (name.empty()) return fail_at("tools", "tools." + std::to_string(i) + ".name: required");
    ojson fn{{"name", name}};
    if (const ojson* d = member(t, "description"); d && d->is_string()) fn["description"] = *d;
    const ojson* schema = member(t, "input_schema");
    fn["parameters"] = schema && schema->is_object() ? *schema : ojson{{"type", "object"}};
    list.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  if (!list.empty()) out["tools"] = std::move(list);
  return {};
}

failure tool_choice(const ojson& in, ojson& out) {
  std::string type = string_member(in, "type");
  if (type == "auto") {
    out["tool_choice"] = "auto";
  } else if (type == "any") {
    out["tool_choice"] = "required";
  } else if (type == "none") {
    out["tool_choice"] = "none";
  } else if (type == "tool") {
    std::string name = string_member(in, "name");
    if (name.empty()) return fail_at("tool_choice", "tool_choice.name: required for type tool");
    out["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
  } else {
    return fail_at("tool_choice", "tool_choice.type must be auto, any, tool or none");
  }
  const ojson* dp = member(in, "disable_parallel_tool_use");
  if (dp && dp->is_boolean() && dp->get<bool>() && type != "none")
    out["parallel_tool_calls"] = false;
  return {};
}

std::string message_id(const std::string& openai_id) {
  if (openai_id.rfind("msg_", 0) == 0) return openai_id;
  return "msg_" + (openai_id.empty() ? std::string("meridian") : openai_id);
}

std::string stop_reason(const std::string& finish_reason, bool used_tools) {
  if (finish_reason == "length") return "max_tokens";
  // Some backends (older vLLM, Ollama) say "stop" after tool calls; Anthropic clients loop
  // on stop_reason == "tool_use", so the calls themselves decide.
  if (finish_reason == "tool_calls" || finish_reason == "function_call" || used_tools)
    return "tool_use";
  return "end_turn";
}

ojson usage_json(const usage& u) {
  return {{"input_tokens", u.input},
          {"cache_creation_input_tokens", u.cache_write},
          {"cache_read_input_tokens", u.cache_read},
          {"output_tokens", u.completion_total()}};
}

std::optional<usage> usage_of(const ojson& obj) {
  const ojson* u = member(obj, "usage");
  if (!u || !u->is_object()) return std::nullopt;
  return parse_usage(nlohmann::json(*u));
}

sse_event event(const ojson& data) {
  return sse_event{data["type"].get<std::string>(), data.dump(), {}};
}

std::uint64_t text_bytes(const ojson& content) {
  if (content.is_string()) return content.get_ref<const std::string&>().size();
  std::uint64_t n = 0;
  if (!content.is_array()) return n;
  for (const auto& b : content) {
    std::string type = string_member(b, "type");
    if (type == "text") n += string_member(b, "text").size();
    if (type == "thinking") n += string_member(b, "thinking").size();
    if (type == "image") n += 4 * k_image_tokens;  // bytes that divide back to the allowance
    if (type == "tool_use") {
      n += string_member(b, "name").size();
      if (const ojson* in = member(b, "input")) n += in->dump().size();
    }
    if (type == "tool_result") {
      if (const ojson* c = member(b, "content")) n += text_bytes(*c);
    }
  }
  return n;
}

}  // namespace

// Top-level Anthropic members a translation lane leaves out, each listed when present: none of
// them has an OpenAI chat counterpart every backend accepts. `thinking` is the exception when it
// asks for reasoning: it becomes `reasoning_effort` (thinking_effort), and the backend's
// reasoning comes back as thinking blocks.
constexpr std::string_view k_dropped_members[] = {
    "thinking",    "top_k",   "context_management", "output_config", "service_tier",
    "container",   "mcp_servers", "inference_geo"};

namespace {

// A thinking block Anthropic issued carries its signature; one another backend's reasoning became
// (openai_response_to_anthropic writes an empty signature) does not.
bool unsigned_thinking(const ojson& block) {
  return string_member(block, "type") == "thinking" && string_member(block, "signature").empty();
}

// The request without its unsigned thinking blocks, or nullopt when it has none.
std::optional<std::string> without_unsigned_thinking(const ojson& in) {
  const ojson* messages = member(in, "messages");
  bool found = false;
  for (const auto& m : *messages)
    if (const ojson* c = member(m, "content"); c && c->is_array())
      found |= std::any_of(c->begin(), c->end(), unsigned_thinking);
  if (!found) return std::nullopt;
  ojson out = in;
  for (auto& m : out["messages"]) {
    if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
    ojson kept = ojson::array();
    for (auto& b : m["content"])
      if (!unsigned_thinking(b)) kept.push_back(std::move(b));
    m["content"] = std::move(kept);
  }
  return out.dump();
}

}  // namespace

// The members this translation carries over.
constexpr std::string_view k_mapped_members[] = {
    "model",       "max_tokens", "messages", "system", "stop_sequences", "temperature",
    "top_p",       "stream",     "tools",    "tool_choice", "metadata"};

namespace {

// The reasoning_effort an Anthropic `thinking` asks for: output_config.effort when given ("max"
// is "high"); else a budget_tokens under 4,096 is "low", under 16,384 "medium", more "high",
// and adaptive thinking "medium". Empty for disabled or absent thinking.
std::string thinking_effort(const ojson& in) {
  const ojson* t = member(in, "thinking");
  if (!t || !t->is_object()) return {};
  const std::string type = string_member(*t, "type");
  if (type != "enabled" && type != "adaptive") return {};
  std::string effort;
  if (const ojson* oc = member(in, "output_config"); oc && oc->is_object())
    effort = string_member(*oc, "effort");
  if (effort == "max") return "high";
  if (effort == "low" || effort == "medium" || effort == "high") return effort;
  if (type == "adaptive") return "medium";
  const ojson* b = member(*t, "budget_tokens");
  const double budget = b && b->is_number() ? b->get<double>() : 0;
  return budget < 4096 ? "low" : budget < 16384 ? "medium" : "high";
}

}  // namespace

std::variant<anthropic_translation, request_error> anthropic_request_to_openai(
    std::string_view body) {
  auto parsed = inbound::parse_request_object(body);
  if (auto* e = std::get_if<request_error>(&parsed)) return *e;
  const ojson& in = std::get<ojson>(parsed);

  const ojson* model = member(in, "model");
  if (!model || !model->is_string() || model->get_ref<const std::string&>().empty())
    return request_error{"model: required non-empty string", "model"};
  const ojson* max_tokens = member(in, "max_tokens");
  if (!max_tokens || !max_tokens->is_number_integer() ||
      (max_tokens->is_number_unsigned() ? max_tokens->get<std::uint64_t>() == 0
                                        : max_tokens->get<std::int64_t>() <= 0))
    return request_error{"max_tokens: required positive integer", "max_tokens"};
  const ojson* messages = member(in, "messages");
  if (!messages || !messages->is_array() || messages->empty())
    return request_error{"messages: required non-empty array", "messages"};

  lane_notes notes;
  ojson out{{"model", *model}};
  ojson msgs = ojson::array();
  if (const ojson* system = member(in, "system")) {
    if (auto f = system_message(*system, "system", "system", msgs, notes))
      return request_error{f.message, f.param};
  }
  for (std::size_t i = 0; i < messages->size(); ++i) {
    const ojson& m = (*messages)[i];
    std::string where = "messages." + std::to_string(i);
    std::string role = string_member(m, "role");
    const ojson* content = member(m, "content");
    if (!content || !(content->is_string() || content->is_array()))
      return request_error{where + ".content: must be a string or an array of blocks", "messages"};
    failure f;
    if (role == "user") {
      f = user_message(*content, where, msgs, notes);
    } else if (role == "assistant") {
      f = assistant_message(*content, where, msgs, notes);
    } else if (role == "system") {
      f = system_message(*content, where + ".content", "messages", msgs, notes);
    } else {
      f = fail_at("messages", where + ".role: must be 'user', 'assistant' or 'system'");
    }
    if (f) return request_error{f.message, f.param};
  }
  out["messages"] = std::move(msgs);
  out["max_tokens"] = *max_tokens;

  if (const ojson* stop = member(in, "stop_sequences"); stop && !stop->is_null()) {
    if (!stop->is_array() ||
        !std::all_of(stop->begin(), stop->end(), [](const ojson& s) { return s.is_string(); }))
      return request_error{"stop_sequences: must be an array of strings", "stop_sequences"};
    if (!stop->empty()) out["stop"] = *stop;
  }
  for (const char* key : {"temperature", "top_p"}) {
    const ojson* v = member(in, key);
    if (!v || v->is_null()) continue;
    if (!v->is_number()) return request_error{std::string(key) + ": must be a number", key};
    out[key] = *v;
  }
  if (const ojson* stream = member(in, "stream"); stream && !stream->is_null()) {
    if (!stream->is_boolean()) return request_error{"stream: must be a boolean", "stream"};
    if (stream->get<bool>()) out["stream"] = true;
  }
  if (const ojson* t = member(in, "tools"); t && !t->is_null()) {
    if (auto f = tools(*t, out, notes)) return request_error{f.message, f.param};
  }
  if (const ojson* tc = member(in, "tool_choice"); tc && !tc->is_null()) {
    if (auto f = tool_choice(*tc, out)) return request_error{f.message, f.param};
    // Every tool was a server tool, left out: OpenAI refuses a tool_choice without tools.
    const ojson* offered = member(in, "tools");
    if (offered && offered->is_array() && !offered->empty() && !out.contains("tools")) {
      out.erase("tool_choice");
      out.erase("parallel_tool_calls");
      notes.drop("tool_choice");
    }
  }
  if (const ojson* meta = member(in, "metadata")) {
    std::string user = string_member(*meta, "user_id");
    if (!user.empty()) out["user"] = user;
  }
  // thinking -> reasoning_effort: the reasoning control of OpenAI's reasoning models and, by
  // gemini.cpp, Gemini's thinkingConfig. On a model without one the gateway removes it again and
  // lists `thinking` (model_info::reasoning).
  std::string effort = thinking_effort(in);
  if (!effort.empty()) out["reasoning_effort"] = effort;
  for (std::string_view key : k_dropped_members) {
    const ojson* v = member(in, std::string(key).c_str());
    if (!given(v)) continue;
    // thinking: {type: disabled} asks for what a translation gives anyway.
    if (key == "thinking" && (!effort.empty() || string_member(*v, "type") == "disabled")) continue;
    // output_config holding only the effort that adaptive thinking became.
    if (key == "output_config" && !effort.empty() && v->is_object() && v->size() == 1 &&
        v->contains("effort"))
      continue;
    notes.drop(std::string(key));
  }
  // A member this translation does not know may change what the model does: listed too.
  for (const auto& [key, value] : in.items()) {
    if (std::find(std::begin(k_mapped_members), std::end(k_mapped_members), key) ==
            std::end(k_mapped_members) &&
        std::find(std::begin(k_dropped_members), std::end(k_dropped_members), key) ==
            std::end(k_dropped_members))
      notes.drop(key);
  }
  anthropic_translation result{out.dump(), std::move(notes.dropped),
                               std::move(notes.untranslatable)};
  result.signed_body = without_unsigned_thinking(in);
  if (result.signed_body) result.pass_through_dropped.push_back("thinking.unsigned");
  return result;
}

std::string openai_response_to_anthropic(std::string_view openai_body, std::string_view model) {
  return openai_response_to_anthropic(openai_body, model, std::nullopt);
}

namespace {

void add_notes(ojson& usage_obj, const answer_notes* notes) {
  if (!notes) return;
  if (notes->cost) usage_obj["cost"] = *notes->cost;
  if (notes->estimated) usage_obj["estimated"] = true;
}

}  // namespace

std::string openai_response_to_anthropic(std::string_view openai_body, std::string_view model,
                                         const std::optional<usage>& tokens,
                                         const answer_notes* notes) {
  auto [in, msg, finish] = inbound::first_choice_of(openai_body);

  ojson content = ojson::array();
  std::string reasoning = string_member(msg, "reasoning_content");
  if (reasoning.empty()) reasoning = string_member(msg, "reasoning");  // vLLM, OpenRouter
  if (!reasoning.empty())
    content.push_back({{"type", "thinking"}, {"thinking", reasoning}, {"signature", ""}});
  std::string text;
  if (const ojson* c = member(msg, "content"); c && c->is_string()) {
    text = c->get<std::string>();
  } else if (c && c->is_array()) {
    for (const auto& p : *c)
      if (string_member(p, "type") == "text") text += string_member(p, "text");
  }
  // A refusal is the only text a client will see for a declined request.
  if (text.empty()) text = string_member(msg, "refusal");
  if (!text.empty()) content.push_back({{"type", "text"}, {"text", text}});
  bool used_tools = false;
  if (const ojson* calls = member(msg, "tool_calls"); calls && calls->is_array()) {
    for (std::size_t i = 0; i < calls->size(); ++i) {
      const ojson& call = (*calls)[i];
      const ojson* fn = member(call, "function");
      std::string args = fn ? string_member(*fn, "arguments") : "";
      ojson input = parse_bounded(args);
      if (!input.is_object()) input = ojson::object();
      std::string id = string_member(call, "id");
      if (id.empty()) id = "toolu_" + std::to_string(i);
      content.push_back({{"type", "tool_use"},
                         {"id", id},
                         {"name", fn ? string_member(*fn, "name") : ""},
                         {"input", std::move(input)}});
      used_tools = true;
    }
  }

  usage u = tokens ? *tokens : usage_of(in).value_or(usage{});
  ojson out{{"id", message_id(string_member(in, "id"))},
            {"type", "message"},
            {"role", "assistant"},
            {"model", std::string(model)},
            {"content", std::move(content)},
            {"stop_reason", stop_reason(finish, used_tools)},
            {"stop_sequence", nullptr},
            {"usage", usage_json(u)}};
  add_notes(out["usage"], notes);
  if (notes && !notes->provider.empty()) out["provider"] = notes->provider;
  return out.dump();
}

anthropic_stream_encoder::anthropic_stream_encoder(std::string model) : model_(std::move(model)) {}

void anthropic_stream_encoder::start(const std::string& chunk_id, std::vector<sse_event>& out) {
  started_ = true;
  id_ = message_id(chunk_id);
  ojson message{{"id", id_},
                {"type", "message"},
                {"role", "assistant"},
                {"model", model_},
                {"content", ojson::array()},
                {"stop_reason", nullptr},
                {"stop_sequence", nullptr},
                {"usage", usage_json(tokens_.value_or(usage{}))}};
  if (!tokens_ && input_estimate_ > 0) {
    message["usage"]["input_tokens"] = input_estimate_;
    message["usage"]["estimated"] = true;
  }
  out.push_back(event({{"type", "message_start"}, {"message", std::move(message)}}));
}

void anthropic_stream_encoder::open_block(block_kind kind, const ojson& block,
                                          std::vector<sse_event>& out) {
  close_block(out);
  open_ = kind;
  out.push_back(
      event({{"type", "content_block_start"}, {"index", next_index_}, {"content_block", block}}));
  ++next_index_;
}

void anthropic_stream_encoder::close_block(std::vector<sse_event>& out) {
  if (open_ == block_kind::none) return;
  out.push_back(event({{"type", "content_block_stop"}, {"index", next_index_ - 1}}));
  open_ = block_kind::none;
  open_tool_ = -1;
}

void anthropic_stream_encoder::on_chunk(std::string_view chunk_json, std::vector<sse_event>& out) {
  if (ended_) return;
  ojson chunk = parse_bounded(chunk_json);
  if (!chunk.is_object()) return;
  if (auto u = usage_of(chunk)) tokens_ = u;
  if (!started_) start(string_member(chunk, "id"), out);

  const ojson* choices = member(chunk, "choices");
  if (!choices || !choices->is_array() || choices->empty()) return;
  const ojson& choice = (*choices)[0];
  if (std::string f = string_member(choice, "finish_reason"); !f.empty()) finish_reason_ = f;
  const ojson* delta = member(choice, "delta");
  if (!delta) return;

  auto text_delta = [&](block_kind kind, const ojson& start, const char* type, const char* key,
                        const std::string& piece) {
    if (open_ != kind) open_block(kind, start, out);
    out.push_back(event({{"type", "content_block_delta"},
                         {"index", next_index_ - 1},
                         {"delta", {{"type", type}, {key, piece}}}}));
  };
  std::string r = string_member(*delta, "reasoning_content");
  if (r.empty()) r = string_member(*delta, "reasoning");  // vLLM, OpenRouter
  if (!r.empty())
    text_delta(block_kind::thinking, {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}},
               "thinking_delta", "thinking", r);
  if (std::string c = string_member(*delta, "content"); !c.empty())
    text_delta(block_kind::text, {{"type", "text"}, {"text", ""}}, "text_delta", "text", c);

  const ojson* calls = member(*delta, "tool_calls");
  if (!calls || !calls->is_array()) return;
  for (const auto& call : *calls) {
    const ojson* idx = member(call, "index");
    long index = idx && idx->is_number_integer() ? idx->get<long>() : 0;
    const ojson* fn = member(call, "function");
    auto known = std::find_if(tool_blocks_.begin(), tool_blocks_.end(),
                              [&](const auto& p) { return p.first == index; });
    int block;
    if (open_ == block_kind::tool && open_tool_ == index) {
      block = next_index_ - 1;
    } else if (known != tool_blocks_.end()) {
      // A fragment for a tool call whose block was already closed (interleaved parallel calls):
      // the SDKs accumulate by index, so it still lands in the right block.
      block = known->second;
    } else {
      std::string id = string_member(call, "id");
      if (id.empty()) id = "toolu_" + std::to_string(next_index_) + "_" + id_.substr(4);
      ojson start{{"type", "tool_use"},
                  {"id", id},
                  {"name", fn ? string_member(*fn, "name") : ""},
                  {"input", ojson::object()}};
      open_block(block_kind::tool, start, out);
      open_tool_ = index;
      block = next_index_ - 1;
      tool_blocks_.emplace_back(index, block);
    }
    std::string args = fn ? string_member(*fn, "arguments") : "";
    if (args.empty()) continue;
    out.push_back(event({{"type", "content_block_delta"},
                         {"index", block},
                         {"delta", {{"type", "input_json_delta"}, {"partial_json", args}}}}));
  }
}

void anthropic_stream_encoder::finish(const std::optional<usage>& tokens,
                                      std::vector<sse_event>& out, const answer_notes* notes) {
  if (ended_) return;
  if (tokens) tokens_ = tokens;
  if (!started_) start("", out);
  close_block(out);
  ended_ = true;
  // Input and cache counts ride along too: OpenAI-style streams report usage only at the end,
  // after message_start went out with zeros, and current SDKs read them from message_delta.
  ojson delta{{"type", "message_delta"},
              {"delta",
               {{"stop_reason", stop_reason(finish_reason_, !tool_blocks_.empty())},
                {"stop_sequence", nullptr}}},
              {"usage", usage_json(tokens_.value_or(usage{}))}};
  add_notes(delta["usage"], notes);
  if (notes && !notes->provider.empty()) delta["provider"] = notes->provider;
  out.push_back(event(delta));
  out.push_back(event({{"type", "message_stop"}}));
}

void anthropic_stream_encoder::fail(std::string_view message, std::vector<sse_event>& out) {
  if (ended_) return;
  ended_ = true;
  out.push_back(event(
      {{"type", "error"}, {"error", {{"type", "api_error"}, {"message", std::string(message)}}}}));
}

std::uint64_t estimate_tokens(std::string_view anthropic_request_body) {
  ojson in = parse_bounded(anthropic_request_body);
  if (!in.is_object()) return (anthropic_request_body.size() + 3) / 4;
  std::uint64_t bytes = 0;
  std::uint64_t overhead = 0;
  if (const ojson* system = member(in, "system")) bytes += text_bytes(*system);
  if (const ojson* messages = member(in, "messages"); messages && messages->is_array()) {
    for (const auto& m : *messages) {
      overhead += 4;
      if (const ojson* c = member(m, "content")) bytes += text_bytes(*c);
    }
  }
  if (const ojson* tools = member(in, "tools"); tools && tools->is_array()) {
    for (const auto& t : *tools) {
      overhead += 8;
      bytes += t.dump().size();
    }
  }
  return (bytes + 3) / 4 + overhead;
}

}  // namespace meridian::providers
