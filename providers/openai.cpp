// OpenAI-dialect request rewriting and usage extraction, without re-serialising bodies.
#include "providers/openai.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

namespace meridian::providers {

using core::ambiguous_member;
using core::append_json_string;
using core::json_member;
using core::json_object_scan;
using core::json_valid;
using core::scan_object;

namespace json_cursor = core::json_cursor;

namespace {

using nlohmann::json;

std::string_view span(std::string_view body, const json_member& m) {
  return body.substr(m.value_begin, m.value_end - m.value_begin);
}

std::uint64_t count(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer())
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->get<std::int64_t>()));
  return static_cast<std::uint64_t>(std::max(0.0, it->get<double>()));
}

std::optional<usage> usage_member(std::string_view body) {
  auto scan = scan_object(body);
  if (!scan) return std::nullopt;
  const json_member* m = scan->find("usage");
  if (!m) return std::nullopt;
  return parse_usage_text(span(body, *m));
}

// count() for a number's text as nlohmann reads it: an integer without sign is unsigned, with
// a sign signed, either one too large is a double, anything with a fraction or exponent too.
std::uint64_t count_text(std::string_view t) {
  if (t.empty() || !(t[0] == '-' || (t[0] >= '0' && t[0] <= '9'))) return 0;  // not a number
  if (t.find_first_of(".eE") == std::string_view::npos) {
    if (t[0] != '-') {
      std::uint64_t v = 0;
      if (std::from_chars(t.data(), t.data() + t.size(), v).ec == std::errc()) return v;
    } else {
      std::int64_t v = 0;
      if (std::from_chars(t.data(), t.data() + t.size(), v).ec == std::errc())
        return static_cast<std::uint64_t>(std::max<std::int64_t>(0, v));
    }
  }
  const double d = std::strtod(std::string(t).c_str(), nullptr);
  return static_cast<std::uint64_t>(std::max(0.0, d));
}

// One member of a (validated) object by name, the last one when it repeats (as a DOM keeps it).
bool find_last(std::string_view t, std::string_view key, std::string_view& value) {
  bool found = false;
  json_cursor::for_each_member(t, 0, [&](std::string_view k, std::size_t vb, std::size_t ve) {
    if (k == key) {
      value = t.substr(vb, ve - vb);
      found = true;
    }
  });
  return found;
}

}  // namespace

std::variant<chat_request, request_error> parse_model_request(std::string_view body,
                                                              bool models_may_name) {
  if (!json_valid(body))
    return request_error{body.find('\0') != std::string_view::npos
                             ? "request body is not valid JSON: nothing but whitespace may "
                               "follow the JSON value"
                             : "request body is not valid JSON",
                         ""};
  auto scan = scan_object(body);
  if (!scan) return request_error{"request body must be a JSON object", ""};
  if (auto e = refuse_ambiguous(*scan)) return *e;
  chat_request req;
  const json_member* model = scan->find("model");
  // OpenRouter lets `models` name the model (its first entry) when `model` is absent.
  const json_member* models = models_may_name && !model ? scan->find("models") : nullptr;
  if (!model && !models) return request_error{"you must provide a model parameter", "model"};
  json m = json::parse(span(body, model ? *model : *models));
  if (!model) {
    if (!m.is_array() || m.empty())
      return request_error{"'models' must be a non-empty array when 'model' is absent", "models"};
    m = json(m.front());
  }
  if (!m.is_string() || m.get_ref<const std::string&>().empty())
    return request_error{"'model' must be a non-empty string", "model"};
  req.model = m.get<std::string>();
  req.scan = std::move(*scan);
  return req;
}

std::variant<chat_request, request_error> parse_embeddings_request(std::string_view body) {
  auto parsed = parse_model_request(body);
  auto* req = std::get_if<chat_request>(&parsed);
  if (!req) return parsed;
  const json_member* input = req->scan.find("input");
  if (!input) return request_error{"you must provide an input parameter", "input"};
  std::string_view v = span(body, *input);
  bool empty =
      v == "\"\"" || (v.front() == '[' && v.find_first_not_of(" \t\r\n", 1) == v.size() - 1);
  if ((v.front() != '"' && v.front() != '[') || empty)
    return request_error{"'input' must be a non-empty string or array", "input"};
  return parsed;
}

std::variant<chat_request, request_error> parse_chat_request(std::string_view body) {
  auto parsed = parse_model_request(body, true);
  auto* r = std::get_if<chat_request>(&parsed);
  if (!r) return parsed;
  chat_request& req = *r;
  const json_member* messages = req.scan.find("messages");
  if (!messages) return request_error{"you must provide a messages parameter", "messages"};
  std::string_view ms = span(body, *messages);
  if (ms.front() != '[') return request_error{"'messages' must be an array", "messages"};
  if (ms.find_first_not_of(" \t\r\n", 1) == ms.size() - 1)
    return request_error{"'messages' must contain at least one message", "messages"};
  if (const json_member* stream = req.scan.find("stream")) {
    std::string_view s = span(body, *stream);
    if (s == "true") {
      req.stream = true;
    } else if (s != "false" && s != "null") {
      return request_error{"'stream' must be a boolean", "stream"};
    }
  }
  // The members whose insides the gateway reads or rewrites must read one way too.
  for (std::string_view name : {"stream_options", "provider"}) {
    const json_member* m = req.scan.find(name);
    if (!m || body[m->value_begin] != '{') continue;
    auto inner = scan_object(span(body, *m));
    if (auto e = refuse_ambiguous(*inner, std::string(name) + ".")) return *e;
  }
  if (const json_member* n = req.scan.find("n")) {
    const std::string_view v = span(body, *n);
    std::uint64_t count = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), count);
    if (v != "null") {
      if (ec != std::errc() || end != v.data() + v.size() || count < 1 || count > k_max_choices)
        return request_error{"'n' must be an integer from 1 to " + std::to_string(k_max_choices),
                             "n"};
      req.n = count;
    }
  }
  return parsed;
}

std::optional<request_error> refuse_ambiguous(const json_object_scan& scan,
                                              std::string_view where) {
  auto a = ambiguous_member(scan);
  if (!a) return std::nullopt;
  const std::string param = std::string(where) + a->name;
  if (a->escaped)
    return request_error{"member name '" + param +
                             "' is written with an escape sequence; write member names plainly",
                         param};
  return request_error{"duplicate member '" + param + "' in the request body", param};
}

bool asks_stream_usage(std::string_view body, const chat_request& req) {
  const json_member* so = req.scan.find("stream_options");
  if (!so) return false;
  const json opts = json::parse(span(body, *so), nullptr, false);
  return opts.is_object() && opts.value("include_usage", false) == true;
}

std::string encode_chat_request(std::string_view body, const chat_request& req,
                                std::string_view upstream_model) {
  if (req.scan.find("provider") || req.scan.find("models")) {
    // Rare: the members go first, then the body is encoded as any other.
    std::string stripped = core::without_member(body, req.scan, "provider");
    auto scan = core::scan_object(stripped);
    stripped = core::without_member(stripped, *scan, "models");
    scan = core::scan_object(stripped);
    if (!scan->find("model")) {  // `models` named it: the upstream still needs one
      std::string member = "\"model\":";
      append_json_string(member, upstream_model);
      if (!scan->members.empty()) member += ',';
      stripped.insert(scan->open + 1, member);
    }
    auto parsed = parse_chat_request(stripped);
    if (auto* r = std::get_if<chat_request>(&parsed))
      return encode_chat_request(stripped, *r, upstream_model);
  }
  struct edit {
    std::size_t begin, end;
    std::string text;
  };
  std::vector<edit> edits;
  const json_member* model = req.scan.find("model");
  std::string model_json;
  append_json_string(model_json, upstream_model);
  edits.push_back({model->value_begin, model->value_end, std::move(model_json)});
  if (req.stream) {
    const json_member* so = req.scan.find("stream_options");
    json opts = so ? json::parse(span(body, *so), nullptr, false) : json();
    if (!opts.is_object()) opts = json::object();
    if (opts.value("include_usage", false) != true) {
      opts["include_usage"] = true;
      if (so) {
        edits.push_back({so->value_begin, so->value_end, opts.dump()});
      } else {
        std::string member = req.scan.members.empty() ? "" : ",";
        member += "\"stream_options\":" + opts.dump();
        edits.push_back({req.scan.close, req.scan.close, std::move(member)});
      }
    }
  }
  std::sort(edits.begin(), edits.end(),
            [](const edit& a, const edit& b) { return a.begin < b.begin; });
  std::string out;
  out.reserve(body.size() + 64);
  std::size_t at = 0;
  for (const auto& e : edits) {
    out.append(body.substr(at, e.begin - at));
    out.append(e.text);
    at = e.end;
  }
  out.append(body.substr(at));
  return out;
}

namespace {

// OpenAI's counts as disjoint buckets: cached tokens are part of the prompt, reasoning tokens
// part of the completion (what both readings below share).
usage disjoint_usage(std::uint64_t prompt, std::uint64_t completion, std::uint64_t cached,
                     std::uint64_t reasoning) {
  usage out;
  out.present = true;
  out.cache_read = std::min(cached, prompt);
  out.input = prompt - out.cache_read;
  out.reasoning = std::min(reasoning, completion);
  out.output = completion - out.reasoning;
  return out;
}

}  // namespace

usage parse_usage(const json& u) {
  std::uint64_t cached = 0, reasoning = 0;
  if (auto d = u.find("prompt_tokens_details"); d != u.end() && d->is_object())
    cached = count(*d, "cached_tokens");
  if (u.contains("prompt_cache_hit_tokens"))
    cached = count(u, "prompt_cache_hit_tokens");  // DeepSeek
  if (auto d = u.find("completion_tokens_details"); d != u.end() && d->is_object())
    reasoning = count(*d, "reasoning_tokens");
  return disjoint_usage(count(u, "prompt_tokens"), count(u, "completion_tokens"), cached,
                        reasoning);
}

std::optional<usage> parse_usage_text(std::string_view u) {
  const std::size_t i = json_cursor::skip_ws(u, 0);
  if (i >= u.size() || u[i] != '{') return std::nullopt;
  u = u.substr(i);
  if (u.find('\\') != std::string_view::npos) {  // an escape, maybe in a key: a DOM decodes it
    json dom = json::parse(u, nullptr, false);
    if (!dom.is_object()) return std::nullopt;
    return parse_usage(dom);
  }
  // One pass over the members; a repeated one counts as its last occurrence, as in a DOM. A
  // member's value is never empty text, so an empty view means "absent".
  std::string_view prompt, completion, details, hit, reasoning_details;
  json_cursor::for_each_member(u, 0, [&](std::string_view k, std::size_t vb, std::size_t ve) {
    const std::string_view v = u.substr(vb, ve - vb);
    if (k == "prompt_tokens")
      prompt = v;
    else if (k == "completion_tokens")
      completion = v;
    else if (k == "prompt_tokens_details")
      details = v;
    else if (k == "completion_tokens_details")
      reasoning_details = v;
    else if (k == "prompt_cache_hit_tokens")  // DeepSeek
      hit = v;
  });
  // count() of a member of a nested object; 0 when `object` is absent or not an object.
  auto inner_count = [](std::string_view object, std::string_view key) -> std::uint64_t {
    std::string_view v;
    return !object.empty() && object.front() == '{' && find_last(object, key, v) ? count_text(v)
                                                                                 : 0;
  };
  const std::uint64_t cached =
      hit.empty() ? inner_count(details, "cached_tokens") : count_text(hit);
  return disjoint_usage(count_text(prompt), count_text(completion), cached,
                        inner_count(reasoning_details, "reasoning_tokens"));
}

std::optional<usage> usage_in_chunk(std::string_view data) {
  // Most chunks carry no usage; skip them without parsing.
  if (data.find("\"usage\"") == std::string_view::npos) return std::nullopt;
  if (!json_valid(data)) return std::nullopt;
  return usage_member(data);
}

namespace {

chat_body_layout layout_of(const json_object_scan& scan) {
  chat_body_layout out;
  out.close = scan.close;
  out.has_members = !scan.members.empty();
  out.has_provider = scan.find("provider") != nullptr;
  if (const json_member* u = scan.find("usage")) {
    out.usage_begin = u->value_begin;
    out.usage_end = u->value_end;
  }
  return out;
}

// Inserts `"cost": USD` as the last member of the `usage` object, if there is one.
void insert_cost(std::string& out, std::string_view body, const chat_body_layout& layout,
                 std::size_t& at, double cost) {
  if (layout.usage_begin == layout.usage_end || body[layout.usage_begin] != '{') return;
  auto inner = scan_object(body.substr(layout.usage_begin, layout.usage_end - layout.usage_begin));
  if (!inner || inner->find("cost")) return;
  std::size_t close = layout.usage_begin + inner->close;
  out.append(body.substr(at, close - at));
  out.append(inner->members.empty() ? "\"cost\":" : ",\"cost\":");
  out.append(json(cost).dump());
  at = close;
}

}  // namespace

chat_response_info read_chat_response(std::string_view body) {
  chat_response_info out;
  if (!json_valid(body)) return out;
  auto scan = scan_object(body);
  if (!scan) return out;
  out.valid = true;
  out.layout = layout_of(*scan);
  if (out.layout.usage_end > out.layout.usage_begin) {
    auto u = parse_usage_text(
        body.substr(out.layout.usage_begin, out.layout.usage_end - out.layout.usage_begin));
    if (u) out.tokens = *u;
  }
  return out;
}

std::string annotate_chat_body(std::string_view body, const chat_body_layout& layout,
                               std::string_view provider, std::optional<double> cost,
                               const usage* estimated) {
  std::string out;
  out.reserve(body.size() + provider.size() + 40);
  std::size_t at = 0;
  if (cost) insert_cost(out, body, layout, at, *cost);
  out.append(body.substr(at, layout.close - at));
  bool has_members = layout.has_members;
  if (estimated && layout.usage_begin == layout.usage_end) {
    const std::uint64_t prompt = estimated->prompt_total(),
                        completion = estimated->completion_total();
    json u{{"prompt_tokens", prompt},
           {"completion_tokens", completion},
           {"total_tokens", prompt + completion},
           {"estimated", true}};
    if (cost) u["cost"] = *cost;
    out.append(has_members ? ",\"usage\":" : "\"usage\":").append(u.dump());
    has_members = true;
  }
  if (!layout.has_provider) {
    out.append(has_members ? ",\"provider\":" : "\"provider\":");
    append_json_string(out, provider);
  }
  out.append(body.substr(layout.close));
  return out;
}

std::string annotate_chat_body(std::string_view body, std::string_view provider,
                               std::optional<double> cost, const usage* estimated) {
  auto scan = scan_object(body);
  if (!scan) return std::string(body);
  return annotate_chat_body(body, layout_of(*scan), provider, cost, estimated);
}

std::string annotate_usage_chunk(std::string_view chunk, double cost) {
  auto scan = scan_object(chunk);
  if (!scan) return std::string(chunk);
  std::string out;
  std::size_t at = 0;
  insert_cost(out, chunk, layout_of(*scan), at, cost);
  out.append(chunk.substr(at));
  return out;
}

}  // namespace meridian::providers
