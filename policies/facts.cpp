// Reads the routing-relevant fields of an OpenAI chat body, including OpenRouter's `models`
// and `provider` extensions; unknown provider keys are ignored as OpenRouter adds them often.
#include "policies/facts.hpp"

#include "stats/estimate.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstring>

namespace meridian::policies {

namespace {

using json = nlohmann::json;

// More fallbacks than this is a client bug, and each one costs a catalog scan.
constexpr std::size_t k_max_fallback_models = 16;

struct reader {
  std::optional<facts_error> error;

  bool fail(std::string param, std::string message) {
    if (!error) error = facts_error{std::move(param), std::move(message)};
    return false;
  }

  bool strings(const json& v, const std::string& param, std::vector<std::string>& out) {
    if (!v.is_array()) return fail(param, "'" + param + "' must be an array of strings");
    for (const auto& item : v) {
      if (!item.is_string() || item.get_ref<const std::string&>().empty())
        return fail(param, "'" + param + "' must contain only non-empty strings");
      out.push_back(item.get<std::string>());
    }
    return true;
  }

  bool number(const json& v, const std::string& param, std::optional<double>& out) {
    if (!v.is_number() || v.get<double>() < 0 || !std::isfinite(v.get<double>()))
      return fail(param, "'" + param + "' must be a non-negative number");
    out = v.get<double>();
    return true;
  }

  // OpenRouter accepts a number or percentile cutoffs {p50, p75, p90, p99}; p50 is used.
  bool percentile(const json& v, const std::string& param, std::optional<double>& out) {
    if (v.is_object()) {
      auto it = v.find("p50");
      return it == v.end() ? true : number(*it, param + ".p50", out);
    }
    return number(v, param, out);
  }

  bool provider(const json& v, provider_prefs& out) {
    if (!v.is_object()) return fail("provider", "'provider' must be an object");
    out.given = true;
    for (const auto& [key, value] : v.items()) {
      const std::string param = "provider." + key;
      if (key == "order" && !strings(value, param, out.order)) return false;
      if (key == "only" && !strings(value, param, out.only)) return false;
      if (key == "ignore" && !strings(value, param, out.ignore)) return false;
      if (key == "allow_fallbacks") {
        if (!value.is_boolean()) return fail(param, "'" + param + "' must be true or false");
        out.allow_fallbacks = value.get<bool>();
      }
      if (key == "sort") {
        const json& by = value.is_object() && value.contains("by") ? value["by"] : value;
        std::string text = by.is_string() ? by.get<std::string>() : "";
        if (text == "price")
          out.sort = sort_by::price;
        else if (text == "throughput")
          out.sort = sort_by::throughput;
        else if (text == "latency")
          out.sort = sort_by::latency;
        else
          return fail(param, "'" + param + "' must be one of price, throughput, latency");
      }
      if (key == "max_price") {
        if (!value.is_object()) return fail(param, "'" + param + "' must be an object");
        if (auto it = value.find("prompt");
            it != value.end() && !number(*it, param + ".prompt", out.max_prompt_price))
          return false;
        if (auto it = value.find("completion");
            it != value.end() && !number(*it, param + ".completion", out.max_completion_price))
          return false;
      }
      if (key == "preferred_max_latency" && !percentile(value, param, out.preferred_max_latency_s))
        return false;
      if (key == "preferred_min_throughput" &&
          !percentile(value, param, out.preferred_min_throughput))
        return false;
      if (key == "data_collection") {
        std::string text = value.is_string() ? value.get<std::string>() : "";
        if (text != "allow" && text != "deny")
          return fail(param, "'" + param + "' must be allow or deny");
        out.deny_data_collection = text == "deny";
      }
    }
    return true;
  }
};

}  // namespace

// The DOM-free reader. `body` is valid JSON whose top-level members are `scan`; only the
// small members whose rules are intricate (`models`, `provider`, odd numbers) are parsed into a
// DOM, so a long conversation costs one pass over its bytes and no allocation per message.
using namespace core::json_cursor;

namespace {

// An element that is not an object is skipped.
template <class F>
std::size_t members_or_skip(std::string_view t, std::size_t i, F&& f) {
  return t[i] == '{' ? for_each_member(t, i, f) : skip_value(t, i);
}

// A string literal's decoded text; the raw bytes when it has no escape.
std::string decode_string(std::string_view lit) {
  if (lit.find('\\') == std::string_view::npos) return std::string(lit.substr(1, lit.size() - 2));
  return json::parse(lit).get<std::string>();
}

bool is_string_value(std::string_view t, std::size_t b) {
  return b < t.size() && t[b] == '"';
}

// Whether a raw member key (escapes not decoded) names `want`, as a DOM parse would read it.
bool key_is(std::string_view raw, std::string_view want) {
  if (raw.find('\\') == std::string_view::npos) return raw == want;
  return decode_string("\"" + std::string(raw) + "\"") == want;
}

}  // namespace

std::variant<request_facts, facts_error> facts_from_openai_body(
    std::string_view body, const core::json_object_scan& scan) {
  request_facts out;
  reader r;
  // A repeated member counts with its last value, as a DOM parse would keep it.
  auto last = [&](std::string_view key) -> const core::json_member* {
    for (auto it = scan.members.rbegin(); it != scan.members.rend(); ++it)
      if (key_is(it->key, key)) return &*it;
    return nullptr;
  };
  auto value = [&](const core::json_member& m) {
    return body.substr(m.value_begin, m.value_end - m.value_begin);
  };
  if (const auto* m = last("model")) {
    if (!is_string_value(body, m->value_begin))
      return facts_error{"model", "'model' must be a string"};
    out.model = decode_string(value(*m));
  }
  if (const auto* m = last("models")) {
    if (!r.strings(json::parse(value(*m)), "models", out.models)) return *r.error;
    if (out.models.size() > k_max_fallback_models)
      return facts_error{"models", "'models' lists more than " +
                                       std::to_string(k_max_fallback_models) + " models"};
    // OpenRouter's form without `model`: the first of `models` is the model, the rest fallbacks.
    if (!last("model") && !out.models.empty()) {
      out.model = out.models.front();
      out.models.erase(out.models.begin());
    }
  }
  if (const auto* m = last("provider"); m && !r.provider(json::parse(value(*m)), out.provider))
    return *r.error;
  // max_completion_tokens is the newer name; when both are sent it wins.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    const auto* m = last(key);
    if (!m) continue;
    const std::string_view v = value(*m);
    if (v == "null") continue;
    // Up to 18 digits is always a non-negative int64; anything else takes the DOM's rules.
    if (!v.empty() && v.size() <= 18 &&
        v.find_first_not_of("0123456789") == std::string_view::npos) {
      std::uint64_t n = 0;
      for (char c : v) n = n * 10 + static_cast<std::uint64_t>(c - '0');
      out.max_tokens = n;
      continue;
    }
    const json j = json::parse(v);
    if (!j.is_number_integer() || j.get<std::int64_t>() < 0)
      return facts_error{key, std::string("'") + key + "' must be a non-negative integer"};
    out.max_tokens = j.get<std::uint64_t>();
  }
  // `metadata` (OpenAI's string-valued tags), for routes' `when`; other values are skipped.
  if (const auto* m = last("metadata"); m && body[m->value_begin] == '{')
    for_each_member(body, m->value_begin, [&](std::string_view key, std::size_t b, std::size_t e) {
      const std::string_view v = body.substr(b, e - b);
      if (out.metadata.size() < k_max_metadata && is_string_value(v, 0))
        out.metadata.emplace_back(decode_string("\"" + std::string(key) + "\""), decode_string(v));
    });
  for (const char* key : {"tools", "functions"})
    if (const auto* m = last(key);
        m && body[m->value_begin] == '[' && body[skip_ws(body, m->value_begin + 1)] != ']')
      out.needs_tools = true;
  if (const auto* m = last("response_format"); m && body[m->value_begin] == '{') {
    std::optional<std::string_view> type;
    for_each_member(body, m->value_begin, [&](std::string_view key, std::size_t b, std::size_t e) {
      if (key_is(key, "type")) type = body.substr(b, e - b);
    });
    if (type && is_string_value(*type, 0)) {
      const std::string t = decode_string(*type);
      out.needs_json = t == "json_object" || t == "json_schema";
    }
  }
  // The prompt estimate counts the messages' text (and tool definitions) by character class,
  // by the one rule accounting uses (stats/estimate.hpp).
  stats::text_tally prompt;
  auto tally_string = [&](std::string_view lit) {  // a JSON string literal, quotes included
    stats::tally_json_string(lit.substr(1, lit.size() - 2), prompt);
  };
  for (const char* key : {"tools", "functions"})
    if (const auto* m = last(key))
      stats::tally_utf8(body.substr(m->value_begin, m->value_end - m->value_begin), prompt);
  std::optional<std::pair<std::size_t, std::size_t>> last_user;  // its content's value
  std::optional<std::size_t> first_user_end;                     // one past the first user message
  if (const auto* m = last("messages"); m && body[m->value_begin] == '[') {
    for_each_element(body, m->value_begin, [&](std::size_t mb) {
      std::optional<std::pair<std::size_t, std::size_t>> content;
      bool user = false;
      const std::size_t end =
          members_or_skip(body, mb, [&](std::string_view key, std::size_t b, std::size_t e) {
            if (key_is(key, "content")) content.emplace(b, e);
            if (key_is(key, "role")) user = body.substr(b, e - b) == "\"user\"";
          });
      if (user && !first_user_end) first_user_end = end;
      if (!content) return end;
      const auto [cb, ce] = *content;
      if (user) last_user = {cb, ce};
      if (body[cb] == '"') {
        tally_string(body.substr(cb, ce - cb));
        return end;
      }
      if (body[cb] != '[') return end;
      for_each_element(body, cb, [&](std::size_t pb) {
        std::optional<std::string_view> type, text;
        const std::size_t part_end =
            members_or_skip(body, pb, [&](std::string_view key, std::size_t b, std::size_t e) {
              if (key_is(key, "type"))
                type = body.substr(b, e - b);
              else if (key_is(key, "text"))
                text = body.substr(b, e - b);
            });
        if (type && is_string_value(*type, 0)) {
          const std::string t = decode_string(*type);
          if (t == "image_url" || t == "input_image" || t == "image") out.needs_images = true;
        }
        if (text && is_string_value(*text, 0)) tally_string(*text);
        return part_end;
      });
      return end;
    });
  }
  out.est_prompt_tokens = stats::estimate_tokens(prompt);
  // The task and language, from the last user message's text: its first k_task_sample bytes,
  // decoded from no more of the literal than that (a long message is not copied whole).
  std::string sample;
  if (last_user) {
    const auto [cb, ce] = *last_user;
    auto add = [&](std::string_view lit) {
      if (sample.size() >= k_task_sample || !is_string_value(lit, 0)) return;
      std::string_view inner = lit.substr(1, lit.size() - 2);
      std::size_t i = 0;  // a cut between escapes, never inside one
      while (i < inner.size() && i < k_task_sample)
        i += inner[i] != '\\' ? 1 : i + 1 < inner.size() && inner[i + 1] == 'u' ? 6 : 2;
      inner = inner.substr(0, std::min(i, inner.size()));
      sample += decode_string("\"" + std::string(inner) + "\"") + "\n";
    };
    if (body[cb] == '"') {
      add(body.substr(cb, ce - cb));
    } else if (body[cb] == '[') {
      for_each_element(body, cb, [&](std::size_t pb) {
        return members_or_skip(body, pb, [&](std::string_view key, std::size_t b, std::size_t e) {
          if (key_is(key, "text")) add(body.substr(b, e - b));
        });
      });
    }
  }
  out.task = classify_task(sample, out.needs_tools, out.est_prompt_tokens);
  // The conversation's name for affinity: the client's prompt_cache_key or user, else what a
  // provider's prompt cache keys on (tools, system messages, the first user message).
  for (const char* key : {"prompt_cache_key", "user"})
    if (const auto* m = last(key);
        m && out.session.empty() && is_string_value(body, m->value_begin))
      out.session = std::string(key) + ":" + decode_string(value(*m));
  // The prefix is only located here; conversation_name hashes it when nothing names the session
  // (a header does for Claude Code, whose tools alone can be tens of kilobytes).
  if (out.session.empty() && first_user_end) {
    const auto* messages = last("messages");
    if (const auto* tools = last("tools")) out.prefix_tools = value(*tools);
    out.prefix_messages =
        body.substr(messages->value_begin, *first_user_end - messages->value_begin);
  }
  return out;
}

std::variant<request_facts, facts_error> facts_from_openai_body(std::string_view body) {
  if (!core::json_valid(body)) return facts_error{"", "the request body is not valid JSON"};
  if (static_cast<unsigned char>(body[0]) == 0xEF) body.remove_prefix(3);  // the byte order mark
  auto scan = core::scan_object(body);
  if (!scan) return facts_error{"", "the request body must be a JSON object"};
  return facts_from_openai_body(body, *scan);
}

}  // namespace meridian::policies
