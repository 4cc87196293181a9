// OpenAI Responses API <-> canonical OpenAI chat-completions translation for inbound clients.
#include "providers/responses_inbound.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "providers/inbound_json.hpp"
#include "providers/openai.hpp"

namespace meridian::providers {
namespace {

// ordered_json keeps the client's key order, so tool schemas and arguments reach the backend
// (and the model's prompt) exactly as the client wrote them.
using inbound::ojson;

using inbound::failure;
using inbound::member;
using inbound::parse_bounded;
using inbound::string_member;

// A failure whose message starts with the member at fault, e.g. "input[2].call_id: ...".
failure fail_at(std::string param, const std::string& what) {
  return {param + ": " + what, std::move(param)};
}

bool given(const ojson* v) {
  return v && !v->is_null();
}

std::string indexed(const std::string& base, std::size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '\n';
    out += parts[i];
  }
  return out;
}

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

std::string random_hex(std::size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n);
  std::uint64_t bits = 0;
  int left = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (left == 0) {
      bits = rng();
      left = 16;
    }
    s.push_back(k_digits[bits & 0xf]);
    bits >>= 4;
    --left;
  }
  return s;
}

std::string new_id(std::string_view prefix) {
  return std::string(prefix) + random_hex(24);
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

  failure item(const ojson& it, std::size_t i) {
    std::string where = indexed("input", i);
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
                   "item_reference needs stored responses, and this gateway lane is stateless: "
                   "send the whole conversation with store: false");
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
      std::string name;
      if (auto f = required_string(tool, "name", where, name)) return f;
      if (auto f =
              optional_of(tool, "description", where, ojson::value_t::string, "must be a string"))
        return f;
      if (auto f =
              optional_of(tool, "parameters", where, ojson::value_t::object, "must be an object"))
        return f;
      if (auto f = optional_of(tool, "strict", where, ojson::value_t::boolean, "must be a boolean"))
        return f;
      ojson fn{{"name", name}};
      if (const ojson* d = member(tool, "description"); given(d)) fn["description"] = *d;
      const ojson* params = member(tool, "parameters");
      fn["parameters"] =
          given(params) ? *params : ojson{{"type", "object"}, {"properties", ojson::object()}};
      if (const ojson* s = member(tool, "strict"); given(s)) fn["strict"] = *s;
      list.push_back({{"type", "function"}, {"function", std::move(fn)}});
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
    } else {
      // Built-in tools (web_search, file_search, code_interpreter, computer use, image
      // generation, local_shell, mcp) run inside OpenAI's platform; namespace tools too.
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

failure translate(const ojson& in, responses_translation& t, ojson& out) {
  const ojson* model = member(in, "model");
  if (!model || !model->is_string() || model->get_ref<const std::string&>().empty())
    return fail_at("model", "required non-empty string");
  if (given(member(in, "previous_response_id")))
    return fail_at("previous_response_id",
                   "this gateway lane is stateless and keeps no responses: send the whole "
                   "conversation in `input` with store: false");
  if (given(member(in, "conversation")))
    return fail_at("conversation",
                   "this gateway lane is stateless and keeps no conversations: send the whole "
                   "conversation in `input` with store: false");

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

  input_builder b(t);
  if (const ojson* ins = member(in, "instructions"); given(ins)) b.system(ins->get<std::string>());
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

// ---- the answer ----------------------------------------------------------------------------

ojson output_text_part(std::string text) {
  return {{"type", "output_text"}, {"text", std::move(text)}, {"annotations", ojson::array()}};
}

ojson refusal_part(std::string text) {
  return {{"type", "refusal"}, {"refusal", std::move(text)}};
}

ojson reasoning_text_part(std::string text) {
  return {{"type", "reasoning_text"}, {"text", std::move(text)}};
}

ojson reasoning_item(const std::string& id, ojson content) {
  return {{"type", "reasoning"},
          {"id", id},
          {"summary", ojson::array()},
          {"content", std::move(content)}};
}

ojson message_item(const std::string& id, const char* status, ojson content) {
  return {{"type", "message"},
          {"id", id},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

ojson function_item(const std::string& id, const ojson& call_id, const ojson& name,
                    std::string arguments, const char* status) {
  return {
      {"type", "function_call"},           {"id", id},        {"call_id", call_id}, {"name", name},
      {"arguments", std::move(arguments)}, {"status", status}};
}

ojson custom_item(const std::string& id, const ojson& call_id, const ojson& name,
                  std::string input) {
  return {{"type", "custom_tool_call"},
          {"id", id},
          {"call_id", call_id},
          {"name", name},
          {"input", std::move(input)}};
}

// A custom tool's input from the arguments of the function it was sent as: the `input`
// string, or the raw arguments when the model wrote something else.
std::string custom_input(const std::string& arguments) {
  ojson args = parse_bounded(arguments);
  if (const ojson* input = member(args, "input"); input && input->is_string())
    return input->get<std::string>();
  return arguments;
}

bool is_custom(const responses_translation& t, const std::string& name) {
  return std::find(t.custom_tools.begin(), t.custom_tools.end(), name) != t.custom_tools.end();
}

// The call's id, or a fresh one: a Response's calls need a non-empty, unique call_id.
std::string call_id_of(const ojson& call) {
  std::string id = string_member(call, "id");
  return id.empty() ? new_id("call_") : id;
}

// The status a finish_reason makes, and the incomplete_details with it.
std::pair<const char*, ojson> outcome(const std::string& finish_reason) {
  if (finish_reason == "length") return {"incomplete", ojson{{"reason", "max_output_tokens"}}};
  if (finish_reason == "content_filter") return {"incomplete", ojson{{"reason", "content_filter"}}};
  return {"completed", ojson()};
}

// The one Response builder: the whole answer, every event's `response` and the final one.
ojson response_object(const responses_translation& t, const std::string& id, std::int64_t created,
                      std::string_view model, std::string_view status, ojson output,
                      ojson usage_obj, ojson incomplete, const answer_notes* notes) {
  auto echo = [&](const char* key, ojson fallback) {
    const ojson* v = member(t.echo, key);
    return v ? *v : fallback;
  };
  ojson metadata = echo("metadata", ojson::object());
  if (!metadata.is_object()) metadata = ojson::object();
  if (!t.dropped.empty()) metadata["meridian_dropped"] = t.dropped;
  ojson r{{"id", id},
          {"object", "response"},
          {"created_at", created},
          {"status", std::string(status)},
          {"error", nullptr},
          {"incomplete_details", std::move(incomplete)},
          {"instructions", echo("instructions", nullptr)},
          {"max_output_tokens", echo("max_output_tokens", nullptr)},
          {"model", std::string(model)},
          {"output", std::move(output)},
          {"parallel_tool_calls", echo("parallel_tool_calls", true)},
          {"previous_response_id", nullptr},
          {"reasoning", echo("reasoning", nullptr)},
          {"store", false},
          {"temperature", echo("temperature", nullptr)},
          {"text", echo("text", ojson{{"format", {{"type", "text"}}}})},
          {"tool_choice", echo("tool_choice", "auto")},
          {"tools", echo("tools", ojson::array())},
          {"top_p", echo("top_p", nullptr)},
          {"usage", std::move(usage_obj)},
          {"user", echo("user", nullptr)},
          {"metadata", std::move(metadata)}};
  if (notes && !notes->provider.empty()) r["provider"] = notes->provider;
  return r;
}

std::optional<usage> usage_of(const ojson& obj) {
  const ojson* u = member(obj, "usage");
  if (!u || !u->is_object()) return std::nullopt;
  return parse_usage(nlohmann::json(*u));
}

// A canonical message's text: a string, or the text parts some backends send.
std::string content_text(const ojson& msg) {
  const ojson* c = member(msg, "content");
  if (c && c->is_string()) return c->get<std::string>();
  std::string text;
  if (c && c->is_array()) {
    for (const auto& p : *c)
      if (string_member(p, "type") == "text") text += string_member(p, "text");
  }
  return text;
}

std::string reasoning_text(const ojson& obj) {
  std::string r = string_member(obj, "reasoning_content");
  return r.empty() ? string_member(obj, "reasoning") : r;
}

std::string arguments_of(const ojson* fn) {
  const ojson* a = fn ? member(*fn, "arguments") : nullptr;
  if (a && a->is_string()) return a->get<std::string>();
  return given(a) ? a->dump() : std::string();
}

}  // namespace

std::variant<responses_translation, request_error> responses_request_to_openai(
    std::string_view body) {
  if (core::json_nesting_exceeds(body, core::k_max_json_depth))
    return request_error{
        "request body nests deeper than " + std::to_string(core::k_max_json_depth) + " levels", ""};
  ojson in = ojson::parse(body, nullptr, false);
  if (in.is_discarded()) return request_error{"request body is not valid JSON", ""};
  if (!in.is_object()) return request_error{"request body must be a JSON object", ""};
  responses_translation t;
  ojson out = ojson::object();
  if (auto f = translate(in, t, out)) return request_error{f.message, f.param};
  t.chat_body = out.dump();
  return t;
}

ojson responses_usage(const usage& u, const answer_notes* notes) {
  ojson r{{"input_tokens", u.prompt_total()},
          {"input_tokens_details",
           {{"cached_tokens", u.cache_read}, {"cache_write_tokens", u.cache_write}}},
          {"output_tokens", u.completion_total()},
          {"output_tokens_details", {{"reasoning_tokens", u.reasoning}}},
          {"total_tokens", u.prompt_total() + u.completion_total()}};
  if (notes && notes->cost) r["cost"] = *notes->cost;
  if (notes && notes->estimated) r["estimated"] = true;
  return r;
}

std::string openai_response_to_responses(std::string_view openai_body,
                                         const responses_translation& t, std::string_view model,
                                         const std::optional<usage>& tokens,
                                         const answer_notes* notes) {
  auto [in, msg, finish] = inbound::first_choice_of(openai_body);

  ojson output = ojson::array();
  if (std::string r = reasoning_text(msg); !r.empty()) {
    ojson content = ojson::array();
    content.push_back(reasoning_text_part(std::move(r)));
    output.push_back(reasoning_item(new_id("rs_"), std::move(content)));
  }
  ojson parts = ojson::array();
  if (std::string text = content_text(msg); !text.empty())
    parts.push_back(output_text_part(std::move(text)));
  if (std::string refusal = string_member(msg, "refusal"); !refusal.empty())
    parts.push_back(refusal_part(std::move(refusal)));
  if (!parts.empty()) output.push_back(message_item(new_id("msg_"), "completed", std::move(parts)));
  if (const ojson* calls = member(msg, "tool_calls"); calls && calls->is_array()) {
    for (const auto& call : *calls) {
      const ojson* fn = member(call, "function");
      std::string name = fn ? string_member(*fn, "name") : "";
      std::string args = arguments_of(fn);
      if (is_custom(t, name)) {
        output.push_back(custom_item(new_id("ctc_"), call_id_of(call), name, custom_input(args)));
      } else {
        output.push_back(
            function_item(new_id("fc_"), call_id_of(call), name, std::move(args), "completed"));
      }
    }
  }

  usage u = tokens ? *tokens : usage_of(in).value_or(usage{});
  auto [status, incomplete] = outcome(finish);
  return response_object(t, new_id("resp_"), now_seconds(), model, status, std::move(output),
                         responses_usage(u, notes), std::move(incomplete), notes)
      .dump();
}

// ---- the stream ----------------------------------------------------------------------------

responses_stream_encoder::responses_stream_encoder(const responses_translation& t,
                                                   std::string model)
    : t_(t), model_(std::move(model)), id_(new_id("resp_")), created_(now_seconds()) {}

void responses_stream_encoder::emit(std::string type, nlohmann::ordered_json body,
                                    std::vector<sse_event>& out) {
  ojson data{{"type", type}, {"sequence_number", sequence_++}};
  for (auto it = body.begin(); it != body.end(); ++it) data[it.key()] = std::move(*it);
  out.push_back(sse_event{std::move(type), data.dump(), {}});
}

nlohmann::ordered_json responses_stream_encoder::response(std::string_view status) const {
  return response_object(t_, id_, created_, model_, status, output_, nullptr, nullptr, nullptr);
}

void responses_stream_encoder::start(std::vector<sse_event>& out) {
  started_ = true;
  emit("response.created", {{"response", response("in_progress")}}, out);
  emit("response.in_progress", {{"response", response("in_progress")}}, out);
}

void responses_stream_encoder::open_item(item_kind kind, std::vector<sse_event>& out,
                                         const nlohmann::ordered_json* call) {
  close_item(out);
  open_ = kind;
  text_.clear();
  parts_ = ojson::array();
  part_open_ = false;
  const ojson* fn = call ? member(*call, "function") : nullptr;
  std::string name = fn ? string_member(*fn, "name") : "";
  switch (kind) {
    case item_kind::reasoning:
      item_id_ = new_id("rs_");
      item_ = reasoning_item(item_id_, ojson::array());
      break;
    case item_kind::message:
      item_id_ = new_id("msg_");
      item_ = message_item(item_id_, "in_progress", ojson::array());
      break;
    case item_kind::function:
      item_id_ = new_id("fc_");
      item_ = function_item(item_id_, call_id_of(call ? *call : ojson()), name, "", "in_progress");
      break;
    case item_kind::custom:
      item_id_ = new_id("ctc_");
      item_ = custom_item(item_id_, call_id_of(call ? *call : ojson()), name, "");
      break;
    case item_kind::none:
      return;
  }
  const std::size_t index = output_.size();
  emit("response.output_item.added", {{"output_index", index}, {"item", item_}}, out);
  // The reasoning text is the item's content part 0, added as OpenAI's SDKs expect before
  // its first reasoning_text delta.
  if (kind == item_kind::reasoning)
    emit("response.content_part.added",
         {{"item_id", item_id_},
          {"output_index", index},
          {"content_index", 0},
          {"part", reasoning_text_part("")}},
         out);
}

void responses_stream_encoder::open_part(bool refusal, std::vector<sse_event>& out) {
  close_part(out);
  part_open_ = true;
  part_refusal_ = refusal;
  text_.clear();
  emit("response.content_part.added",
       {{"item_id", item_id_},
        {"output_index", output_.size()},
        {"content_index", parts_.size()},
        {"part", refusal ? refusal_part("") : output_text_part("")}},
       out);
}

void responses_stream_encoder::close_part(std::vector<sse_event>& out) {
  if (!part_open_) return;
  const std::size_t index = output_.size(), content_index = parts_.size();
  if (part_refusal_) {
    emit("response.refusal.done",
         {{"item_id", item_id_},
          {"output_index", index},
          {"content_index", content_index},
          {"refusal", text_}},
         out);
  } else {
    emit("response.output_text.done",
         {{"item_id", item_id_},
          {"output_index", index},
          {"content_index", content_index},
          {"text", text_},
          {"logprobs", ojson::array()}},
         out);
  }
  ojson part = part_refusal_ ? refusal_part(text_) : output_text_part(text_);
  emit("response.content_part.done",
       {{"item_id", item_id_},
        {"output_index", index},
        {"content_index", content_index},
        {"part", part}},
       out);
  parts_.push_back(std::move(part));
  part_open_ = false;
  text_.clear();
}

void responses_stream_encoder::close_item(std::vector<sse_event>& out) {
  if (open_ == item_kind::none) return;
  const std::size_t index = output_.size();
  ojson done;
  switch (open_) {
    case item_kind::reasoning: {
      emit("response.reasoning_text.done",
           {{"item_id", item_id_}, {"output_index", index}, {"content_index", 0}, {"text", text_}},
           out);
      emit("response.content_part.done",
           {{"item_id", item_id_},
            {"output_index", index},
            {"content_index", 0},
            {"part", reasoning_text_part(text_)}},
           out);
      ojson content = ojson::array();
      content.push_back(reasoning_text_part(text_));
      done = reasoning_item(item_id_, std::move(content));
      break;
    }
    case item_kind::message:
      close_part(out);
      done = message_item(item_id_, "completed", parts_);
      break;
    case item_kind::function:
      emit("response.function_call_arguments.done",
           {{"item_id", item_id_},
            {"output_index", index},
            {"name", item_["name"]},
            {"arguments", text_}},
           out);
      done = function_item(item_id_, item_["call_id"], item_["name"], text_, "completed");
      break;
    case item_kind::custom: {
      std::string input = custom_input(text_);
      if (!input.empty())
        emit("response.custom_tool_call_input.delta",
             {{"item_id", item_id_}, {"output_index", index}, {"delta", input}}, out);
      emit("response.custom_tool_call_input.done",
           {{"item_id", item_id_}, {"output_index", index}, {"input", input}}, out);
      done = custom_item(item_id_, item_["call_id"], item_["name"], std::move(input));
      break;
    }
    case item_kind::none:
      break;
  }
  if (open_ == item_kind::function || open_ == item_kind::custom) {
    for (auto& slot : tools_)
      if (slot.index == open_tool_) slot.arguments = text_;
  }
  emit("response.output_item.done", {{"output_index", index}, {"item", done}}, out);
  output_.push_back(std::move(done));
  open_ = item_kind::none;
  open_tool_ = -1;
  text_.clear();
  parts_ = ojson::array();
}

void responses_stream_encoder::on_tool_call(const nlohmann::ordered_json& call,
                                            std::vector<sse_event>& out) {
  const ojson* idx = member(call, "index");
  long index = idx && idx->is_number_integer() ? idx->get<long>() : 0;
  const ojson* fn = member(call, "function");
  std::string args = arguments_of(fn);
  bool is_open =
      (open_ == item_kind::function || open_ == item_kind::custom) && open_tool_ == index;
  auto slot = std::find_if(tools_.begin(), tools_.end(),
                           [&](const tool_slot& s) { return s.index == index; });
  if (!is_open && slot != tools_.end()) {
    // A fragment for a call whose item is already done (interleaved parallel calls): its
    // events are over, but the final Response still carries the whole arguments.
    slot->arguments += args;
    ojson& item = output_[slot->output_index];
    if (slot->custom) {
      item["input"] = custom_input(slot->arguments);
    } else {
      item["arguments"] = slot->arguments;
    }
    return;
  }
  if (!is_open) {
    std::string name = fn ? string_member(*fn, "name") : "";
    bool custom = is_custom(t_, name);
    open_item(custom ? item_kind::custom : item_kind::function, out, &call);
    open_tool_ = index;
    tools_.push_back(tool_slot{index, output_.size(), custom, ""});
  } else if (item_["name"] == "" && fn) {
    // Some backends name the call after its first fragment.
    if (std::string name = string_member(*fn, "name"); !name.empty()) item_["name"] = name;
  }
  if (args.empty()) return;
  text_ += args;
  if (open_ == item_kind::function)
    emit("response.function_call_arguments.delta",
         {{"item_id", item_id_}, {"output_index", output_.size()}, {"delta", args}}, out);
}

void responses_stream_encoder::on_chunk(std::string_view chunk_json, std::vector<sse_event>& out) {
  if (ended_) return;
  ojson chunk = parse_bounded(chunk_json);
  if (!chunk.is_object()) return;
  if (auto u = usage_of(chunk)) tokens_ = u;
  if (!started_) start(out);

  const ojson* choices = member(chunk, "choices");
  if (!choices || !choices->is_array() || choices->empty()) return;
  const ojson& choice = (*choices)[0];
  if (std::string f = string_member(choice, "finish_reason"); !f.empty()) finish_reason_ = f;
  const ojson* delta = member(choice, "delta");
  if (!delta || !delta->is_object()) return;

  if (std::string r = reasoning_text(*delta); !r.empty()) {
    if (open_ != item_kind::reasoning) open_item(item_kind::reasoning, out, nullptr);
    emit("response.reasoning_text.delta",
         {{"item_id", item_id_},
          {"output_index", output_.size()},
          {"content_index", 0},
          {"delta", r}},
         out);
    text_ += r;
  }
  auto message_delta = [&](bool refusal, const std::string& piece) {
    if (open_ != item_kind::message) open_item(item_kind::message, out, nullptr);
    if (!part_open_ || part_refusal_ != refusal) open_part(refusal, out);
    ojson body{{"item_id", item_id_},
               {"output_index", output_.size()},
               {"content_index", parts_.size()},
               {"delta", piece}};
    if (!refusal) body["logprobs"] = ojson::array();
    emit(refusal ? "response.refusal.delta" : "response.output_text.delta", std::move(body), out);
    text_ += piece;
  };
  if (std::string c = string_member(*delta, "content"); !c.empty()) message_delta(false, c);
  if (std::string c = string_member(*delta, "refusal"); !c.empty()) message_delta(true, c);

  const ojson* calls = member(*delta, "tool_calls");
  if (!calls || !calls->is_array()) return;
  for (const auto& call : *calls)
    if (call.is_object()) on_tool_call(call, out);
}

void responses_stream_encoder::finish(const std::optional<usage>& tokens,
                                      std::vector<sse_event>& out, const answer_notes* notes) {
  if (ended_) return;
  if (tokens) tokens_ = tokens;
  if (!started_) start(out);
  close_item(out);
  ended_ = true;
  auto [status, incomplete] = outcome(finish_reason_);
  ojson r = response_object(t_, id_, created_, model_, status, output_,
                            responses_usage(tokens_.value_or(usage{}), notes),
                            std::move(incomplete), notes);
  emit(std::string("response.") + status, {{"response", std::move(r)}}, out);
}

void responses_stream_encoder::fail(std::string_view message, std::string_view code,
                                    std::vector<sse_event>& out) {
  if (ended_) return;
  if (!started_) start(out);
  ended_ = true;
  std::string c = code.empty() ? std::string("server_error") : std::string(code);
  emit("error", {{"code", c}, {"message", std::string(message)}, {"param", nullptr}}, out);
  ojson r = response("failed");
  r["error"] = {{"code", c}, {"message", std::string(message)}};
  if (tokens_) r["usage"] = responses_usage(*tokens_, nullptr);
  emit("response.failed", {{"response", std::move(r)}}, out);
}

}  // namespace meridian::providers
