// Gemini generateContent <-> canonical OpenAI chat-completions translation for inbound clients.
#include "providers/gemini_inbound.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/api_error.hpp"
#include "core/json_scan.hpp"
#include "providers/inbound_json.hpp"

namespace meridian::providers {
namespace {

using inbound::given;
using inbound::join;
using inbound::member;
using inbound::ojson;
using inbound::parse_bounded;
using inbound::string_member;

// What a translation lane leaves out or can only refuse (as for Anthropic clients).
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
};

// Function calls without ids (Gemini before ids) get one each; a functionResponse answers the
// oldest open call of its name.
struct call_ids {
  std::map<std::string, std::deque<std::string>> open;
  std::size_t next = 0;
  std::string issue(const std::string& name, std::string id) {
    if (id.empty()) id = "call_" + std::to_string(next++);
    open[name].push_back(id);
    return id;
  }
  std::string answer(const std::string& name, std::string id) {
    auto& q = open[name];
    if (!id.empty()) {
      auto it = std::find(q.begin(), q.end(), id);
      if (it != q.end()) q.erase(it);
      return id;
    }
    if (q.empty()) return "call_" + std::to_string(next++);
    id = q.front();
    q.pop_front();
    return id;
  }
};

ojson image_part(const std::string& url) {
  return ojson{{"type", "image_url"}, {"image_url", {{"url", url}}}};
}

bool is_image(const std::string& mime) {
  return mime.rfind("image/", 0) == 0;
}

// One Content's parts as OpenAI messages appended to `out`.
request_error* content(const ojson& c, const std::string& where, ojson& out, call_ids& ids,
                       lane_notes& notes, request_error& err) {
  const ojson* parts = member(c, "parts");
  if (!parts || !parts->is_array()) {
    err = {where + ".parts: required array", "contents"};
    return &err;
  }
  const std::string role = string_member(c, "role");
  if (!role.empty() && role != "user" && role != "model" && role != "function") {
    err = {where + ".role: must be 'user' or 'model'", "contents"};
    return &err;
  }
  const bool model = role == "model";
  std::vector<ojson> user_parts;
  std::vector<std::string> texts;
  std::string reasoning;
  ojson calls = ojson::array();
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const ojson& p = (*parts)[i];
    const std::string at = where + ".parts[" + std::to_string(i) + "]";
    if (member(p, "thoughtSignature")) notes.drop("thoughtSignature");
    if (const ojson* t = member(p, "text"); t && t->is_string()) {
      const ojson* thought = member(p, "thought");
      const bool is_thought = thought && thought->is_boolean() && thought->get<bool>();
      if (model && is_thought)
        reasoning += t->get<std::string>();
      else if (model)
        texts.push_back(t->get<std::string>());
      else if (!is_thought)
        user_parts.push_back({{"type", "text"}, {"text", *t}});
    } else if (const ojson* d = member(p, "inlineData"); d && !model) {
      const std::string mime = string_member(*d, "mimeType");
      if (is_image(mime))
        user_parts.push_back(image_part("data:" + mime + ";base64," + string_member(*d, "data")));
      else
        notes.cannot("contents", at + ".inlineData: " + mime +
                                     " has no translation for this "
                                     "backend's dialect");
    } else if (const ojson* f = member(p, "fileData"); f && !model) {
      const std::string mime = string_member(*f, "mimeType");
      if (is_image(mime))
        user_parts.push_back(image_part(string_member(*f, "fileUri")));
      else
        notes.cannot("contents", at + ".fileData: " + mime +
                                     " has no translation for this "
                                     "backend's dialect");
    } else if (const ojson* fc = member(p, "functionCall"); fc && model) {
      const std::string name = string_member(*fc, "name");
      if (name.empty()) {
        err = {at + ".functionCall.name: required", "contents"};
        return &err;
      }
      const ojson* args = member(*fc, "args");
      calls.push_back(
          {{"id", ids.issue(name, string_member(*fc, "id"))},
           {"type", "function"},
           {"function", {{"name", name}, {"arguments", given(args) ? args->dump() : "{}"}}}});
    } else if (const ojson* fr = member(p, "functionResponse"); fr && !model) {
      const std::string name = string_member(*fr, "name");
      const ojson* response = member(*fr, "response");
      out.push_back({{"role", "tool"},
                     {"tool_call_id", ids.answer(name, string_member(*fr, "id"))},
                     {"content", given(response) ? response->dump() : "{}"}});
    } else {
      notes.cannot("contents", at + ": this part has no translation for this backend's dialect");
    }
  }
  if (model) {
    ojson msg{{"role", "assistant"}};
    msg["content"] = texts.empty() && !calls.empty() ? ojson() : ojson(join(texts));
    if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
    if (!calls.empty()) msg["tool_calls"] = std::move(calls);
    out.push_back(std::move(msg));
  } else if (!user_parts.empty()) {
    const bool all_text = std::all_of(user_parts.begin(), user_parts.end(),
                                      [](const ojson& p) { return p["type"] == "text"; });
    if (all_text) {
      std::vector<std::string> t;
      for (const auto& p : user_parts) t.push_back(p["text"].get<std::string>());
      out.push_back({{"role", "user"}, {"content", join(t)}});
    } else {
      out.push_back({{"role", "user"}, {"content", ojson(user_parts)}});
    }
  }
  return nullptr;
}

// Gemini's Schema (OpenAPI-style: upper-case types, `nullable`) as the JSON Schema the other
// dialects read: types lower-cased, nullable as a type union with "null", nested schemas too.
ojson json_schema_of(const ojson& s) {
  if (s.is_array()) {
    ojson out = ojson::array();
    for (const auto& e : s) out.push_back(json_schema_of(e));
    return out;
  }
  if (!s.is_object()) return s;
  ojson out = ojson::object();
  bool nullable = false;
  for (const auto& [key, v] : s.items()) {
    if (key == "nullable") {
      nullable = v.is_boolean() && v.get<bool>();
    } else if (key == "type" && v.is_string()) {
      std::string t = v.get<std::string>();
      std::transform(t.begin(), t.end(), t.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      out["type"] = t == "type_unspecified" ? ojson() : ojson(t);
    } else if (key == "properties" && v.is_object()) {
      ojson props = ojson::object();
      for (const auto& [name, sub] : v.items()) props[name] = json_schema_of(sub);
      out["properties"] = std::move(props);
    } else if (key == "items" || key == "anyOf") {
      out[key] = json_schema_of(v);
    } else {
      out[key] = v;
    }
  }
  if (out.contains("type") && out["type"].is_null()) out.erase("type");
  if (nullable && out.contains("type") && out["type"].is_string())
    out["type"] = ojson::array({out["type"], "null"});
  return out;
}

// The members this translation carries, and those it leaves out and lists.
constexpr std::string_view k_mapped[] = {"contents", "systemInstruction", "system_instruction",
                                         "tools",    "toolConfig",        "generationConfig",
                                         "model"};

request_error* generation(const ojson& g, ojson& out, lane_notes& notes, request_error& err) {
  if (!g.is_object()) {
    err = {"generationConfig: must be an object", "generationConfig"};
    return &err;
  }
  for (const auto& [key, v] : g.items()) {
    if (key == "temperature" || key == "topP" || key == "presencePenalty" ||
        key == "frequencyPenalty" || key == "seed") {
      if (!v.is_number()) {
        err = {"generationConfig." + key + ": must be a number", "generationConfig"};
        return &err;
      }
      static const std::map<std::string, std::string> names = {
          {"temperature", "temperature"},
          {"topP", "top_p"},
          {"presencePenalty", "presence_penalty"},
          {"frequencyPenalty", "frequency_penalty"},
          {"seed", "seed"}};
      out[names.at(key)] = v;
    } else if (key == "maxOutputTokens") {
      if (!v.is_number_unsigned() || v.get<std::uint64_t>() == 0) {
        err = {"generationConfig.maxOutputTokens: must be a positive integer", "generationConfig"};
        return &err;
      }
      out["max_tokens"] = v;
    } else if (key == "stopSequences") {
      if (!v.is_array()) {
        err = {"generationConfig.stopSequences: must be an array", "generationConfig"};
        return &err;
      }
      if (!v.empty()) out["stop"] = v;
    } else if (key == "candidateCount") {
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > 1) out["n"] = v;
    } else if (key == "responseMimeType") {
      if (v == "application/json" && !out.contains("response_format"))
        out["response_format"] = {{"type", "json_object"}};
    } else if (key == "responseSchema" || key == "responseJsonSchema") {
      out["response_format"] = {
          {"type", "json_schema"},
          {"json_schema",
           {{"name", "response"}, {"schema", key == "responseSchema" ? json_schema_of(v) : v}}}};
    } else {
      notes.drop("generationConfig." + key);  // topK, thinkingConfig, responseModalities, ...
    }
  }
  return nullptr;
}

request_error* tools(const ojson& in, ojson& out, lane_notes& notes, request_error& err) {
  if (!in.is_array()) {
    err = {"tools: must be an array", "tools"};
    return &err;
  }
  ojson list = ojson::array();
  for (const auto& t : in) {
    for (const auto& [kind, v] : t.items()) {
      if (kind != "functionDeclarations" && kind != "function_declarations") {
        notes.drop("tools." + kind);  // googleSearch, codeExecution, urlContext: Google's own
        continue;
      }
      if (!v.is_array()) continue;
      for (const auto& fn : v) {
        const std::string name = string_member(fn, "name");
        if (name.empty()) {
          err = {"tools.functionDeclarations: every function needs a name", "tools"};
          return &err;
        }
        ojson f{{"name", name}};
        if (const ojson* d = member(fn, "description"); d && d->is_string()) f["description"] = *d;
        const ojson* json_schema = member(fn, "parametersJsonSchema");
        const ojson* schema = member(fn, "parameters");
        f["parameters"] = json_schema && json_schema->is_object() ? *json_schema
                          : schema && schema->is_object()         ? json_schema_of(*schema)
                                                                  : ojson{{"type", "object"}};
        list.push_back({{"type", "function"}, {"function", std::move(f)}});
      }
    }
  }
  if (!list.empty()) out["tools"] = std::move(list);
  return nullptr;
}

void tool_config(const ojson& in, ojson& out) {
  const ojson* fcc = member(in, "functionCallingConfig");
  if (!fcc) return;
  const std::string mode = string_member(*fcc, "mode");
  const ojson* allowed = member(*fcc, "allowedFunctionNames");
  if (mode == "NONE") {
    out["tool_choice"] = "none";
  } else if (mode == "ANY" && allowed && allowed->is_array() && allowed->size() == 1 &&
             (*allowed)[0].is_string()) {
    out["tool_choice"] = {{"type", "function"}, {"function", {{"name", (*allowed)[0]}}}};
  } else if (mode == "ANY") {
    out["tool_choice"] = "required";
  } else if (mode == "AUTO") {
    out["tool_choice"] = "auto";
  }
}

std::string finish_reason_of(const std::string& openai) {
  if (openai == "length") return "MAX_TOKENS";
  if (openai == "content_filter") return "SAFETY";
  return "STOP";  // tool calls too: Gemini says STOP beside a functionCall
}

ojson usage_metadata(const usage& u, const answer_notes* notes) {
  ojson m{{"promptTokenCount", u.prompt_total()},
          {"candidatesTokenCount", u.output},
          {"totalTokenCount", u.prompt_total() + u.completion_total()}};
  if (u.cache_read) m["cachedContentTokenCount"] = u.cache_read;
  if (u.reasoning) m["thoughtsTokenCount"] = u.reasoning;
  if (notes && notes->cost) m["cost"] = *notes->cost;
  if (notes && notes->estimated) m["estimated"] = true;
  return m;
}

ojson response(ojson parts, const std::string& finish, const std::string& model,
               const std::string& id) {
  ojson cand{{"content", {{"role", "model"}, {"parts", std::move(parts)}}}, {"index", 0}};
  if (!finish.empty()) cand["finishReason"] = finish;
  ojson out{{"candidates", ojson::array({std::move(cand)})}, {"modelVersion", model}};
  if (!id.empty()) out["responseId"] = id;
  return out;
}

ojson call_part(const std::string& name, const std::string& arguments) {
  ojson args = parse_bounded(arguments);
  if (!args.is_object()) args = ojson::object();
  return {{"functionCall", {{"name", name}, {"args", std::move(args)}}}};
}

}  // namespace

std::variant<gemini_translation, request_error> gemini_request_to_openai(std::string_view body,
                                                                         std::string_view model,
                                                                         bool stream) {
  auto parsed = inbound::parse_request_object(body);
  if (auto* e = std::get_if<request_error>(&parsed)) return *e;
  const ojson& in = std::get<ojson>(parsed);
  if (model.empty()) return request_error{"the path names no model", "model"};
  const ojson* contents = member(in, "contents");
  if (!contents || !contents->is_array() || contents->empty())
    return request_error{"contents: required non-empty array", "contents"};

  lane_notes notes;
  request_error err;
  call_ids ids;
  ojson out{{"model", std::string(model)}};
  ojson msgs = ojson::array();
  const ojson* system = member(in, "systemInstruction");
  if (!system) system = member(in, "system_instruction");
  if (given(system)) {
    std::vector<std::string> texts;
    if (system->is_string()) texts.push_back(system->get<std::string>());
    if (const ojson* parts = member(*system, "parts"); parts && parts->is_array())
      for (const auto& p : *parts) {
        if (const ojson* t = member(p, "text"); t && t->is_string())
          texts.push_back(t->get<std::string>());
        else
          notes.cannot("systemInstruction", "systemInstruction: only text parts translate");
      }
    if (!texts.empty()) msgs.push_back({{"role", "system"}, {"content", join(texts)}});
  }
  for (std::size_t i = 0; i < contents->size(); ++i)
    if (content((*contents)[i], "contents[" + std::to_string(i) + "]", msgs, ids, notes, err))
      return err;
  out["messages"] = std::move(msgs);
  if (const ojson* g = member(in, "generationConfig"); given(g))
    if (generation(*g, out, notes, err)) return err;
  if (const ojson* t = member(in, "tools"); given(t))
    if (tools(*t, out, notes, err)) return err;
  if (const ojson* tc = member(in, "toolConfig"); given(tc)) tool_config(*tc, out);
  if (stream) out["stream"] = true;
  if (const ojson* cached = member(in, "cachedContent"); given(cached))
    notes.cannot("cachedContent", "cachedContent names a cache only Gemini holds");
  for (const auto& [key, v] : in.items())
    if (key != "cachedContent" &&
        std::find(std::begin(k_mapped), std::end(k_mapped), key) == std::end(k_mapped))
      notes.drop(key);  // safetySettings, labels, and any member this translation does not know
  return gemini_translation{out.dump(), std::move(notes.dropped), std::move(notes.untranslatable)};
}

std::string openai_response_to_gemini(std::string_view openai_body, std::string_view model,
                                      const usage& tokens, const answer_notes* notes) {
  auto [in, msg, finish] = inbound::first_choice_of(openai_body);
  ojson parts = ojson::array();
  std::string r = string_member(msg, "reasoning_content");
  if (r.empty()) r = string_member(msg, "reasoning");  // vLLM, OpenRouter
  if (!r.empty()) parts.push_back({{"text", r}, {"thought", true}});
  std::string text;
  if (const ojson* c = member(msg, "content"); c && c->is_string()) text = c->get<std::string>();
  if (text.empty()) text = string_member(msg, "refusal");
  if (!text.empty()) parts.push_back({{"text", text}});
  if (const ojson* calls = member(msg, "tool_calls"); calls && calls->is_array())
    for (const auto& call : *calls) {
      const ojson* fn = member(call, "function");
      if (fn)
        parts.push_back(call_part(string_member(*fn, "name"), string_member(*fn, "arguments")));
    }
  ojson out = response(std::move(parts), finish_reason_of(finish), std::string(model),
                       string_member(in, "id"));
  out["usageMetadata"] = usage_metadata(tokens, notes);
  if (notes && !notes->provider.empty()) out["provider"] = notes->provider;
  return out.dump();
}

void gemini_stream_encoder::on_chunk(std::string_view chunk_json, std::vector<sse_event>& out) {
  if (ended_) return;
  ojson chunk = parse_bounded(chunk_json);
  if (!chunk.is_object()) return;
  if (id_.empty()) id_ = string_member(chunk, "id");
  const ojson* choices = member(chunk, "choices");
  if (!choices || !choices->is_array() || choices->empty()) return;
  const ojson& choice = (*choices)[0];
  if (std::string f = string_member(choice, "finish_reason"); !f.empty()) finish_reason_ = f;
  const ojson* delta = member(choice, "delta");
  if (!delta) return;
  ojson parts = ojson::array();
  std::string r = string_member(*delta, "reasoning_content");
  if (r.empty()) r = string_member(*delta, "reasoning");  // vLLM, OpenRouter
  if (!r.empty()) parts.push_back({{"text", r}, {"thought", true}});
  if (std::string c = string_member(*delta, "content"); !c.empty()) parts.push_back({{"text", c}});
  if (const ojson* calls = member(*delta, "tool_calls"); calls && calls->is_array())
    for (const auto& call : *calls) {
      const ojson* idx = member(call, "index");
      const std::size_t i = idx && idx->is_number_unsigned() ? idx->get<std::size_t>() : 0;
      if (i >= 128) continue;  // an upstream's index, bounded
      if (calls_.size() <= i) calls_.resize(i + 1);
      if (const ojson* fn = member(call, "function")) {
        calls_[i].name += string_member(*fn, "name");
        calls_[i].arguments += string_member(*fn, "arguments");
      }
    }
  if (!parts.empty())
    out.push_back(sse_event{{}, response(std::move(parts), {}, model_, id_).dump(), {}});
}

void gemini_stream_encoder::finish(const usage& tokens, std::vector<sse_event>& out,
                                   const answer_notes* notes) {
  if (ended_) return;
  ended_ = true;
  ojson parts = ojson::array();
  for (const auto& c : calls_)
    if (!c.name.empty()) parts.push_back(call_part(c.name, c.arguments));
  ojson last = response(std::move(parts), finish_reason_of(finish_reason_), model_, id_);
  last["usageMetadata"] = usage_metadata(tokens, notes);
  if (notes && !notes->provider.empty()) last["provider"] = notes->provider;
  out.push_back(sse_event{{}, last.dump(), {}});
}

void gemini_stream_encoder::fail(std::string_view message, std::vector<sse_event>& out) {
  if (ended_) return;
  ended_ = true;
  out.push_back(sse_event{{}, core::gemini_error_body(502, message), {}});
}

}  // namespace meridian::providers
