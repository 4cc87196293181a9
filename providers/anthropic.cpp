// Anthropic Messages dialect: OpenAI chat requests to /messages, answers and SSE events back.
#include "providers/anthropic.hpp"

#include <map>
#include <utility>

#include "providers/translate.hpp"

namespace meridian::providers {

namespace {

using json = nlohmann::json;

// Anthropic requires max_tokens on every request; OpenAI clients usually leave it out, so an
// absent value gets a default large enough for ordinary answers and small enough to be
// accepted by every current Claude model.
constexpr std::uint64_t k_default_max_tokens = 4096;

std::string param_of(std::size_t i, const char* member = nullptr) {
  std::string p = "messages[" + std::to_string(i) + "]";
  if (member) p.append(".").append(member);
  return p;
}

json image_block(const std::string& url) {
  if (auto d = parse_data_url(url))
    return {{"type", "image"},
            {"source", {{"type", "base64"}, {"media_type", d->media_type}, {"data", d->data}}}};
  return {{"type", "image"}, {"source", {{"type", "url"}, {"url", url}}}};
}

// OpenAI user content (a string or parts) -> Anthropic content blocks.
std::optional<request_error> user_blocks(const json& content, const std::string& param, json& out) {
  if (content.is_string()) {
    // Anthropic rejects empty text blocks.
    if (!content.get_ref<const std::string&>().empty())
      out.push_back({{"type", "text"}, {"text", content}});
    return std::nullopt;
  }
  if (!content.is_array()) return request_error{"'content' must be a string or an array", param};
  for (const json& part : content) {
    std::string type = part.is_object() && part.contains("type") && part["type"].is_string()
                           ? part["type"].get<std::string>()
                           : std::string();
    if (type == "text" && part.contains("text") && part["text"].is_string()) {
      if (!part["text"].get_ref<const std::string&>().empty())
        out.push_back({{"type", "text"}, {"text", part["text"]}});
    } else if (type == "image_url" && part.contains("image_url")) {
      const json& iu = part["image_url"];
      const json* url = iu.is_string()                         ? &iu
                        : iu.is_object() && iu.contains("url") ? &iu["url"]
                                                               : nullptr;
      if (!url || !url->is_string())
        return request_error{"an image_url part needs a 'url' string", param};
      out.push_back(image_block(url->get<std::string>()));
    } else {
      return request_error{"content part type '" + type + "' is not supported by anthropic", param};
    }
  }
  return std::nullopt;
}

// Anthropic requires user and assistant turns to alternate: consecutive messages of one role
// (several tool results, or a tool result followed by a user message) become one turn.
void append_turn(json& messages, const char* role, json blocks) {
  if (blocks.empty()) return;
  if (!messages.empty() && messages.back()["role"] == role) {
    json& content = messages.back()["content"];
    for (json& b : blocks) content.push_back(std::move(b));
    return;
  }
  messages.push_back({{"role", role}, {"content", std::move(blocks)}});
}

std::optional<request_error> encode_messages(const json& in, std::string& system, json& messages) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    const json& m = in[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return request_error{"each message needs a string 'role'", param_of(i, "role")};
    const std::string role = m["role"].get<std::string>();
    const json content = m.contains("content") ? m["content"] : json();
    if (role == "system" || role == "developer") {
      // Anthropic has one top-level system prompt; system messages anywhere in the
      // conversation are joined into it in order.
      auto text = content_text(content);
      if (!text) return request_error{"system content must be text", param_of(i, "content")};
      if (!text->empty()) {
        if (!system.empty()) system.append("\n\n");
        system.append(*text);
      }
    } else if (role == "user") {
      json blocks = json::array();
      if (auto err = user_blocks(content, param_of(i, "content"), blocks)) return err;
      append_turn(messages, "user", std::move(blocks));
    } else if (role == "assistant") {
      // reasoning_content is dropped: Anthropic only accepts thinking blocks with the
      // signature it issued, which an OpenAI client does not keep.
      json blocks = json::array();
      auto text = content_text(content);
      if (!text) return request_error{"assistant content must be text", param_of(i, "content")};
      if (!text->empty()) blocks.push_back({{"type", "text"}, {"text", *text}});
      if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
        if (!calls->is_array())
          return request_error{"'tool_calls' must be an array", param_of(i, "tool_calls")};
        for (const json& call : *calls) {
          auto args = tool_call_arguments(call, param_of(i, "tool_calls"));
          if (auto* err = std::get_if<request_error>(&args)) return *err;
          const json& fn = call["function"];
          if (!call.contains("id") || !call["id"].is_string() || !fn.contains("name") ||
              !fn["name"].is_string())
            return request_error{"a tool call needs an 'id' and a function 'name'",
                                 param_of(i, "tool_calls")};
          blocks.push_back({{"type", "tool_use"},
                            {"id", call["id"]},
                            {"name", fn["name"]},
                            {"input", std::move(std::get<json>(args))}});
        }
      }
      append_turn(messages, "assistant", std::move(blocks));
    } else if (role == "tool") {
      if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string())
        return request_error{"a tool message needs a 'tool_call_id'", param_of(i, "tool_call_id")};
      auto text = content_text(content);
      if (!text) return request_error{"tool content must be text", param_of(i, "content")};
      json block = {{"type", "tool_result"}, {"tool_use_id", m["tool_call_id"]}};
      if (!text->empty()) block["content"] = *text;
      append_turn(messages, "user", json::array({std::move(block)}));
    } else {
      return request_error{"message role '" + role + "' is not supported by anthropic",
                           param_of(i, "role")};
    }
  }
  return std::nullopt;
}

std::optional<request_error> encode_tools(const json& req, json& out) {
  auto tools = req.find("tools");
  if (tools != req.end() && !tools->is_null()) {
    if (!tools->is_array()) return request_error{"'tools' must be an array", "tools"};
    json list = json::array();
    for (const json& t : *tools) {
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") ||
          !t["function"]["name"].is_string())
        return request_error{"only function tools with a name are supported by anthropic", "tools"};
      const json& fn = t["function"];
      json tool = {{"name", fn["name"]}};
      if (fn.contains("description") && fn["description"].is_string())
        tool["description"] = fn["description"];
      // input_schema is required by Anthropic; a function without parameters takes none.
      tool["input_schema"] = fn.contains("parameters") && fn["parameters"].is_object()
                                 ? fn["parameters"]
                                 : json{{"type", "object"}, {"properties", json::object()}};
      list.push_back(std::move(tool));
    }
    if (!list.empty()) out["tools"] = std::move(list);
  }

  json choice;
  if (auto tc = req.find("tool_choice"); tc != req.end() && !tc->is_null()) {
    if (*tc == "auto") {
      choice = {{"type", "auto"}};
    } else if (*tc == "none") {
      choice = {{"type", "none"}};
    } else if (*tc == "required") {
      choice = {{"type", "any"}};
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      choice = {{"type", "tool"}, {"name", (*tc)["function"]["name"]}};
    } else {
      return request_error{"'tool_choice' must be auto, none, required or a named function",
                           "tool_choice"};
    }
  }
  // OpenAI's parallel_tool_calls=false is Anthropic's disable_parallel_tool_use, which lives
  // in tool_choice (and means nothing with "none").
  if (auto p = req.find("parallel_tool_calls"); p != req.end() && *p == false) {
    if (choice.is_null()) choice = {{"type", "auto"}};
    if (choice["type"] != "none") choice["disable_parallel_tool_use"] = true;
  }
  if (!choice.is_null()) out["tool_choice"] = std::move(choice);
  return std::nullopt;
}

std::variant<upstream_request, request_error> encode(std::string_view body, bool stream,
                                                     std::string_view upstream_model) {
  json req = json::parse(body, nullptr, false);
  if (req.is_discarded() || !req.is_object())
    return request_error{"request body must be a JSON object", ""};
  if (!req.contains("messages") || !req["messages"].is_array())
    return request_error{"'messages' must be an array", "messages"};

  json out = {{"model", upstream_model}};
  std::string system;
  json messages = json::array();
  if (auto err = encode_messages(req["messages"], system, messages)) return *err;
  if (!system.empty()) out["system"] = system;
  out["messages"] = std::move(messages);

  auto max = max_output_tokens(req);
  if (auto* err = std::get_if<request_error>(&max)) return *err;
  out["max_tokens"] = std::get<std::optional<std::uint64_t>>(max).value_or(k_default_max_tokens);

  auto stops = stop_sequences(req);
  if (auto* err = std::get_if<request_error>(&stops)) return *err;
  if (!std::get<json>(stops).empty()) out["stop_sequences"] = std::move(std::get<json>(stops));

  for (const char* key : {"temperature", "top_p"}) {
    auto it = req.find(key);
    if (it == req.end() || it->is_null()) continue;
    if (!it->is_number()) return request_error{std::string("'") + key + "' must be a number", key};
    out[key] = *it;
  }
  if (auto n = req.find("n"); n != req.end() && n->is_number() && n->get<double>() > 1)
    return request_error{"'n' greater than 1 is not supported by anthropic", "n"};
  if (auto rf = req.find("response_format"); rf != req.end() && rf->is_object()) {
    // json_object has no Anthropic counterpart; the client's prompt must ask for JSON anyway
    // (OpenAI requires it to), so the request goes on without it. A schema, though, would be
    // a promise the gateway cannot keep.
    if (rf->value("type", "") == "json_schema")
      return request_error{"response_format json_schema is not supported by anthropic",
                           "response_format"};
  }
  if (auto err = encode_tools(req, out)) return *err;
  if (auto user = req.find("user"); user != req.end() && user->is_string())
    out["metadata"] = {{"user_id", *user}};
  if (stream) out["stream"] = true;

  upstream_request up;
  up.path = "/messages";
  up.headers.emplace_back("anthropic-version", "2023-06-01");
  up.body = out.dump();
  // response_format json_object has no counterpart (json_schema was refused above).
  up.dropped = encoding_drops(req, {"tools", "tool_choice", "parallel_tool_calls", "n", "user",
                                    "max_tokens", "max_completion_tokens", "stop", "temperature",
                                    "top_p"});
  return up;
}

// The hour-long part of the cache writes (usage.cache_creation.ephemeral_1h_input_tokens).
std::uint64_t one_hour_writes(const json& u) {
  auto it = u.find("cache_creation");
  return it != u.end() && it->is_object() ? token_count(*it, "ephemeral_1h_input_tokens") : 0;
}

usage usage_of(const json& u) {
  usage out;
  out.present = true;
  out.input = token_count(u, "input_tokens");
  out.cache_read = token_count(u, "cache_read_input_tokens");
  out.cache_write = token_count(u, "cache_creation_input_tokens");
  out.cache_write_1h = one_hour_writes(u);
  out.output = token_count(u, "output_tokens");
  return out;
}

std::string error_text(const json& j) {
  const json& e = j.contains("error") ? j["error"] : j;
  std::string type = e.is_object() ? e.value("type", "") : "";
  std::string message = e.is_object() ? e.value("message", "") : "";
  if (type.empty() && message.empty()) return "anthropic reported an error";
  return type.empty() ? message : type + ": " + message;
}

std::variant<decoded_chat, decode_error> decode(std::string_view body, std::string_view model) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return decode_error{"anthropic answer is not JSON"};
  if (j.value("type", "") == "error") return decode_error{error_text(j)};
  if (!j.contains("content") || !j["content"].is_array())
    return decode_error{"anthropic answer has no content array"};

  std::string text, reasoning;
  bool has_text = false;
  json tool_calls = json::array();
  for (const json& block : j["content"]) {
    if (!block.is_object()) continue;
    std::string type = block.value("type", "");
    if (type == "text" && block.contains("text") && block["text"].is_string()) {
      text += block["text"].get<std::string>();
      has_text = true;
    } else if (type == "thinking" && block.contains("thinking") && block["thinking"].is_string()) {
      reasoning += block["thinking"].get<std::string>();
    } else if (type == "tool_use") {
      tool_calls.push_back(
          {{"id", block.value("id", "")},
           {"type", "function"},
           {"function",
            {{"name", block.value("name", "")},
             {"arguments", block.contains("input") ? block["input"].dump() : "{}"}}}});
    }  // redacted_thinking and server-side tool blocks have no OpenAI counterpart
  }

  json message = {{"role", "assistant"}, {"content", has_text ? json(text) : json()}};
  if (!reasoning.empty()) message["reasoning_content"] = reasoning;
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);
  json finish;
  if (j.contains("stop_reason") && j["stop_reason"].is_string())
    finish = anthropic_finish_reason(j["stop_reason"].get<std::string>());

  json out = {
      {"id", j.value("id", "")},
      {"object", "chat.completion"},
      {"created", unix_now()},
      {"model", model},
      {"choices",
       json::array({{{"index", 0}, {"message", std::move(message)}, {"finish_reason", finish}}})},
  };
  decoded_chat result;
  if (j.contains("usage") && j["usage"].is_object()) {
    result.tokens = usage_of(j["usage"]);
    out["usage"] = openai_usage(*result.tokens);
  }
  result.body = out.dump();
  return result;
}

class anthropic_stream final : public translating_stream {
 public:
  explicit anthropic_stream(std::string_view model) : translating_stream(model, "anthropic") {}

 private:
  struct tool_block {
    std::size_t index;  // position among the answer's tool calls: OpenAI's tool_calls index
    bool got_arguments = false;
  };

  bool handle(const sse_event& ev, std::vector<std::string>& out) override {
    json j = json::parse(ev.data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      error_ = "anthropic stream event is not JSON";
      return false;
    }
    std::string type = j.value("type", ev.event);
    if (type == "message_start") {
      const json& msg = j.contains("message") ? j["message"] : json::object();
      if (msg.is_object()) {
        if (msg.contains("id") && msg["id"].is_string()) id_ = msg["id"].get<std::string>();
        if (msg.contains("usage")) merge_usage(msg["usage"]);
      }
      emit(out, {{"role", "assistant"}, {"content", ""}});
    } else if (type == "content_block_start") {
      on_block_start(j, out);
    } else if (type == "content_block_delta") {
      on_block_delta(j, out);
    } else if (type == "content_block_stop") {
      on_block_stop(j, out);
    } else if (type == "message_delta") {
      if (j.contains("usage")) merge_usage(j["usage"]);
      if (j.contains("delta") && j["delta"].is_object() && j["delta"].contains("stop_reason") &&
          j["delta"]["stop_reason"].is_string())
        emit(out, json::object(),
             anthropic_finish_reason(j["delta"]["stop_reason"].get<std::string>()));
    } else if (type == "message_stop") {
      complete_ = true;
      if (tokens_.present) out.push_back(make_usage_chunk(id_, created_, model_, tokens_).dump());
    } else if (type == "error") {
      error_ = error_text(j);
      return false;
    }  // ping, and event types added later, carry nothing to relay
    return true;
  }

  void emit(std::vector<std::string>& out, json delta, const json& finish = nullptr) {
    out.push_back(make_chunk(id_, created_, model_, std::move(delta), finish).dump());
  }

  // message_start carries input and cache counts, message_delta the cumulative output count;
  // some Anthropic-compatible servers send cache counts only in message_delta. A field that is
  // present overrides, one that is absent keeps what came before.
  void merge_usage(const json& u) {
    if (!u.is_object()) return;
    tokens_.present = true;
    if (u.contains("input_tokens")) tokens_.input = token_count(u, "input_tokens");
    if (u.contains("cache_read_input_tokens"))
      tokens_.cache_read = token_count(u, "cache_read_input_tokens");
    if (u.contains("cache_creation_input_tokens"))
      tokens_.cache_write = token_count(u, "cache_creation_input_tokens");
    if (u.contains("cache_creation")) tokens_.cache_write_1h = one_hour_writes(u);
    if (u.contains("output_tokens")) tokens_.output = token_count(u, "output_tokens");
  }

  void on_block_start(const json& j, std::vector<std::string>& out) {
    const json& block = j.contains("content_block") ? j["content_block"] : json::object();
    if (!block.is_object() || !j.contains("index")) return;
    std::int64_t index = j["index"].is_number_integer() ? j["index"].get<std::int64_t>() : -1;
    std::string type = block.value("type", "");
    if (type == "tool_use") {
      tool_block tb{next_tool_++};
      tools_[index] = tb;
      emit(out, {{"tool_calls",
                  json::array(
                      {{{"index", tb.index},
                        {"id", block.value("id", "")},
                        {"type", "function"},
                        {"function", {{"name", block.value("name", "")}, {"arguments", ""}}}}})}});
    } else if (type == "text" && block.contains("text") && block["text"].is_string() &&
               !block["text"].get_ref<const std::string&>().empty()) {
      emit(out, {{"content", block["text"]}});
    } else if (type == "thinking" && block.contains("thinking") && block["thinking"].is_string() &&
               !block["thinking"].get_ref<const std::string&>().empty()) {
      emit(out, {{"reasoning_content", block["thinking"]}});
    }
  }

  void on_block_delta(const json& j, std::vector<std::string>& out) {
    if (!j.contains("delta") || !j["delta"].is_object()) return;
    const json& d = j["delta"];
    std::string type = d.value("type", "");
    auto string_member = [&](const char* key) -> const json* {
      return d.contains(key) && d[key].is_string() && !d[key].get_ref<const std::string&>().empty()
                 ? &d[key]
                 : nullptr;
    };
    if (type == "text_delta") {
      if (const json* t = string_member("text")) emit(out, {{"content", *t}});
    } else if (type == "thinking_delta") {
      if (const json* t = string_member("thinking")) emit(out, {{"reasoning_content", *t}});
    } else if (type == "input_json_delta") {
      auto it = tools_.find(j.value("index", std::int64_t{-1}));
      const json* part = string_member("partial_json");
      if (it == tools_.end() || !part) return;
      it->second.got_arguments = true;
      emit(out,
           {{"tool_calls",
             json::array({{{"index", it->second.index}, {"function", {{"arguments", *part}}}}})}});
    }  // signature_delta: the signature is only useful to a client that sends thinking back
  }

  void on_block_stop(const json& j, std::vector<std::string>& out) {
    auto it = tools_.find(j.value("index", std::int64_t{-1}));
    // A tool called without arguments streams no JSON at all; OpenAI clients parse the
    // concatenated arguments, and "" is not JSON.
    if (it != tools_.end() && !it->second.got_arguments)
      emit(out,
           {{"tool_calls",
             json::array({{{"index", it->second.index}, {"function", {{"arguments", "{}"}}}}})}});
  }

  std::string id_;
  std::map<std::int64_t, tool_block> tools_;  // by Anthropic content block index
  std::size_t next_tool_ = 0;
};

class anthropic_dialect final : public dialect {
 public:
  config::dialect_kind kind() const override { return config::dialect_kind::anthropic; }

  std::variant<upstream_request, request_error> encode_chat(
      std::string_view body, const chat_request& req,
      std::string_view upstream_model) const override {
    // Members of an unexpected type that the explicit checks miss make nlohmann throw; that
    // is the client's malformed request, not a gateway failure.
    try {
      return encode(body, req.stream, upstream_model);
    } catch (const json::exception& e) {
      return request_error{std::string("request cannot be translated for anthropic: ") + e.what(),
                           ""};
    }
  }

  std::variant<decoded_chat, decode_error> decode_chat(std::string_view body,
                                                       std::string_view model) const override {
    try {
      return decode(body, model);
    } catch (const json::exception& e) {
      return decode_error{std::string("unexpected anthropic answer: ") + e.what()};
    }
  }

  std::unique_ptr<stream_decoder> stream(std::string_view model) const override {
    return std::make_unique<anthropic_stream>(model);
  }

  // 529 is Anthropic's "overloaded": the request was fine, the capacity was not.
  upstream_error classify(unsigned status, std::string_view body) const override {
    return status == 529 ? upstream_error::retryable : dialect::classify(status, body);
  }
};

}  // namespace

std::unique_ptr<dialect> make_anthropic_dialect() {
  return std::make_unique<anthropic_dialect>();
}

bool add_cache_breakpoints(std::string& messages_body) {
  if (messages_body.find("cache_control") != std::string::npos) return false;
  auto j = json::parse(messages_body, nullptr, false);
  if (!j.is_object()) return false;
  const json mark = {{"type", "ephemeral"}};
  bool changed = false;
  // A string content becomes one text block, which can carry the mark.
  auto mark_last_block = [&](json& content) {
    if (content.is_string()) content = json::array({{{"type", "text"}, {"text", content}}});
    if (!content.is_array() || content.empty() || !content.back().is_object()) return;
    content.back()["cache_control"] = mark;
    changed = true;
  };
  if (auto t = j.find("tools");
      t != j.end() && t->is_array() && !t->empty() && t->back().is_object()) {
    t->back()["cache_control"] = mark;
    changed = true;
  }
  if (auto s = j.find("system"); s != j.end()) mark_last_block(*s);
  if (auto m = j.find("messages"); m != j.end() && m->is_array() && m->size() >= 2) {
    // The turn before the last user message: everything up to it is what the next request
    // resends unchanged.
    for (std::size_t i = m->size() - 1; i-- > 0;) {
      if ((*m)[i].is_object() && (*m)[i].contains("content")) {
        mark_last_block((*m)[i]["content"]);
        break;
      }
    }
  }
  if (changed) messages_body = j.dump();
  return changed;
}

}  // namespace meridian::providers
