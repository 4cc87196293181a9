// The simulated OpenAI Responses API (POST /v1/responses on OpenAI-dialect providers): the
// request read as the chat conversation it stands for, answered by the same plan as chat
// completions (plan_openai_reply), as a Response object or OpenAI's numbered event stream. Its
// own small reading of the format, written from OpenAI's API reference, independent of
// Meridian's translator, so that a pass-through test checks Meridian against something else.
#include <ctime>

#include "tools/sim/detail.hpp"
#include "tools/sim/sim.hpp"

namespace meridian::sim {

using nlohmann::json;

namespace {

std::string text_of(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array())
    for (const auto& part : content)
      if (part.is_object() && part.contains("text") && part["text"].is_string())
        out += (out.empty() ? "" : "\n") + part["text"].get<std::string>();
  return out;
}

}  // namespace

json responses_as_chat(const json& request) {
  json messages = json::array();
  if (auto ins = request.find("instructions"); ins != request.end() && ins->is_string())
    messages.push_back({{"role", "system"}, {"content", *ins}});
  const json input = request.value("input", json());
  if (input.is_string()) messages.push_back({{"role", "user"}, {"content", input}});
  if (input.is_array()) {
    for (const auto& item : input) {
      if (!item.is_object()) continue;
      const std::string type = item.value("type", "message");
      if (type == "message") {
        messages.push_back({{"role", item.value("role", "user")},
                            {"content", text_of(item.value("content", json()))}});
      } else if (type == "function_call" || type == "custom_tool_call") {
        messages.push_back({{"role", "assistant"},
                            {"content", nullptr},
                            {"tool_calls", json::array({{{"id", item.value("call_id", "")},
                                                         {"type", "function"},
                                                         {"function",
                                                          {{"name", item.value("name", "")},
                                                           {"arguments", "{}"}}}}})}});
      } else if (type == "function_call_output" || type == "custom_tool_call_output") {
        messages.push_back({{"role", "tool"},
                            {"tool_call_id", item.value("call_id", "")},
                            {"content", text_of(item.value("output", json()))}});
      }
    }
  }
  json chat = {{"model", request.value("model", "")}, {"messages", std::move(messages)}};
  json tools = json::array();
  if (auto t = request.find("tools"); t != request.end() && t->is_array())
    for (const auto& tool : *t)
      if (tool.is_object() && tool.value("type", "") == "function" && tool.contains("name"))
        tools.push_back({{"type", "function"},
                         {"function",
                          {{"name", tool["name"]},
                           {"parameters", tool.value("parameters", json::object())}}}});
  if (!tools.empty()) chat["tools"] = std::move(tools);
  if (auto c = request.find("tool_choice"); c != request.end() && c->is_string())
    chat["tool_choice"] = *c;
  if (auto m = request.find("max_output_tokens"); m != request.end())
    chat["max_tokens"] = *m;
  return chat;
}

namespace {

std::string item_id(const openai_reply& r, const char* kind) {
  return std::string(kind) + "_sim_" + r.id.substr(r.id.rfind('-') + 1);
}

json message_item(const openai_reply& r, const char* status, const std::string& text) {
  json content = json::array();
  if (!text.empty() || std::string(status) == "completed")
    content.push_back({{"type", "output_text"}, {"text", text}, {"annotations", json::array()}});
  return {{"type", "message"},
          {"id", item_id(r, "msg")},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

json call_item(const openai_reply& r, const char* status, const std::string& arguments) {
  return {{"type", "function_call"}, {"id", item_id(r, "fc")},
          {"call_id", r.tool->id},   {"name", r.tool->name},
          {"arguments", arguments},  {"status", status}};
}

json response_object(const openai_reply& r, const json& request, const char* status,
                     json output) {
  const int out_tokens = r.completion_tokens();
  json o = {{"id", "resp_sim_" + r.id.substr(r.id.rfind('-') + 1)},
            {"object", "response"},
            {"created_at", r.created},
            {"status", status},
            {"error", nullptr},
            {"incomplete_details", r.finish_reason == "length"
                                       ? json{{"reason", "max_output_tokens"}}
                                       : json(nullptr)},
            {"model", r.model},
            {"output", std::move(output)},
            {"previous_response_id", request.value("previous_response_id", json())},
            {"store", request.value("store", true)},
            {"usage", nullptr}};
  if (std::string(status) != "in_progress")
    o["usage"] = {{"input_tokens", r.prompt_tokens},
                  {"input_tokens_details", {{"cached_tokens", 0}}},
                  {"output_tokens", out_tokens},
                  {"output_tokens_details", {{"reasoning_tokens", 0}}},
                  {"total_tokens", r.prompt_tokens + out_tokens}};
  return o;
}

const char* final_status(const openai_reply& r) {
  return r.finish_reason == "length" ? "incomplete" : "completed";
}

}  // namespace

json responses_response(const openai_reply& r, const json& request) {
  json output = json::array();
  if (!r.tokens.empty()) output.push_back(message_item(r, "completed", detail::join(r.tokens)));
  if (r.tool) output.push_back(call_item(r, "completed", r.tool->input.dump()));
  return response_object(r, request, final_status(r), std::move(output));
}

stream_script responses_stream(const openai_reply& r, const json& request) {
  int seq = 0;
  auto event = [&](const std::string& type, json body) {
    body["type"] = type;
    body["sequence_number"] = seq++;
    return "event: " + type + "\ndata: " + body.dump() + "\n\n";
  };
  stream_script s;
  s.prelude.push_back(
      event("response.created",
            {{"response", response_object(r, request, "in_progress", json::array())}}));
  s.prelude.push_back(
      event("response.in_progress",
            {{"response", response_object(r, request, "in_progress", json::array())}}));
  json output = json::array();
  const std::string msg_id = item_id(r, "msg");
  if (!r.tokens.empty()) {
    s.prelude.push_back(event("response.output_item.added",
                              {{"output_index", 0}, {"item", message_item(r, "in_progress", "")}}));
    s.prelude.push_back(event(
        "response.content_part.added",
        {{"item_id", msg_id},
         {"output_index", 0},
         {"content_index", 0},
         {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}}));
    for (const auto& token : r.tokens)
      s.content.push_back(event("response.output_text.delta", {{"item_id", msg_id},
                                                               {"output_index", 0},
                                                               {"content_index", 0},
                                                               {"delta", token}}));
    const std::string text = detail::join(r.tokens);
    s.epilogue.push_back(event("response.output_text.done", {{"item_id", msg_id},
                                                             {"output_index", 0},
                                                             {"content_index", 0},
                                                             {"text", text}}));
    s.epilogue.push_back(event(
        "response.content_part.done",
        {{"item_id", msg_id},
         {"output_index", 0},
         {"content_index", 0},
         {"part", {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}}}}));
    output.push_back(message_item(r, "completed", text));
    s.epilogue.push_back(
        event("response.output_item.done", {{"output_index", 0}, {"item", output.back()}}));
  }
  if (r.tool) {
    const std::size_t index = output.size();
    const std::string args = r.tool->input.dump();
    const std::string fc_id = item_id(r, "fc");
    s.epilogue.push_back(event("response.output_item.added",
                               {{"output_index", index}, {"item", call_item(r, "in_progress", "")}}));
    for (const std::string& piece : {args.substr(0, args.size() / 2), args.substr(args.size() / 2)})
      s.epilogue.push_back(event("response.function_call_arguments.delta",
                                 {{"item_id", fc_id}, {"output_index", index}, {"delta", piece}}));
    s.epilogue.push_back(event("response.function_call_arguments.done",
                               {{"item_id", fc_id}, {"output_index", index}, {"arguments", args}}));
    output.push_back(call_item(r, "completed", args));
    s.epilogue.push_back(
        event("response.output_item.done", {{"output_index", index}, {"item", output.back()}}));
  }
  const char* status = final_status(r);
  s.epilogue.push_back(event(std::string("response.") + status,
                             {{"response", response_object(r, request, status, std::move(output))}}));
  return s;
}

}  // namespace meridian::sim
