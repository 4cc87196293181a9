// OpenAI Responses API -> the canonical chat-completions call: input items, instructions, tools,
// tool_choice, text.format and the rest, validated member by member (see responses_inbound.hpp).
#include <algorithm>
#include <utility>

#include "providers/inbound_json.hpp"
#include "providers/openai.hpp"
#include "providers/responses_inbound.hpp"

namespace meridian::providers {
namespace {

// ordered_json keeps the client's key order, so tool schemas and arguments reach the backend
// (and the model's prompt) exactly as the client wrote them.
using inbound::ojson;

using inbound::failure;
using inbound::given;
using inbound::join;
using inbound::member;
using inbound::parse_bounded;
using inbound::string_member;

// A failure whose message starts with the member at fault, e.g. "input[2].call_id: ...".
failure fail_at(std::string param, const std::string& what) {
  return {param + ": " + what, std::move(param)};
}

std::string indexed(const std::string& base, std::size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

}  // namespace

// Codex names its MCP namespaces "mcp__<server>__", which already end in a separator.
std::string namespaced(std::string_view ns, std::string_view name) {
  std::string out(ns);
  if (!out.ends_with("_")) out += "__";
  return out.append(name);
}

namespace {

// A required non-empty string member, or the failure naming it.
failure required_string(const ojson& obj, const char* key, const std::string& where,
                        std::string& value) {
  const ojson* v = member(obj, key);
  if (!v || !v->is_string() || v->get_ref<const std::string&>().empty())
    return fail_at(where + "." + key, "required non-empty string");
  value = v->get<std::string>();
  return {};
}

// An optional member of one JSON type (null counts as absent), or the failure naming it.
failure optional_of(const ojson& obj, const char* key, const std::string& where,
                    ojson::value_t type, const char* what) {
  const ojson* v = member(obj, key);
  if (!given(v)) return {};
  bool ok = type == ojson::value_t::number_float ? v->is_number() : v->type() == type;
  if (type == ojson::value_t::number_integer) ok = v->is_number_integer();
  if (!ok) return fail_at(where.empty() ? std::string(key) : where + "." + key, what);
  return {};
}

// ---- the request ---------------------------------------------------------------------------

// Builds the chat `messages` from `instructions` and `input`.
class input_builder {
 public:
  explicit input_builder(responses_translation& t) : t_(t) {}

  ojson& messages() { return msgs_; }

  void system(std::string text) {
    if (!text.empty()) msgs_.push_back({{"role", "system"}, {"content", std::move(text)}});
  }

  void user(std::string text) { msgs_.push_back({{"role", "user"}, {"content", std::move(text)}}); }

  failure item(const ojson& it, std::size_t i, const char* list = "input") {
    std::string where = indexed(list, i);
    if (!it.is_object()) return fail_at(where, "must be an object");
    const ojson* type_v = member(it, "type");
    if (given(type_v) && !type_v->is_string()) return fail_at(where + ".type", "must be a string");
    std::string type = string_member(it, "type");
    if (type.empty() || type == "message") {
      if (type.empty() && !member(it, "role")) {
        // An item with neither type nor role is an item_reference (its type is optional).
        if (member(it, "id")) return stateless(where);
        return fail_at(where + ".type", "required string");
      }
      return message(it, where);
    }
    if (type == "function_call") {
      std::string call_id, name;
      if (auto f = required_string(it, "call_id", where, call_id)) return f;
      if (auto f = required_string(it, "name", where, name)) return f;
      const ojson* args = member(it, "arguments");
      if (!args || !args->is_string()) return fail_at(where + ".arguments", "required string");
      // A call of a function inside a namespace tool (Codex's MCP servers) names both.
      if (const ojson* ns = member(it, "namespace"); given(ns)) {
        if (!ns->is_string() || ns->get_ref<const std::string&>().empty())
          return fail_at(where + ".namespace", "must be a non-empty string");
        name = namespaced(ns->get<std::string>(), name);
      }
      tool_call(std::move(call_id), std::move(name), args->get<std::string>());
      return {};
    }
    if (type == "custom_tool_call") {
      std::string call_id, name;
      if (auto f = required_string(it, "call_id", where, call_id)) return f;
      if (auto f = required_string(it, "name", where, name)) return f;
      const ojson* input = member(it, "input");
      if (!input || !input->is_string()) return fail_at(where + ".input", "required string");
      tool_call(std::move(call_id), std::move(name), ojson{{"input", *input}}.dump());
      return {};
    }
    if (type == "function_call_output" || type == "custom_tool_call_output") {
      std::string call_id, text;
      if (auto f = required_string(it, "call_id", where, call_id)) return f;
      if (auto f = tool_output(it, where, text)) return f;
      msgs_.push_back({{"role", "tool"}, {"tool_call_id", call_id}, {"content", std::move(text)}});
      return {};
    }
    if (type == "item_reference") return stateless(where);
    // `reasoning` items (often encrypted, readable by OpenAI's models only) and the calls and
    // outputs of built-in tools no chat backend runs.
    t_.dropped.push_back(where + ": " + type);
    return {};
  }

 private:
  static failure stateless(const std::string& where) {
    return fail_at(where,
                   "item_reference is not supported: send the items themselves, or "
                   "previous_response_id to continue a stored response");
  }

  // A call joins the assistant message right before it: the text the model wrote with it, or
  // the calls it made in the same turn.
  void tool_call(std::string id, std::string name, std::string arguments) {
    ojson call{{"id", std::move(id)},
               {"type", "function"},
               {"function", {{"name", std::move(name)}, {"arguments", std::move(arguments)}}}};
    if (!msgs_.empty() && msgs_.back()["role"] == "assistant") {
      ojson& m = msgs_.back();
      // OpenAI wants null content beside tool_calls when there is no text.
      if (m["content"] == "") m["content"] = nullptr;
      if (!m.contains("tool_calls")) m["tool_calls"] = ojson::array();
      m["tool_calls"].push_back(std::move(call));
      return;
    }
    ojson calls = ojson::array();
    calls.push_back(std::move(call));
    msgs_.push_back(
        {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", std::move(calls)}});
  }

  // A text part's `text`, or the failure naming it.
  static failure part_text(const ojson& p, const std::string& where, const char* key,
                           std::vector<std::string>& texts) {
    const ojson* v = member(p, key);
    if (!v || !v->is_string()) return fail_at(where + "." + key, "required string");
    texts.push_back(v->get<std::string>());
    return {};
  }

  failure message(const ojson& it, const std::string& where) {
    const ojson* role_v = member(it, "role");
    std::string role = role_v && role_v->is_string() ? role_v->get<std::string>() : "";
    if (role != "user" && role != "assistant" && role != "system" && role != "developer")
      return fail_at(where + ".role", "must be one of user, assistant, system, developer");
    const ojson* content = member(it, "content");
    if (!content || !(content->is_string() || content->is_array()))
      return fail_at(where + ".content", "must be a string or an array of content parts");
    if (role == "user") return user_message(*content, where);
    if (content->is_string()) {
      msgs_.push_back({{"role", role == "developer" ? "system" : role}, {"content", *content}});
      return {};
    }
    std::vector<std::string> texts;
    for (std::size_t j = 0; j < content->size(); ++j) {
      const ojson& p = (*content)[j];
      std::string at = indexed(where + ".content", j);
      std::string type = string_member(p, "type");
      failure f;
      if (type == "input_text" || type == "output_text") {
        f = part_text(p, at, "text", texts);
      } else if (type == "refusal" && role == "assistant") {
        f = part_text(p, at, "refusal", texts);
      } else if (type == "input_file") {
        t_.dropped.push_back(at + ": input_file");
      } else {
        f = fail_at(at + ".type", "unsupported content part type '" + type + "' in " +
                                      (role == "assistant" ? "an " : "a ") + role + " message");
      }
      if (f) return f;
    }
    if (role == "assistant") {
      msgs_.push_back({{"role", "assistant"}, {"content", join(texts)}});
    } else {
      system(join(texts));
    }
    return {};
  }

  failure user_message(const ojson& content, const std::string& where) {
    if (content.is_string()) {
      msgs_.push_back({{"role", "user"}, {"content", content}});
      return {};
    }
    std::vector<ojson> parts;
    bool text_only = true;
    for (std::size_t j = 0; j < content.size(); ++j) {
      const ojson& p = content[j];
      std::string at = indexed(where + ".content", j);
      std::string type = string_member(p, "type");
      if (type == "input_text" || type == "output_text") {
        const ojson* text = member(p, "text");
        if (!text || !text->is_string()) return fail_at(at + ".text", "required string");
        parts.push_back({{"type", "text"}, {"text", *text}});
      } else if (type == "input_image") {
        const ojson* url = member(p, "image_url");
        if (url && url->is_string() && !url->get_ref<const std::string&>().empty()) {
          ojson image{{"url", *url}};
          std::string detail = string_member(p, "detail");
          if (detail == "low" || detail == "high" || detail == "auto") image["detail"] = detail;
          parts.push_back({{"type", "image_url"}, {"image_url", std::move(image)}});
          text_only = false;
        } else if (given(member(p, "file_id"))) {
          return fail_at(at + ".file_id",
                         "an input_image by file_id needs OpenAI's Files API, which this gateway "
                         "lane does not have: send image_url (a URL or a data: URL)");
        } else {
          return fail_at(at + ".image_url", "required string (a URL or a data: URL)");
        }
      } else if (type == "input_audio") {
        const ojson* audio = member(p, "input_audio");
        if (!audio || !audio->is_object())
          return fail_at(at + ".input_audio", "required object {data, format}");
        parts.push_back({{"type", "input_audio"}, {"input_audio", *audio}});
        text_only = false;
      } else if (type == "input_file") {
        t_.dropped.push_back(at + ": input_file");
      } else {
        return fail_at(at + ".type", "unsupported content part type '" + type + "'");
      }
    }
    if (parts.empty()) return {};  // nothing a chat backend can read (files only)
    if (!text_only) {
      msgs_.push_back({{"role", "user"}, {"content", ojson(parts)}});
      return {};
    }
    // A plain string when every part is text: the widest-supported form.
    std::vector<std::string> texts;
    for (const auto& p : parts) texts.push_back(p["text"].get<std::string>());
    msgs_.push_back({{"role", "user"}, {"content", join(texts)}});
    return {};
  }

  // A tool output's text: a string, or input_text parts (images and files cannot ride in a
  // chat tool message, so they are dropped and listed).
  failure tool_output(const ojson& it, const std::string& where, std::string& text) {
    const ojson* output = member(it, "output");
    if (output && output->is_string()) {
      text = output->get<std::string>();
      return {};
    }
    if (!output || !output->is_array())
      return fail_at(where + ".output", "required string or array of content parts");
    std::vector<std::string> texts;
    for (std::size_t j = 0; j < output->size(); ++j) {
      const ojson& p = (*output)[j];
      std::string at = indexed(where + ".output", j);
      std::string type = string_member(p, "type");
      if (type == "input_text" || type == "output_text") {
        if (auto f = part_text(p, at, "text", texts)) return f;
      } else if (type == "input_image" || type == "input_file") {
        t_.dropped.push_back(at + ": " + type);
      } else {
        return fail_at(at + ".type", "unsupported output part type '" + type + "'");
      }
    }
    text = join(texts);
    return {};
  }

  responses_translation& t_;
  ojson msgs_ = ojson::array();
};

// A custom tool as a function with one string parameter `input`; a grammar is told to the
// model in the parameter's description, since chat backends cannot enforce one.
ojson custom_tool_function(const ojson& tool, const std::string& name) {
  ojson input{{"type", "string"}};
  if (const ojson* format = member(tool, "format"); format && format->is_object()) {
    if (string_member(*format, "type") == "grammar") {
      std::string syntax = string_member(*format, "syntax");
      input["description"] = "Free-form input that must follow this " +
                             (syntax.empty() ? std::string("grammar") : syntax + " grammar") +
                             ":\n" + string_member(*format, "definition");
    }
  }
  ojson fn{{"name", name}};
  if (const ojson* d = member(tool, "description"); d && d->is_string()) fn["description"] = *d;
  fn["parameters"] = {{"type", "object"},
                      {"properties", {{"input", std::move(input)}}},
                      {"required", {"input"}},
                      {"additionalProperties", false}};
  return fn;
}

// A function tool as a chat function, its name prefixed when it sits in namespace `ns`.
failure function_tool(const ojson& tool, const std::string& where, const std::string& ns,
                      ojson& list) {
  std::string name;
  if (auto f = required_string(tool, "name", where, name)) return f;
  if (auto f = optional_of(tool, "description", where, ojson::value_t::string, "must be a string"))
    return f;
  if (auto f = optional_of(tool, "parameters", where, ojson::value_t::object, "must be an object"))
    return f;
  if (auto f = optional_of(tool, "strict", where, ojson::value_t::boolean, "must be a boolean"))
    return f;
  ojson fn{{"name", ns.empty() ? name : namespaced(ns, name)}};
  if (const ojson* d = member(tool, "description"); given(d)) fn["description"] = *d;
  const ojson* params = member(tool, "parameters");
  fn["parameters"] =
      given(params) ? *params : ojson{{"type", "object"}, {"properties", ojson::object()}};
  if (const ojson* s = member(tool, "strict"); given(s)) fn["strict"] = *s;
  list.push_back({{"type", "function"}, {"function", std::move(fn)}});
  return {};
}

// A namespace tool's functions as flat functions named namespaced(namespace, name), answered as
// function_call items that carry `namespace` again (responses_translation::namespaces).
// `defer_loading` (OpenAI's tool search) is not sent: a chat backend sees every tool.
failure namespace_tools(const ojson& tool, const std::string& where, responses_translation& t,
                        ojson& list) {
  std::string ns;
  if (auto f = required_string(tool, "name", where, ns)) return f;
  const ojson* inner = member(tool, "tools");
  if (!inner || !inner->is_array()) return fail_at(where + ".tools", "required array of tools");
  for (std::size_t j = 0; j < inner->size(); ++j) {
    const ojson& fn = (*inner)[j];
    std::string at = indexed(where + ".tools", j);
    if (!fn.is_object() || string_member(fn, "type") != "function")
      return fail_at(at + ".type", "a namespace holds function tools only");
    if (auto f = function_tool(fn, at, ns, list)) return f;
    std::string name = string_member(fn, "name");
    t.namespaces.push_back({namespaced(ns, name), ns, name});
  }
  return {};
}

failure tools(const ojson& in, responses_translation& t, ojson& list) {
  if (!in.is_array()) return fail_at("tools", "must be an array");
  for (std::size_t i = 0; i < in.size(); ++i) {
    const ojson& tool = in[i];
    std::string where = indexed("tools", i);
    if (!tool.is_object()) return fail_at(where, "must be an object");
    const ojson* type_v = member(tool, "type");
    if (!type_v || !type_v->is_string()) return fail_at(where + ".type", "required string");
    std::string type = type_v->get<std::string>();
    if (type == "function") {
      if (auto f = function_tool(tool, where, "", list)) return f;
    } else if (type == "custom") {
      std::string name;
      if (auto f = required_string(tool, "name", where, name)) return f;
      if (auto f =
              optional_of(tool, "description", where, ojson::value_t::string, "must be a string"))
        return f;
      if (auto f = optional_of(tool, "format", where, ojson::value_t::object, "must be an object"))
        return f;
      list.push_back({{"type", "function"}, {"function", custom_tool_function(tool, name)}});
      if (std::find(t.custom_tools.begin(), t.custom_tools.end(), name) == t.custom_tools.end())
        t.custom_tools.push_back(name);
    } else if (type == "namespace") {
      if (auto f = namespace_tools(tool, where, t, list)) return f;
    } else {
      // Built-in tools (web_search, file_search, code_interpreter, computer use, image
      // generation, local_shell, mcp) run inside OpenAI's platform.
      t.dropped.push_back(where + ": " + type);
    }
  }
  return {};
}

// `choice` stays null when nothing is to be sent.
failure tool_choice(const ojson& in, responses_translation& t, ojson& choice) {
  if (in.is_string()) {
    std::string mode = in.get<std::string>();
    if (mode != "auto" && mode != "none" && mode != "required")
      return fail_at("tool_choice", "must be auto, none, required or an object");
    choice = in;
    return {};
  }
  if (!in.is_object()) return fail_at("tool_choice", "must be a string or an object");
  std::string type = string_member(in, "type");
  if (type == "function" || type == "custom") {
    std::string name;
    if (auto f = required_string(in, "name", "tool_choice", name)) return f;
    choice = {{"type", "function"}, {"function", {{"name", name}}}};
    return {};
  }
  if (type.empty()) return fail_at("tool_choice.type", "required string");
  t.dropped.push_back("tool_choice: " + type);
  return {};
}

failure text_format(const ojson& text, ojson& out) {
  if (!text.is_object()) return fail_at("text", "must be an object");
  const ojson* format = member(text, "format");
  if (!given(format)) return {};
  if (!format->is_object()) return fail_at("text.format", "must be an object");
  std::string type = string_member(*format, "type");
  if (type == "text") return {};
  if (type == "json_object") {
    out["response_format"] = {{"type", "json_object"}};
    return {};
  }
  if (type != "json_schema")
    return fail_at("text.format.type", "must be text, json_schema or json_object");
  std::string name;
  if (auto f = required_string(*format, "name", "text.format", name)) return f;
  const ojson* schema = member(*format, "schema");
  if (!schema || !schema->is_object()) return fail_at("text.format.schema", "required object");
  if (auto f = optional_of(*format, "strict", "text.format", ojson::value_t::boolean,
                           "must be a boolean"))
    return f;
  if (auto f = optional_of(*format, "description", "text.format", ojson::value_t::string,
                           "must be a string"))
    return f;
  ojson js{{"name", name}, {"schema", *schema}};
  if (const ojson* s = member(*format, "strict"); given(s)) js["strict"] = *s;
  if (const ojson* d = member(*format, "description"); given(d)) js["description"] = *d;
  out["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
  return {};
}

// A stored copy of the request's input as items: a string as one user message, and every item
// with a type and an id, as input_items lists them.
ojson input_as_items(const ojson& input) {
  ojson items = ojson::array();
  if (input.is_string()) {
    items.push_back({{"type", "message"},
                     {"role", "user"},
                     {"content", ojson::array({{{"type", "input_text"}, {"text", input}}})}});
  } else {
    items = input;
  }
  for (auto& it : items) {
    if (!it.is_object()) continue;
    if (!it.contains("type")) it["type"] = "message";
    if (!it.contains("id")) it["id"] = new_item_id(string_member(it, "type"));
  }
  return items;
}

failure translate(const ojson& in, responses_translation& t, ojson& out, const ojson* history) {
  const ojson* model = member(in, "model");
  if (!model || !model->is_string() || model->get_ref<const std::string&>().empty())
    return fail_at("model", "required non-empty string");
  if (const ojson* prev = member(in, "previous_response_id"); given(prev)) {
    if (!prev->is_string() || prev->get_ref<const std::string&>().empty())
      return fail_at("previous_response_id", "must be a non-empty string");
    t.previous_response_id = prev->get<std::string>();
  }
  if (given(member(in, "conversation")))
    return fail_at("conversation",
                   "the Conversations API is not supported: continue a stored response with "
                   "previous_response_id, or send the whole conversation in `input`");

  // Types first, so that no member is half-translated when another is wrong.
  using vt = ojson::value_t;
  struct check {
    const char* key;
    vt type;
    const char* what;
  };
  for (const check& c : {check{"instructions", vt::string, "must be a string"},
                         check{"max_output_tokens", vt::number_integer, "must be an integer"},
                         check{"metadata", vt::object, "must be an object"},
                         check{"parallel_tool_calls", vt::boolean, "must be a boolean"},
                         check{"reasoning", vt::object, "must be an object"},
                         check{"temperature", vt::number_float, "must be a number"},
                         check{"top_p", vt::number_float, "must be a number"},
                         check{"user", vt::string, "must be a string"},
                         check{"prompt_cache_key", vt::string, "must be a string"},
                         check{"safety_identifier", vt::string, "must be a string"},
                         check{"service_tier", vt::string, "must be a string"},
                         check{"stream", vt::boolean, "must be a boolean"},
                         check{"store", vt::boolean, "must be a boolean"},
                         check{"truncation", vt::string, "must be a string"},
                         check{"include", vt::array, "must be an array of strings"}}) {
    if (auto f = optional_of(in, c.key, "", c.type, c.what)) return f;
  }
  const ojson* max_out = member(in, "max_output_tokens");
  if (given(max_out) && (max_out->is_number_unsigned() ? max_out->get<std::uint64_t>() == 0
                                                       : max_out->get<std::int64_t>() <= 0))
    return fail_at("max_output_tokens", "must be a positive integer");
  if (const ojson* r = member(in, "reasoning"); given(r)) {
    if (auto f = optional_of(*r, "effort", "reasoning", vt::string, "must be a string")) return f;
  }

  if (const ojson* st = member(in, "store"); given(st)) {
    t.store = st->get<bool>();
    t.store_asked = t.store;
  }

  input_builder b(t);
  // A previous response's instructions are not carried over (OpenAI's rule): this request's.
  if (const ojson* ins = member(in, "instructions"); given(ins)) b.system(ins->get<std::string>());
  if (history) {
    for (std::size_t i = 0; i < history->size(); ++i) {
      if (auto f = b.item((*history)[i], i, "previous_response")) return f;
    }
  }
  const ojson* input = member(in, "input");
  if (input && input->is_string()) {
    b.user(input->get<std::string>());
  } else if (input && input->is_array()) {
    for (std::size_t i = 0; i < input->size(); ++i) {
      if (auto f = b.item((*input)[i], i)) return f;
    }
  } else {
    return fail_at("input", "required string or array of input items");
  }
  if (b.messages().empty()) return fail_at("input", "holds no message a chat backend can read");
  if (t.store) {
    t.input_items = history ? *history : ojson::array();
    for (auto& it : input_as_items(*input)) t.input_items.push_back(std::move(it));
  }

  out["model"] = *model;
  out["messages"] = std::move(b.messages());
  ojson list = ojson::array();
  if (const ojson* tl = member(in, "tools"); given(tl)) {
    if (auto f = tools(*tl, t, list)) return f;
  }
  ojson choice;
  if (const ojson* tc = member(in, "tool_choice"); given(tc)) {
    if (auto f = tool_choice(*tc, t, choice)) return f;
  }
  // tool_choice and parallel_tool_calls without tools are a 400 at OpenAI, so they go only
  // with tools (every tool may have been a dropped built-in).
  if (!list.empty()) {
    out["tools"] = std::move(list);
    if (!choice.is_null()) out["tool_choice"] = std::move(choice);
    if (const ojson* p = member(in, "parallel_tool_calls"); given(p))
      out["parallel_tool_calls"] = *p;
  }
  if (const ojson* r = member(in, "reasoning"); given(r)) {
    if (const ojson* e = member(*r, "effort"); given(e)) out["reasoning_effort"] = *e;
  }
  if (const ojson* text = member(in, "text"); given(text)) {
    if (auto f = text_format(*text, out)) return f;
  }
  if (given(max_out)) out["max_tokens"] = *max_out;
  for (const char* key :
       {"temperature", "top_p", "user", "prompt_cache_key", "safety_identifier", "service_tier"}) {
    if (const ojson* v = member(in, key); given(v)) out[key] = *v;
  }
  if (const ojson* s = member(in, "stream"); given(s) && s->get<bool>()) {
    out["stream"] = true;
    t.stream = true;
  }
  if (const ojson* inc = member(in, "include"); given(inc)) {
    for (std::size_t i = 0; i < inc->size(); ++i) {
      if (!(*inc)[i].is_string()) return fail_at(indexed("include", i), "must be a string");
      t.dropped.push_back("include: " + (*inc)[i].get<std::string>());
    }
  }

  // What the Response object shows of the request, with OpenAI's defaults.
  auto echo = [&](const char* key, ojson fallback) {
    const ojson* v = member(in, key);
    t.echo[key] = given(v) ? *v : std::move(fallback);
  };
  echo("instructions", nullptr);
  echo("max_output_tokens", nullptr);
  echo("metadata", ojson::object());
  echo("parallel_tool_calls", true);
  echo("reasoning", nullptr);
  echo("temperature", nullptr);
  echo("text", ojson{{"format", {{"type", "text"}}}});
  if (!given(member(t.echo["text"], "format"))) t.echo["text"]["format"] = {{"type", "text"}};
  echo("tool_choice", "auto");
  echo("tools", ojson::array());
  echo("top_p", nullptr);
  echo("user", nullptr);
  return {};
}

}  // namespace

std::variant<responses_translation, request_error> responses_request_to_openai(
    std::string_view body, const nlohmann::ordered_json* history) {
  auto parsed = inbound::parse_request_object(body);
  if (auto* e = std::get_if<request_error>(&parsed)) return *e;
  const ojson& in = std::get<ojson>(parsed);
  responses_translation t;
  t.id = new_item_id("response");
  t.history_applied = history != nullptr;
  ojson out = ojson::object();
  if (auto f = translate(in, t, out, history)) return request_error{f.message, f.param};
  t.chat_body = out.dump();
  return t;
}

}  // namespace meridian::providers
