// The canonical answer -> the OpenAI Responses API: a whole chat.completion as a Response object,
// and canonical chunks as the numbered Responses event stream (see responses_inbound.hpp). The
// request side is responses_request.cpp.
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

using inbound::given;
using inbound::member;
using inbound::parse_bounded;
using inbound::string_member;

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

}  // namespace

std::string new_item_id(std::string_view type) {
  static constexpr std::pair<std::string_view, std::string_view> k_prefixes[] = {
      {"response", "resp_"},
      {"message", "msg_"},
      {"function_call", "fc_"},
      {"function_call_output", "fco_"},
      {"custom_tool_call", "ctc_"},
      {"custom_tool_call_output", "ctco_"},
      {"reasoning", "rs_"}};
  for (const auto& [t, prefix] : k_prefixes)
    if (t == type) return new_id(prefix);
  return new_id("item_");
}

namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

// A function_call item; a flattened namespace function is named as the client declared it,
// with its `namespace`.
ojson function_item(const responses_translation& t, const std::string& id, const ojson& call_id,
                    const std::string& name, std::string arguments, const char* status) {
  ojson item{{"type", "function_call"}, {"id", id}, {"call_id", call_id}, {"name", name}};
  for (const auto& f : t.namespaces) {
    if (f.flat != name) continue;
    item["name"] = f.name;
    item["namespace"] = f.ns;
    break;
  }
  item["arguments"] = std::move(arguments);
  item["status"] = status;
  return item;
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
          {"previous_response_id", t.previous_response_id.empty()
                                       ? ojson(nullptr)
                                       : ojson(t.previous_response_id)},
          {"reasoning", echo("reasoning", nullptr)},
          {"store", t.store},
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
            function_item(t, new_id("fc_"), call_id_of(call), name, std::move(args), "completed"));
      }
    }
  }

  usage u = tokens ? *tokens : usage_of(in).value_or(usage{});
  auto [status, incomplete] = outcome(finish);
  return response_object(t, t.id.empty() ? new_id("resp_") : t.id, now_seconds(), model, status,
                         std::move(output),
                         responses_usage(u, notes), std::move(incomplete), notes)
      .dump();
}

// ---- the stream ----------------------------------------------------------------------------

responses_stream_encoder::responses_stream_encoder(const responses_translation& t,
                                                   std::string model)
    : t_(t),
      model_(std::move(model)),
      id_(t.id.empty() ? new_id("resp_") : t.id),
      created_(now_seconds()) {}

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
      item_ =
          function_item(t_, item_id_, call_id_of(call ? *call : ojson()), name, "", "in_progress");
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
      done = item_;
      done["arguments"] = text_;
      done["status"] = "completed";
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
  final_ = r.dump();
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
