// Reads the routing-relevant fields of an OpenAI chat body, including OpenRouter's `models`
// and `provider` extensions; unknown provider keys are ignored as OpenRouter adds them often.
#include "policies/facts.hpp"

#include <nlohmann/json.hpp>

#include <cmath>

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

  // Adds the text bytes of one message and notes image parts.
  void message(const json& m, std::uint64_t& bytes, bool& images) {
    if (!m.is_object()) return;
    auto content = m.find("content");
    if (content == m.end()) return;
    if (content->is_string()) {
      bytes += content->get_ref<const std::string&>().size();
      return;
    }
    if (!content->is_array()) return;
    for (const auto& part : *content) {
      if (!part.is_object()) continue;
      auto type = part.find("type");
      std::string_view t = type != part.end() && type->is_string()
                               ? std::string_view(type->get_ref<const std::string&>())
                               : std::string_view();
      if (t == "image_url" || t == "input_image" || t == "image") images = true;
      if (auto text = part.find("text"); text != part.end() && text->is_string())
        bytes += text->get_ref<const std::string&>().size();
    }
  }
};

}  // namespace

std::variant<request_facts, facts_error> facts_from_openai_body(std::string_view body) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return facts_error{"", "the request body is not valid JSON"};
  if (!doc.is_object()) return facts_error{"", "the request body must be a JSON object"};
  request_facts out;
  reader r;
  if (auto it = doc.find("model"); it != doc.end()) {
    if (!it->is_string()) return facts_error{"model", "'model' must be a string"};
    out.model = it->get<std::string>();
  }
  if (auto it = doc.find("models"); it != doc.end()) {
    if (!r.strings(*it, "models", out.models)) return *r.error;
    if (out.models.size() > k_max_fallback_models)
      return facts_error{"models", "'models' lists more than " +
                                       std::to_string(k_max_fallback_models) + " models"};
  }
  if (auto it = doc.find("provider"); it != doc.end() && !r.provider(*it, out.provider))
    return *r.error;
  // max_completion_tokens is the newer name; when both are sent it wins.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0)
      return facts_error{key, std::string("'") + key + "' must be a non-negative integer"};
    out.max_tokens = it->get<std::uint64_t>();
  }
  for (const char* key : {"tools", "functions"})
    if (auto it = doc.find(key); it != doc.end() && it->is_array() && !it->empty())
      out.needs_tools = true;
  if (auto it = doc.find("response_format"); it != doc.end() && it->is_object()) {
    auto type = it->find("type");
    out.needs_json = type != it->end() && type->is_string() &&
                     (*type == "json_object" || *type == "json_schema");
  }
  std::uint64_t bytes = 0;
  if (auto it = doc.find("messages"); it != doc.end() && it->is_array())
    for (const auto& m : *it) r.message(m, bytes, out.needs_images);
  out.est_prompt_tokens = (bytes + 3) / 4;
  return out;
}

}  // namespace meridian::policies
