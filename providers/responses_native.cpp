// The Responses pass-through lane (a backend that serves /responses itself; see
// responses_inbound.hpp): the rewritten upstream body, the usage of a Response object, and the
// decoder that reads an upstream's Responses event stream for the gateway's accounting.
#include <nlohmann/json.hpp>

#include "providers/inbound_json.hpp"
#include "providers/openai.hpp"
#include "providers/responses_inbound.hpp"

namespace meridian::providers {

using inbound::member;
using inbound::ojson;
using inbound::string_member;

std::string responses_pass_through_body(std::string_view body, const ojson& history) {
  ojson in = inbound::parse_bounded(body);
  if (!in.is_object()) return std::string(body);
  ojson input = history;
  if (const ojson* own = member(in, "input"); own && own->is_string())
    input.push_back({{"type", "message"},
                     {"role", "user"},
                     {"content", ojson::array({{{"type", "input_text"}, {"text", *own}}})}});
  else if (own && own->is_array())
    for (const auto& it : *own) input.push_back(it);
  in["input"] = std::move(input);
  in.erase("previous_response_id");
  return in.dump();
}

std::optional<usage> response_usage_buckets(const ojson& response) {
  const ojson* u = member(response, "usage");
  if (!u || !u->is_object()) return std::nullopt;
  auto count = [](const ojson* obj, const char* key) -> std::uint64_t {
    const ojson* v = obj ? member(*obj, key) : nullptr;
    return v && v->is_number_unsigned() ? v->get<std::uint64_t>() : 0;
  };
  const ojson* in_details = member(*u, "input_tokens_details");
  const ojson* out_details = member(*u, "output_tokens_details");
  const std::uint64_t input = count(u, "input_tokens"), output = count(u, "output_tokens");
  usage out;
  out.cache_read = std::min(input, count(in_details, "cached_tokens"));
  out.input = input - out.cache_read;
  out.reasoning = std::min(output, count(out_details, "reasoning_tokens"));
  out.output = output - out.reasoning;
  return out;
}

std::optional<usage> responses_usage_of(std::string_view response) {
  return response_usage_buckets(inbound::parse_bounded(response));
}

std::string annotate_response(std::string_view response, std::string_view provider,
                              std::optional<double> cost, const usage* estimated) {
  ojson r = inbound::parse_bounded(response);
  if (!r.is_object()) return std::string(response);
  r["provider"] = std::string(provider);
  if (estimated) {
    r["usage"] = responses_usage(*estimated, nullptr);
    r["usage"]["estimated"] = true;
  }
  if (ojson* u = r.contains("usage") ? &r["usage"] : nullptr; u && u->is_object() && cost)
    (*u)["cost"] = *cost;
  return r.dump();
}

void for_each_response_text(const ojson& response, const std::function<void(std::string_view)>& f) {
  const ojson* output = member(response, "output");
  if (!output || !output->is_array()) return;
  auto raw = [&](const std::string& text) {
    std::string quoted = nlohmann::json(text).dump();
    f(std::string_view(quoted).substr(1, quoted.size() - 2));
  };
  for (const auto& item : *output) {
    for (const char* key : {"arguments", "input"})
      if (std::string s = string_member(item, key); !s.empty()) raw(s);
    for (const char* list : {"content", "summary"}) {
      const ojson* parts = member(item, list);
      if (!parts || !parts->is_array()) continue;
      for (const auto& p : *parts)
        for (const char* key : {"text", "refusal"})
          if (std::string s = string_member(p, key); !s.empty()) raw(s);
    }
  }
}

// ---- the event stream ----------------------------------------------------------------------

bool responses_event_decoder::on_event(const sse_event& ev, std::vector<std::string>& out) {
  ojson e = inbound::parse_bounded(ev.data);
  if (!e.is_object()) return true;  // comments and keep-alives
  const std::string type = string_member(e, "type");
  auto chunk = [&](const char* key, const ojson& text) {
    ojson delta{{key, text}};
    out.push_back(ojson{{"choices", ojson::array({{{"index", 0}, {"delta", delta}}})}}.dump());
  };
  if (type == "response.output_text.delta" || type == "response.refusal.delta") {
    if (const ojson* d = member(e, "delta"); d && d->is_string()) chunk("content", *d);
  } else if (type == "response.reasoning_text.delta" ||
             type == "response.reasoning_summary_text.delta") {
    if (const ojson* d = member(e, "delta"); d && d->is_string()) chunk("reasoning_content", *d);
  } else if (type == "response.function_call_arguments.delta" ||
             type == "response.custom_tool_call_input.delta") {
    if (const ojson* d = member(e, "delta"); d && d->is_string())
      out.push_back(ojson{{"choices", ojson::array({{{"index", 0},
                                                    {"delta",
                                                     {{"tool_calls",
                                                       ojson::array({{{"index", 0},
                                                                      {"function",
                                                                       {{"arguments", *d}}}}})}}}}})}}
                        .dump());
  } else if (type == "response.completed" || type == "response.incomplete") {
    if (const ojson* r = member(e, "response"); r && r->is_object()) {
      tokens_ = response_usage_buckets(*r);
      final_ = *r;
    }
    complete_ = true;
  } else if (type == "response.failed" || type == "error") {
    const ojson* r = member(e, "response");
    const ojson* err = r ? member(*r, "error") : member(e, "error");
    std::string message = err ? string_member(*err, "message") : string_member(e, "message");
    error_ = "reported an error mid-stream: " + (message.empty() ? type : message);
    return false;
  }
  return true;
}

std::string responses_event_decoder::annotate_final(const sse_event& ev, std::string_view provider,
                                                    std::optional<double> cost) {
  ojson e = inbound::parse_bounded(ev.data);
  if (!e.is_object() || !e.contains("response") || !e["response"].is_object()) return ev.data;
  ojson& r = e["response"];
  r["provider"] = std::string(provider);
  if (cost && r.contains("usage") && r["usage"].is_object()) r["usage"]["cost"] = *cost;
  final_ = r;
  return e.dump();
}

}  // namespace meridian::providers
