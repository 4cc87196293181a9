// Google Gemini dialect: OpenAI chat requests to generateContent, answers and SSE events back.
#include "providers/gemini.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "providers/translate.hpp"

namespace meridian::providers {

namespace {

using json = nlohmann::json;

// Gemini signs the thinking behind a function call (`thoughtSignature` beside the functionCall
// part) and, on thinking models, wants the signature back with the call in the next turn. Chat,
// Anthropic and Responses clients keep nothing but the call's id, so the signature rides in the
// id: "<id>__ts__<signature as base64url>", a form Anthropic's id pattern ([A-Za-z0-9_-]) and
// every SDK accept.
constexpr std::string_view k_signature_mark = "__ts__";

std::string id_with_signature(std::string id, const std::string& signature) {
  if (signature.empty()) return id;
  id.append(k_signature_mark);
  for (char c : signature) {
    if (c == '=') continue;
    id += c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return id;
}

// The signature a call id carries (base64 again), or empty.
std::string signature_of(std::string_view id) {
  const auto at = id.find(k_signature_mark);
  if (at == std::string_view::npos) return {};
  std::string out;
  for (char c : id.substr(at + k_signature_mark.size())) out += c == '-' ? '+' : c == '_' ? '/' : c;
  while (out.size() % 4 != 0) out += '=';
  return out;
}

std::string param_of(std::size_t i, const char* member) {
  return "messages[" + std::to_string(i) + "]." + member;
}

// Gemini's `parameters` and `responseSchema` take an OpenAPI subset and reject keywords such
// as additionalProperties (which OpenAI strict-mode clients always send) with a 400. Those
// keywords constrain nothing the model is told anyway, so they are removed from every schema
// node; property names are left alone.
json gemini_schema(json s) {
  if (!s.is_object()) return s;
  s.erase("$schema");
  s.erase("additionalProperties");
  if (auto p = s.find("properties"); p != s.end() && p->is_object())
    for (auto& [name, sub] : p->items()) sub = gemini_schema(std::move(sub));
  if (auto it = s.find("items"); it != s.end()) *it = gemini_schema(std::move(*it));
  for (const char* key : {"anyOf", "oneOf", "allOf"})
    if (auto it = s.find(key); it != s.end() && it->is_array())
      for (json& sub : *it) sub = gemini_schema(std::move(sub));
  return s;
}

std::optional<request_error> user_parts(const json& content, const std::string& param, json& out) {
  if (content.is_string()) {
    // Gemini rejects empty text parts.
    if (!content.get_ref<const std::string&>().empty()) out.push_back({{"text", content}});
    return std::nullopt;
  }
  if (!content.is_array()) return request_error{"'content' must be a string or an array", param};
  for (const json& part : content) {
    std::string type = part.is_object() && part.contains("type") && part["type"].is_string()
                           ? part["type"].get<std::string>()
                           : std::string();
    if (type == "text" && part.contains("text") && part["text"].is_string()) {
      if (!part["text"].get_ref<const std::string&>().empty())
        out.push_back({{"text", part["text"]}});
    } else if (type == "image_url" && part.contains("image_url")) {
      const json& iu = part["image_url"];
      const json* url = iu.is_string()                         ? &iu
                        : iu.is_object() && iu.contains("url") ? &iu["url"]
                                                               : nullptr;
      if (!url || !url->is_string())
        return request_error{"an image_url part needs a 'url' string", param};
      const auto& u = url->get_ref<const std::string&>();
      if (auto d = parse_data_url(u))
        out.push_back({{"inlineData", {{"mimeType", d->media_type}, {"data", d->data}}}});
      else
        out.push_back({{"fileData", {{"mimeType", guess_image_mime(u)}, {"fileUri", u}}}});
    } else {
      return request_error{"content part type '" + type + "' is not supported by gemini", param};
    }
  }
  return std::nullopt;
}

// Gemini wants user and model turns to alternate and all function responses to one model
// turn in a single content; consecutive contents of one role are therefore merged.
void append_content(json& contents, const char* role, json parts) {
  if (parts.empty()) return;
  if (!contents.empty() && contents.back()["role"] == role) {
    json& dst = contents.back()["parts"];
    for (json& p : parts) dst.push_back(std::move(p));
    return;
  }
  contents.push_back({{"role", role}, {"parts", std::move(parts)}});
}

std::optional<request_error> encode_messages(const json& in, std::string& system, json& contents) {
  std::map<std::string, std::string> call_names;  // tool_call_id -> function name
  for (std::size_t i = 0; i < in.size(); ++i) {
    const json& m = in[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return request_error{"each message needs a string 'role'", param_of(i, "role")};
    const std::string role = m["role"].get<std::string>();
    const json content = m.contains("content") ? m["content"] : json();
    if (role == "system" || role == "developer") {
      // One systemInstruction per request: system messages anywhere are joined in order.
      auto text = content_text(content);
      if (!text) return request_error{"system content must be text", param_of(i, "content")};
      if (!text->empty()) {
        if (!system.empty()) system.append("\n\n");
        system.append(*text);
      }
    } else if (role == "user") {
      json parts = json::array();
      if (auto err = user_parts(content, param_of(i, "content"), parts)) return err;
      append_content(contents, "user", std::move(parts));
    } else if (role == "assistant") {
      // reasoning_content is dropped: Gemini takes back thought signatures, not thought text.
      json parts = json::array();
      auto text = content_text(content);
      if (!text) return request_error{"assistant content must be text", param_of(i, "content")};
      if (!text->empty()) parts.push_back({{"text", *text}});
      if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
        if (!calls->is_array())
          return request_error{"'tool_calls' must be an array", param_of(i, "tool_calls")};
        for (const json& call : *calls) {
          auto args = tool_call_arguments(call, param_of(i, "tool_calls"));
          if (auto* err = std::get_if<request_error>(&args)) return *err;
          const json& fn = call["function"];
          if (!fn.contains("name") || !fn["name"].is_string())
            return request_error{"a tool call needs a function 'name'", param_of(i, "tool_calls")};
          std::string signature;
          if (call.contains("id") && call["id"].is_string()) {
            call_names[call["id"].get<std::string>()] = fn["name"].get<std::string>();
            signature = signature_of(call["id"].get_ref<const std::string&>());
          }
          json part = {{"functionCall",
                        {{"name", fn["name"]}, {"args", std::move(std::get<json>(args))}}}};
          if (!signature.empty()) part["thoughtSignature"] = signature;
          parts.push_back(std::move(part));
        }
      }
      append_content(contents, "model", std::move(parts));
    } else if (role == "tool") {
      // Gemini names the function a response belongs to, OpenAI the call id: the name comes
      // from the assistant message that made the call.
      auto id = m.find("tool_call_id");
      auto name = id != m.end() && id->is_string() ? call_names.find(id->get<std::string>())
                                                   : call_names.end();
      if (name == call_names.end())
        return request_error{"'tool_call_id' does not match an earlier assistant tool call",
                             param_of(i, "tool_call_id")};
      auto text = content_text(content);
      if (!text) return request_error{"tool content must be text", param_of(i, "content")};
      json parsed = json::parse(*text, nullptr, false);
      json value = !parsed.is_discarded() && parsed.is_object() ? std::move(parsed) : json(*text);
      append_content(
          contents, "user",
          json::array(
              {{{"functionResponse",
                 {{"name", name->second}, {"response", {{"content", std::move(value)}}}}}}}));
    } else {
      return request_error{"message role '" + role + "' is not supported by gemini",
                           param_of(i, "role")};
    }
  }
  return std::nullopt;
}

std::optional<request_error> encode_tools(const json& req, json& out) {
  if (auto tools = req.find("tools"); tools != req.end() && !tools->is_null()) {
    if (!tools->is_array()) return request_error{"'tools' must be an array", "tools"};
    json decls = json::array();
    for (const json& t : *tools) {
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") ||
          !t["function"]["name"].is_string())
        return request_error{"only function tools with a name are supported by gemini", "tools"};
      const json& fn = t["function"];
      json decl = {{"name", fn["name"]}};
      if (fn.contains("description") && fn["description"].is_string())
        decl["description"] = fn["description"];
      if (fn.contains("parameters") && fn["parameters"].is_object())
        decl["parameters"] = gemini_schema(fn["parameters"]);
      decls.push_back(std::move(decl));
    }
    if (!decls.empty()) out["tools"] = json::array({{{"functionDeclarations", std::move(decls)}}});
  }
  if (auto tc = req.find("tool_choice"); tc != req.end() && !tc->is_null()) {
    json cfg;
    if (*tc == "auto") {
      cfg = {{"mode", "AUTO"}};
    } else if (*tc == "none") {
      cfg = {{"mode", "NONE"}};
    } else if (*tc == "required") {
      cfg = {{"mode", "ANY"}};
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      cfg = {{"mode", "ANY"}, {"allowedFunctionNames", json::array({(*tc)["function"]["name"]})}};
    } else {
      return request_error{"'tool_choice' must be auto, none, required or a named function",
                           "tool_choice"};
    }
    out["toolConfig"] = {{"functionCallingConfig", std::move(cfg)}};
  }
  return std::nullopt;
}

std::optional<request_error> encode_generation(const json& req, json& out) {
  json gen = json::object();
  auto max = max_output_tokens(req);
  if (auto* err = std::get_if<request_error>(&max)) return *err;
  if (auto m = std::get<std::optional<std::uint64_t>>(max)) gen["maxOutputTokens"] = *m;
  auto stops = stop_sequences(req);
  if (auto* err = std::get_if<request_error>(&stops)) return *err;
  if (!std::get<json>(stops).empty()) gen["stopSequences"] = std::move(std::get<json>(stops));
  static constexpr std::pair<const char*, const char*> k_numbers[] = {
      {"temperature", "temperature"},
      {"top_p", "topP"},
      {"presence_penalty", "presencePenalty"},
      {"frequency_penalty", "frequencyPenalty"},
      {"seed", "seed"},
  };
  for (const auto& [from, to] : k_numbers) {
    auto it = req.find(from);
    if (it == req.end() || it->is_null()) continue;
    if (!it->is_number())
      return request_error{std::string("'") + from + "' must be a number", from};
    gen[to] = *it;
  }
  if (auto n = req.find("n"); n != req.end() && n->is_number() && n->get<double>() > 1)
    return request_error{"'n' greater than 1 is not supported by gemini", "n"};
  if (auto rf = req.find("response_format"); rf != req.end() && rf->is_object()) {
    std::string type = rf->value("type", "");
    if (type == "json_object") {
      gen["responseMimeType"] = "application/json";
    } else if (type == "json_schema") {
      const json& js = rf->contains("json_schema") ? (*rf)["json_schema"] : json();
      if (!js.is_object() || !js.contains("schema") || !js["schema"].is_object())
        return request_error{"response_format json_schema needs a 'schema' object",
                             "response_format"};
      gen["responseMimeType"] = "application/json";
      gen["responseSchema"] = gemini_schema(js["schema"]);
    }
  }
  // reasoning_effort (an Anthropic client's thinking, a Responses client's reasoning.effort) ->
  // a thinking budget, with the thoughts returned so that they come back as reasoning.
  if (auto e = req.find("reasoning_effort"); e != req.end() && !e->is_null()) {
    static constexpr std::pair<std::string_view, int> k_budgets[] = {
        {"none", 0}, {"minimal", 512}, {"low", 1024}, {"medium", 8192}, {"high", 24576}};
    const auto* found = std::find_if(std::begin(k_budgets), std::end(k_budgets), [&](auto& b) {
      return e->is_string() && e->get_ref<const std::string&>() == b.first;
    });
    if (found == std::end(k_budgets))
      return request_error{"'reasoning_effort' must be none, minimal, low, medium or high",
                           "reasoning_effort"};
    gen["thinkingConfig"] = {{"thinkingBudget", found->second},
                             {"includeThoughts", found->second > 0}};
  }
  if (!gen.empty()) out["generationConfig"] = std::move(gen);
  return std::nullopt;
}

std::variant<upstream_request, request_error> encode(std::string_view body, bool stream,
                                                     std::string_view upstream_model) {
  json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object())
    return request_error{"request body must be a JSON object", ""};
  if (!req.contains("messages") || !req["messages"].is_array())
    return request_error{"'messages' must be an array", "messages"};

  json out = json::object();
  std::string system;
  json contents = json::array();
  if (auto err = encode_messages(req["messages"], system, contents)) return *err;
  out["contents"] = std::move(contents);
  if (!system.empty()) out["systemInstruction"] = {{"parts", json::array({{{"text", system}}})}};
  if (auto err = encode_tools(req, out)) return *err;
  if (auto err = encode_generation(req, out)) return *err;

  // Google's own model names carry a "models/" prefix in listings; the path adds its own.
  std::string_view model = upstream_model;
  if (model.substr(0, 7) == "models/") model.remove_prefix(7);
  upstream_request up;
  up.path = "/models/" + std::string(model) +
            (stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
  up.body = out.dump();
  up.dropped = encoding_drops(req, {"tools", "tool_choice", "n", "response_format", "max_tokens",
                                    "max_completion_tokens", "stop", "temperature", "top_p",
                                    "presence_penalty", "frequency_penalty", "seed",
                                    "reasoning_effort"});
  return up;
}

usage usage_of(const json& m) {
  usage out;
  out.present = true;
  std::uint64_t prompt = token_count(m, "promptTokenCount");
  // promptTokenCount includes the cached tokens; the buckets are disjoint.
  out.cache_read = std::min(token_count(m, "cachedContentTokenCount"), prompt);
  out.input = prompt - out.cache_read;
  out.output = token_count(m, "candidatesTokenCount");
  out.reasoning = token_count(m, "thoughtsTokenCount");
  return out;
}

std::string error_text(const json& j) {
  const json& e = j["error"];
  if (!e.is_object()) return "gemini reported an error";
  std::string status =
      e.contains("status") && e["status"].is_string() ? e["status"].get<std::string>() : "";
  std::string message =
      e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
  if (status.empty() && message.empty()) return "gemini reported an error";
  return status.empty() ? message : status + ": " + message;
}

// One part of a candidate, as an OpenAI delta (or message) fragment.
struct part_view {
  enum class kind_t { none, text, thought, call } kind = kind_t::none;
  std::string text;
  json call;  // an OpenAI tool call without index
};

part_view read_part(const json& p, std::size_t call_number) {
  part_view v;
  if (!p.is_object()) return v;
  if (p.contains("text") && p["text"].is_string()) {
    v.text = p["text"].get<std::string>();
    if (!v.text.empty())
      v.kind = p.value("thought", false) ? part_view::kind_t::thought : part_view::kind_t::text;
  } else if (p.contains("functionCall") && p["functionCall"].is_object()) {
    const json& fc = p["functionCall"];
    // Gemini does not always number its calls; OpenAI clients need an id to answer.
    std::string id =
        fc.contains("id") && fc["id"].is_string() && !fc["id"].get_ref<const std::string&>().empty()
            ? fc["id"].get<std::string>()
            : "call_" + std::to_string(call_number);
    if (auto sig = p.find("thoughtSignature"); sig != p.end() && sig->is_string())
      id = id_with_signature(std::move(id), sig->get<std::string>());
    v.kind = part_view::kind_t::call;
    v.call = {{"id", id},
              {"type", "function"},
              {"function",
               {{"name", fc.value("name", "")},
                {"arguments", fc.contains("args") ? fc["args"].dump() : "{}"}}}};
  }  // thoughtSignature-only (a text part's), executableCode and other parts: no counterpart
  return v;
}

const json* first_candidate(const json& j) {
  if (!j.contains("candidates") || !j["candidates"].is_array() || j["candidates"].empty())
    return nullptr;
  const json& c = j["candidates"][0];
  return c.is_object() ? &c : nullptr;
}

const json* parts_of(const json& candidate) {
  if (!candidate.contains("content") || !candidate["content"].is_object()) return nullptr;
  const json& content = candidate["content"];
  if (!content.contains("parts") || !content["parts"].is_array()) return nullptr;
  return &content["parts"];
}

// A prompt Gemini refused outright comes back without candidates.
bool prompt_blocked(const json& j) {
  return j.contains("promptFeedback") && j["promptFeedback"].is_object() &&
         j["promptFeedback"].contains("blockReason");
}

std::string response_id(const json& j) {
  return j.contains("responseId") && j["responseId"].is_string()
             ? j["responseId"].get<std::string>()
             : std::string("gemini");
}

std::variant<decoded_chat, decode_error> decode(std::string_view body, std::string_view model) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return decode_error{"gemini answer is not JSON"};
  if (j.contains("error")) return decode_error{error_text(j)};
  const json* cand = first_candidate(j);
  if (!cand && !prompt_blocked(j)) return decode_error{"gemini answer has no candidates"};

  std::string text, reasoning;
  bool has_text = false;
  json tool_calls = json::array();
  if (const json* parts = cand ? parts_of(*cand) : nullptr) {
    for (const json& p : *parts) {
      part_view v = read_part(p, tool_calls.size());
      if (v.kind == part_view::kind_t::text) {
        text += v.text;
        has_text = true;
      } else if (v.kind == part_view::kind_t::thought) {
        reasoning += v.text;
      } else if (v.kind == part_view::kind_t::call) {
        tool_calls.push_back(std::move(v.call));
      }
    }
  }
  json message = {{"role", "assistant"}, {"content", has_text ? json(text) : json()}};
  if (!reasoning.empty()) message["reasoning_content"] = reasoning;
  json finish = "content_filter";
  if (cand) {
    finish = nullptr;
    if (cand->contains("finishReason") && (*cand)["finishReason"].is_string())
      finish = gemini_finish_reason((*cand)["finishReason"].get<std::string>());
    // Gemini says STOP after a function call; OpenAI clients look for tool_calls.
    if (!tool_calls.empty() && (finish.is_null() || finish == "stop")) finish = "tool_calls";
  }
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);

  json out = {
      {"id", response_id(j)},
      {"object", "chat.completion"},
      {"created", unix_now()},
      {"model", model},
      {"choices",
       json::array({{{"index", 0}, {"message", std::move(message)}, {"finish_reason", finish}}})},
  };
  decoded_chat result;
  if (j.contains("usageMetadata") && j["usageMetadata"].is_object()) {
    result.tokens = usage_of(j["usageMetadata"]);
    out["usage"] = openai_usage(*result.tokens);
  }
  result.body = out.dump();
  return result;
}

class gemini_stream final : public translating_stream {
 public:
  explicit gemini_stream(std::string_view model) : translating_stream(model, "gemini") {}

 private:
  void emit(std::vector<std::string>& out, json delta, const json& finish = nullptr) {
    out.push_back(make_chunk(id_, created_, model_, std::move(delta), finish).dump());
  }

  bool handle(const sse_event& ev, std::vector<std::string>& out) override {
    json j = json::parse(ev.data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      error_ = "gemini stream event is not JSON";
      return false;
    }
    if (j.contains("error")) {
      error_ = error_text(j);
      return false;
    }
    // Every event repeats the running totals; the last one seen is the answer's usage.
    if (j.contains("usageMetadata") && j["usageMetadata"].is_object())
      tokens_ = usage_of(j["usageMetadata"]);
    if (complete_) return true;
    if (!started_) {
      started_ = true;
      id_ = response_id(j);
      emit(out, {{"role", "assistant"}, {"content", ""}});
    }
    const json* cand = first_candidate(j);
    if (!cand) {
      if (prompt_blocked(j)) finish(out, "content_filter");
      return true;
    }
    if (const json* parts = parts_of(*cand)) {
      for (const json& p : *parts) {
        part_view v = read_part(p, calls_);
        if (v.kind == part_view::kind_t::text) {
          emit(out, {{"content", v.text}});
        } else if (v.kind == part_view::kind_t::thought) {
          emit(out, {{"reasoning_content", v.text}});
        } else if (v.kind == part_view::kind_t::call) {
          // Gemini sends each call whole, so one delta carries id, name and all arguments.
          v.call["index"] = calls_++;
          emit(out, {{"tool_calls", json::array({std::move(v.call)})}});
        }
      }
    }
    if (cand->contains("finishReason") && (*cand)["finishReason"].is_string()) {
      std::string reason = gemini_finish_reason((*cand)["finishReason"].get<std::string>());
      if (calls_ > 0 && reason == "stop") reason = "tool_calls";
      finish(out, reason);
    }
    return true;
  }

  void finish(std::vector<std::string>& out, const std::string& reason) {
    emit(out, json::object(), reason);
    if (tokens_.present) out.push_back(make_usage_chunk(id_, created_, model_, tokens_).dump());
    complete_ = true;
  }

  std::string id_;
  std::size_t calls_ = 0;
  bool started_ = false;
};

class gemini_dialect final : public dialect {
 public:
  config::dialect_kind kind() const override { return config::dialect_kind::gemini; }

  std::variant<upstream_request, request_error> encode_chat(
      std::string_view body, const chat_request& req,
      std::string_view upstream_model) const override {
    // Members of an unexpected type that the explicit checks miss make nlohmann throw; that
    // is the client's malformed request, not a gateway failure.
    try {
      return encode(body, req.stream, upstream_model);
    } catch (const json::exception& e) {
      return request_error{std::string("request cannot be translated for gemini: ") + e.what(), ""};
    }
  }

  std::variant<decoded_chat, decode_error> decode_chat(std::string_view body,
                                                       std::string_view model) const override {
    try {
      return decode(body, model);
    } catch (const json::exception& e) {
      return decode_error{std::string("unexpected gemini answer: ") + e.what()};
    }
  }

  std::unique_ptr<stream_decoder> stream(std::string_view model) const override {
    return std::make_unique<gemini_stream>(model);
  }
};

}  // namespace

std::unique_ptr<dialect> make_gemini_dialect() {
  return std::make_unique<gemini_dialect>();
}

}  // namespace meridian::providers
