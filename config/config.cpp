// Parses and validates Meridian's YAML into the typed structs of config.hpp, reporting each
// problem with its source, YAML path and line so an operator can fix it without guessing.
#include "config/config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace meridian::config {

namespace {

// Sections the contract names but this version does not implement: rejecting them loudly beats
// silently ignoring a route table the operator believes is in force.

constexpr route_policy k_policies[] = {
    route_policy::cost,     route_policy::latency,  route_policy::throughput, route_policy::quality,
    route_policy::balanced, route_policy::weighted, route_policy::ordered};
constexpr capability k_capabilities[] = {capability::tools, capability::images, capability::json};

std::string join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

bool is_plain_key(std::string_view key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '/';
  });
}

// Keys such as "qwen2.5:7b" would make a dotted path ambiguous, so they are quoted.
std::string child_path(const std::string& parent, std::string_view key) {
  std::string part = is_plain_key(key) ? std::string(key) : "\"" + std::string(key) + "\"";
  return parent.empty() ? part : parent + "." + part;
}

std::string_view kind_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "an undefined value";
  }
}

// A node with the path and line that name it in messages. Null nodes carry no mark in
// yaml-cpp, so they inherit their key's.
struct located {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  YAML::Mark key_mark;  // where the name sits; a block map's own mark is its first child's line
};

class parser {
 public:
  explicit parser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const YAML::Mark& mark,
                         std::string_view what) const {
    int line = mark.is_null() ? 1 : mark.line + 1;
    std::string where = path.empty() ? std::string("(document)") : path;
    throw config_error(source_ + ": " + where + " (line " + std::to_string(line) +
                       "): " + std::string(what));
  }
  [[noreturn]] void fail(const located& at, std::string_view what) const {
    fail(at.path, at.mark, what);
  }
  // For problems with an entry as a whole (its name, a missing key) rather than its value.
  [[noreturn]] void fail_entry(const located& at, std::string_view what) const {
    fail(at.path, at.key_mark.is_null() ? at.mark : at.key_mark, what);
  }

  // The entries of a map, checked for non-scalar, duplicate and (unless `allowed` is empty, as
  // for names the operator picks) unknown keys. A null node is an empty map, so "models:" with
  // nothing under it is fine.
  std::vector<std::pair<std::string, located>> entries(
      const located& at, std::initializer_list<std::string_view> allowed = {}) const {
    std::vector<std::pair<std::string, located>> out;
    if (at.node.IsNull()) return out;
    if (!at.node.IsMap()) fail(at, "expected a map, got " + std::string(kind_name(at.node)));
    std::set<std::string> seen;
    for (const auto& kv : at.node) {
      YAML::Mark key_mark = kv.first.Mark().is_null() ? at.mark : kv.first.Mark();
      if (!kv.first.IsScalar()) fail(at.path, key_mark, "keys must be plain strings");
      std::string key = kv.first.Scalar();
      std::string path = child_path(at.path, key);
      if (key == "api_key" && at.path.rfind("providers", 0) == 0)
        fail(path, key_mark,
             "secrets never go in YAML; name the variable with api_key_env or the file with "
             "api_key_file");
      if (key == "key" && at.path.rfind("keys[", 0) == 0)
        fail(path, key_mark,
             "secrets never go in YAML; give key_sha256 (its SHA-256 in hex) or key_env");
      if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(path, key_mark, "unknown key; expected one of " + join(allowed));
      if (!seen.insert(key).second)
        fail(path, key_mark, at.path == "providers" ? "duplicate provider name" : "duplicate key");
      YAML::Mark value_mark = kv.second.Mark().is_null() ? key_mark : kv.second.Mark();
      out.emplace_back(key, located{kv.second, std::move(path), value_mark, key_mark});
    }
    return out;
  }

  std::string scalar(const located& at) const {
    if (!at.node.IsScalar())
      fail(at, "expected a scalar value, got " + std::string(kind_name(at.node)));
    return at.node.Scalar();
  }

  std::string non_empty(const located& at) const {
    std::string text = scalar(at);
    if (text.empty()) fail(at, "must not be empty");
    return text;
  }

  std::uint64_t unsigned_int(const located& at, std::uint64_t max) const {
    std::string text = scalar(at);
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
      fail(at, "expected an unsigned integer, got '" + text + "'");
    if (ec == std::errc::result_out_of_range || value > max)
      fail(at, "'" + text + "' is too large; the maximum is " + std::to_string(max));
    return value;
  }

  bool boolean(const located& at) const {
    std::string text = scalar(at);
    if (text == "true") return true;
    if (text == "false") return false;
    fail(at, "expected true or false, got '" + text + "'");
  }

  double price(const located& at) const {
    std::string text = scalar(at);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
        !std::isfinite(value))
      fail(at, "expected a number (USD per million tokens), got '" + text + "'");
    if (value < 0) fail(at, "a price must not be negative, got '" + text + "'");
    return value;
  }

  // Converts the std::invalid_argument of the free parse_* functions into a located error.
  template <typename F>
  auto convert(const located& at, F&& parse) const {
    std::string text = scalar(at);
    try {
      return parse(text);
    } catch (const std::invalid_argument& e) {
      fail(at, e.what());
    }
  }

  server_config server(const located& at) const {
    server_config out;
    for (const auto& [key, value] :
         entries(at, {"listen", "admin_listen", "threads", "limits", "timeouts"})) {
      if (key == "listen") {
        out.listen = convert(value, parse_endpoint);
      } else if (key == "admin_listen") {
        out.admin_listen = convert(value, parse_endpoint);
        if (out.admin_listen->port != 0 && out.admin_listen->port == out.listen.port &&
            out.admin_listen->host == out.listen.host)
          fail(value, "must differ from server.listen");
      } else if (key == "threads") {
        out.threads = static_cast<unsigned>(unsigned_int(value, 4096));
      } else if (key == "limits") {
        limits(value, out.limits);
      } else {
        timeouts(value, out.timeouts);
      }
    }
    return out;
  }

  void limits(const located& at, server_limits& out) const {
    for (const auto& [key, value] : entries(
             at, {"max_body_bytes", "max_header_bytes", "max_connections", "max_buffered_bytes"})) {
      if (key == "max_connections") {
        out.max_connections = static_cast<std::uint32_t>(positive(value));
        continue;
      }
      std::uint64_t bytes = convert(value, parse_size);
      if (bytes == 0) fail(value, "must be greater than zero");
      if (key == "max_body_bytes") {
        out.max_body_bytes = bytes;
      } else if (key == "max_buffered_bytes") {
        out.max_buffered_bytes = bytes;
      } else {
        if (bytes > std::numeric_limits<std::uint32_t>::max()) fail(value, "must be below 4GiB");
        out.max_header_bytes = static_cast<std::uint32_t>(bytes);
      }
    }
  }

  std::uint64_t positive(const located& at) const {
    std::uint64_t value = unsigned_int(at, std::numeric_limits<std::uint32_t>::max());
    if (value == 0) fail(at, "must be greater than zero");
    return value;
  }

  void timeouts(const located& at, server_timeouts& out) const {
    for (const auto& [key, value] :
         entries(at, {"header", "connect", "first_byte", "idle_chunk", "total", "drain"})) {
      duration d = convert(value, parse_duration);
      // A zero drain means "stop at once"; a zero deadline anywhere else would fail every request.
      if (d.count() == 0 && key != "drain") fail(value, "must be greater than zero");
      if (key == "header") out.header = d;
      if (key == "connect") out.connect = d;
      if (key == "first_byte") out.first_byte = d;
      if (key == "idle_chunk") out.idle_chunk = d;
      if (key == "total") out.total = d;
      if (key == "drain") out.drain = d;
    }
  }

  model_config model(const located& at, int line) const {
    model_config out;
    out.line = line;
    for (const auto& [key, value] :
         entries(at, {"input", "output", "cache_read", "cache_write", "quality", "context",
                      "kwh_per_million_tokens", "capabilities"})) {
      if (key == "input") out.input = price(value);
      if (key == "capabilities") out.capabilities = capabilities(value);
      if (key == "kwh_per_million_tokens")
        out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
      if (key == "output") out.output = price(value);
      if (key == "cache_read") out.cache_read = price(value);
      if (key == "cache_write") out.cache_write = price(value);
      if (key == "context") out.context = static_cast<std::uint32_t>(positive(value));
      if (key == "quality") out.quality = quality(value);
    }
    return out;
  }

  // A list drawn from tools, images and json; repeating one is harmless.
  std::vector<capability> capabilities(const located& at) const {
    std::vector<capability> out;
    for (const auto& item : items(at)) {
      std::string text = scalar(item);
      auto it = std::find_if(std::begin(k_capabilities), std::end(k_capabilities),
                             [&](capability c) { return to_string(c) == text; });
      if (it == std::end(k_capabilities))
        fail(item, "unknown capability '" + text + "'; expected one of tools, images, json");
      out.push_back(*it);
    }
    return out;
  }

  int quality(const located& at) const {
    std::string text = scalar(at);
    int q = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), q);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || q < 0 || q > 100)
      fail(at, "expected an integer between 0 and 100, got '" + text + "'");
    return q;
  }

  // A finite non-negative number; `what` says what it measures in the message.
  double non_negative(const located& at, std::string_view what) const {
    std::string text = scalar(at);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
        !std::isfinite(value))
      fail(at, "expected a number (" + std::string(what) + "), got '" + text + "'");
    if (value < 0) fail(at, "must not be negative, got '" + text + "'");
    return value;
  }

  // The items of a YAML list, each located as "path[i]". A null node is an empty list.
  std::vector<located> items(const located& at) const {
    std::vector<located> out;
    if (at.node.IsNull()) return out;
    if (!at.node.IsSequence()) fail(at, "expected a list, got " + std::string(kind_name(at.node)));
    std::size_t i = 0;
    for (const auto& item : at.node) {
      YAML::Mark mark = item.Mark().is_null() ? at.mark : item.Mark();
      out.push_back(located{item, at.path + "[" + std::to_string(i++) + "]", mark, mark});
    }
    return out;
  }

  std::vector<std::string> names(const located& at) const {
    std::vector<std::string> out;
    for (const auto& item : items(at)) out.push_back(non_empty(item));
    return out;
  }

  route_candidate candidate(const located& at) const {
    route_candidate out;
    out.line = line_of(at);
    if (at.node.IsMap()) {
      bool has_model = false;
      for (const auto& [key, value] : entries(at, {"model", "weight"})) {
        if (key == "model") {
          out.pattern = non_empty(value);
          has_model = true;
        } else {
          out.weight = non_negative(value, "a relative weight");
        }
      }
      if (!has_model) fail(at, "a candidate map needs a model, as in {model: p/m, weight: 3}");
    } else {
      out.pattern = non_empty(at);
    }
    auto slash = out.pattern.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == out.pattern.size())
      fail(at, "expected provider/model or provider/*, got '" + out.pattern + "'");
    return out;
  }

  // Names whose checks wait until the whole document is known.
  struct references {
    std::vector<located> regions, providers;
  };

  route_require require(const located& at, references& refs) const {
    route_require out;
    for (const auto& [key, value] :
         entries(at, {"min_quality", "regions", "providers", "exclude_providers", "max_price",
                      "capabilities"})) {
      if (key == "min_quality") {
        out.min_quality = quality(value);
      } else if (key == "regions") {
        // Region names are checked once the whole document, and so `regions`, is known.
        for (auto& item : items(value)) {
          out.regions.push_back(non_empty(item));
          refs.regions.push_back(std::move(item));
        }
      } else if (key == "providers" || key == "exclude_providers") {
        auto& list = key == "providers" ? out.providers : out.exclude_providers;
        for (auto& item : items(value)) {
          list.push_back(non_empty(item));
          refs.providers.push_back(std::move(item));
        }
      } else if (key == "max_price") {
        for (const auto& [price_key, price_value] : entries(value, {"prompt", "completion"})) {
          if (price_key == "prompt") out.max_prompt_price = price(price_value);
          if (price_key == "completion") out.max_completion_price = price(price_value);
        }
      } else {
        out.capabilities = capabilities(value);
      }
    }
    return out;
  }

  route_config route(const located& at, references& refs) const {
    route_config out;
    out.line = line_of(at);
    if (!at.node.IsMap()) fail(at, "expected a map, got " + std::string(kind_name(at.node)));
    bool has_match = false, has_candidates = false, has_weights = false;
    const located* weighted_candidate = nullptr;
    std::vector<located> candidate_items;
    located weights_at;
    for (const auto& [key, value] : entries(
             at, {"match", "policy", "weights", "candidates", "require", "retries", "fallback"})) {
      if (key == "match") {
        out.match = non_empty(value);
        has_match = true;
      } else if (key == "policy") {
        std::string text = scalar(value);
        out.policy = parse_route_policy(text);
        if (!out.policy)
          fail(value,
               "unknown policy '" + text +
                   "'; expected one of cost, latency, throughput, quality, balanced, weighted, "
                   "ordered");
      } else if (key == "weights") {
        has_weights = true;
        weights_at = value;
        out.weights = route_weights{0, 0, 0};
        for (const auto& [w_key, w_value] : entries(value, {"cost", "latency", "quality"})) {
          double w = non_negative(w_value, "a relative weight");
          if (w_key == "cost") out.weights.cost = w;
          if (w_key == "latency") out.weights.latency = w;
          if (w_key == "quality") out.weights.quality = w;
        }
        if (out.weights.cost + out.weights.latency + out.weights.quality <= 0)
          fail(value, "at least one weight must be greater than zero");
      } else if (key == "candidates") {
        has_candidates = true;
        candidate_items = items(value);
        if (candidate_items.empty()) fail(value, "must list at least one provider/model candidate");
      } else if (key == "require") {
        out.require = require(value, refs);
      } else if (key == "retries") {
        out.retries = static_cast<unsigned>(unsigned_int(value, 10));
      } else {
        out.fallback = boolean(value);
      }
    }
    if (!has_match) fail_entry(at, "a route needs a match (the model name clients send)");
    if (!has_candidates) fail_entry(at, "a route needs candidates");
    for (const auto& item : candidate_items) {
      out.candidates.push_back(candidate(item));
      if (item.node.IsMap() && item.node["weight"] && !weighted_candidate)
        weighted_candidate = &item;
    }
    // Settings another policy would ignore are almost always a mistake in the policy line.
    if (has_weights && out.policy != route_policy::balanced)
      fail(weights_at, "weights apply only to policy balanced");
    if (weighted_candidate && out.policy != route_policy::weighted)
      fail(*weighted_candidate, "a candidate weight applies only to policy weighted");
    return out;
  }

  void regions(const located& at, std::map<std::string, region_config>& out) const {
    for (const auto& [name, value] : entries(at)) {
      if (name.empty()) fail_entry(value, "a region name must not be empty");
      region_config region;
      region.line = line_of(value);
      bool has_price = false;
      for (const auto& [key, price_value] : entries(value, {"electricity_usd_per_kwh"})) {
        (void)key;
        region.electricity_usd_per_kwh = non_negative(price_value, "USD per kWh");
        has_price = true;
      }
      if (!has_price) fail_entry(value, "a region needs electricity_usd_per_kwh");
      out[name] = region;
    }
  }

  energy_config energy(const located& at) const {
    energy_config out;
    for (const auto& [key, value] : entries(at, {"kwh_per_million_tokens"})) {
      (void)key;
      out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
    }
    return out;
  }

  health_config health(const located& at) const {
    health_config out;
    for (const auto& [key, value] :
         entries(at, {"failure_threshold", "cooldown", "recent_failure", "alpha"})) {
      if (key == "failure_threshold") {
        out.failure_threshold = static_cast<unsigned>(positive(value));
      } else if (key == "alpha") {
        double a = non_negative(value, "the weight of the newest sample");
        if (a <= 0 || a > 1)
          fail(value, "must be greater than 0 and at most 1, got '" + scalar(value) + "'");
        out.alpha = a;
      } else {
        duration d = convert(value, parse_duration);
        // A zero cooldown would let a probe through on every request to a failing provider.
        if (key == "cooldown" && d.count() == 0) fail(value, "must be greater than zero");
        (key == "cooldown" ? out.cooldown : out.recent_failure) = d;
      }
    }
    return out;
  }

  // The baseline's provider is checked later, once every provider is known.
  stats_config stats(const located& at, std::optional<located>& baseline_at) const {
    stats_config out;
    for (const auto& [key, value] :
         entries(at, {"ledger", "flush_interval", "retention", "baseline", "max_queue"})) {
      if (key == "ledger") {
        out.ledger = non_empty(value);
        out.ledger_path = ledger_path(value, out.ledger);
        if (out.ledger.rfind("postgres", 0) == 0) out.ledger_postgres = out.ledger;
      } else if (key == "flush_interval" || key == "retention") {
        duration d = convert(value, parse_duration);
        if (d.count() == 0) fail(value, "must be greater than zero");
        (key == "flush_interval" ? out.flush_interval : out.retention) = d;
      } else if (key == "baseline") {
        out.baseline = non_empty(value);
        auto slash = out.baseline.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == out.baseline.size())
          fail(value, "expected provider/model, got '" + out.baseline + "'");
        baseline_at = value;
      } else {
        out.max_queue = unsigned_int(value, std::numeric_limits<std::uint32_t>::max());
        if (out.max_queue == 0) fail(value, "must be greater than zero");
      }
    }
    return out;
  }

  std::string ledger_path(const located& at, const std::string& text) const {
    if (text == "none") return {};
    constexpr std::string_view sqlite = "sqlite:";
    if (text.rfind(sqlite, 0) == 0 && text.size() > sqlite.size())
      return text.substr(sqlite.size());
    if (text.rfind("postgres://", 0) == 0 || text.rfind("postgresql://", 0) == 0) {
      // A password in the URL would put a secret in the YAML; libpq reads PGPASSWORD.
      auto at_sign = text.find('@');
      auto colon = text.find(':', text.find("//") + 2);
      if (at_sign != std::string::npos && colon < at_sign)
        fail(at, "the ledger URL must not carry a password; set PGPASSWORD (or ~/.pgpass)");
      return {};
    }
    fail(at, "expected sqlite:PATH, postgres://… or none, got '" + text + "'");
  }

  static int line_of(const located& at) {
    const YAML::Mark& mark = at.key_mark.is_null() ? at.mark : at.key_mark;
    return mark.is_null() ? 1 : mark.line + 1;
  }

  provider_config provider(const std::string& name, const located& at, int line) const {
    provider_config out;
    out.name = name;
    out.line = line;
    for (const auto& [key, value] :
         entries(at, {"preset", "dialect", "base_url", "region", "api_key_env", "api_key_file",
                      "tls", "headers", "models", "kwh_per_million_tokens"})) {
      if (key == "kwh_per_million_tokens") {
        out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
      } else if (key == "preset") {
        out.preset = non_empty(value);
      } else if (key == "dialect") {
        out.dialect = dialect(value);
      } else if (key == "base_url") {
        out.base_url = scalar(value);
        auto rest = [&](std::string_view scheme) {
          return out.base_url.rfind(scheme, 0) == 0 && out.base_url.size() > scheme.size();
        };
        if (!rest("http://") && !rest("https://"))
          fail(value,
               "expected a URL starting with http:// or https://, got '" + out.base_url + "'");
      } else if (key == "region") {
        out.region = non_empty(value);
      } else if (key == "api_key_env") {
        out.api_key_env = non_empty(value);
      } else if (key == "api_key_file") {
        out.api_key_file = non_empty(value);
      } else if (key == "tls") {
        for (const auto& [tls_key, tls_value] : entries(value, {"verify", "ca_file"})) {
          if (tls_key == "verify") out.tls.verify = boolean(tls_value);
          if (tls_key == "ca_file") out.tls.ca_file = scalar(tls_value);
        }
      } else if (key == "headers") {
        for (const auto& [header, header_value] : entries(value))
          out.headers[header] = scalar(header_value);
      } else {
        for (const auto& [model_name, model_value] : entries(value)) {
          if (model_name.empty()) fail_entry(model_value, "a model name must not be empty");
          out.models[model_name] = model(model_value, line_of(model_value));
        }
      }
    }
    if (!out.api_key_env.empty() && !out.api_key_file.empty())
      fail_entry(at, "give either api_key_env or api_key_file, not both");
    if (out.preset.empty() && out.base_url.empty())
      fail_entry(at, "base_url is required when no preset is given");
    return out;
  }

  dialect_kind dialect(const located& at) const {
    std::string text = scalar(at);
    for (auto d : {dialect_kind::openai, dialect_kind::anthropic, dialect_kind::gemini})
      if (text == to_string(d)) return d;
    fail(at, "unknown dialect '" + text + "'; expected one of openai, anthropic, gemini");
  }

  config document(const YAML::Node& root) const {
    config out;
    out.source = source_;
    out.regions = default_regions();
    located at{root, "", root.Mark(), root.Mark()};
    // An empty file is what an editor leaves for a moment while it writes, or what a failed
    // copy leaves for good: serving it would drop every provider, key and limit.
    if (root.IsNull())
      fail(at, "the config is empty (no sections): refusing to run with nothing configured");
    if (!root.IsMap()) fail(at, "expected a map of sections, got " + std::string(kind_name(root)));

    std::vector<std::pair<std::string, located>> model_entries;
    std::optional<located> routes_at, baseline_at, keys_at;
    for (const auto& [key, value] :
         entries(at, {"server", "providers", "models", "routes", "regions", "energy", "stats",
                      "health", "auth", "keys", "state"})) {
      if (key == "auth") {
        out.auth = auth(value);
      } else if (key == "keys") {
        keys_at = value;
      } else if (key == "state") {
        out.state = state(value);
      } else if (key == "health") {
        out.health = health(value);
      } else if (key == "stats") {
        out.stats = stats(value, baseline_at);
      } else if (key == "routes") {
        routes_at = value;
      } else if (key == "regions") {
        regions(value, out.regions);
      } else if (key == "energy") {
        out.energy = energy(value);
      } else if (key == "server") {
        out.server = server(value);
      } else if (key == "providers") {
        for (const auto& [name, provider_value] : entries(value)) {
          if (name.empty()) fail_entry(provider_value, "a provider name must not be empty");
          if (name.find('/') != std::string::npos)
            fail_entry(provider_value,
                       "a provider name must not contain '/', since it prefixes "
                       "model names as provider/model");
          out.providers.push_back(provider(name, provider_value, line_of(provider_value)));
        }
      } else {
        model_entries = entries(value);
      }
    }
    // Overrides are checked after all providers are known, so section order does not matter.
    for (const auto& [name, value] : model_entries) {
      auto slash = name.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == name.size())
        fail_entry(value, "expected a key of the form provider/model, got '" + name + "'");
      std::string provider_name = name.substr(0, slash);
      bool known = std::any_of(out.providers.begin(), out.providers.end(),
                               [&](const provider_config& p) { return p.name == provider_name; });
      if (!known)
        fail_entry(value, "unknown provider '" + provider_name + "'; declare it under providers");
      out.models[name] = model(value, line_of(value));
    }
    if (baseline_at) {
      std::string provider_name = out.stats.baseline.substr(0, out.stats.baseline.find('/'));
      if (std::none_of(out.providers.begin(), out.providers.end(),
                       [&](const provider_config& p) { return p.name == provider_name; }))
        fail(*baseline_at, "unknown provider '" + provider_name + "'; declare it under providers");
    }
    if (routes_at) parse_routes(*routes_at, out);
    if (keys_at) parse_keys(*keys_at, out);
    return out;
  }

  auth_config auth(const located& at) const {
    auth_config out;
    for (const auto& [key, value] : entries(at, {"required", "admin_token_env"})) {
      if (key == "required") {
        out.required = boolean(value);
        out.required_written = true;
      }
      if (key == "admin_token_env") out.admin_token_env = non_empty(value);
    }
    return out;
  }

  // `state: local`, `state: redis://host:port`, or a map with url, on_error, timeout and
  // reserve_tokens.
  state_config state(const located& at) const {
    state_config out;
    auto url = [&](const located& v) {
      std::string text = non_empty(v);
      if (text != "local" && !(text.rfind("redis://", 0) == 0 && text.size() > 8))
        fail(v, "expected local or redis://host:port, got '" + text + "'");
      if (text.find('@') != std::string::npos)
        fail(v, "credentials do not go in YAML; Redis authentication is not supported yet");
      return text;
    };
    if (at.node.IsScalar()) {
      out.url = url(at);
      return out;
    }
    for (const auto& [key, value] : entries(at, {"url", "on_error", "timeout", "reserve_tokens"})) {
      if (key == "url") {
        out.url = url(value);
      } else if (key == "on_error") {
        std::string text = scalar(value);
        if (text != "open" && text != "closed")
          fail(value, "expected open (admit) or closed (refuse), got '" + text + "'");
        out.fail_open = text == "open";
      } else if (key == "timeout") {
        out.timeout = convert(value, parse_duration);
        if (out.timeout.count() == 0) fail(value, "must be greater than zero");
      } else {
        out.reserve_tokens = unsigned_int(value, 10'000'000);
        if (out.reserve_tokens == 0) fail(value, "must be greater than zero");
      }
    }
    return out;
  }

  key_config virtual_key(const located& at) const {
    key_config out;
    out.line = line_of(at);
    for (const auto& [key, value] :
         entries(at, {"name", "key_sha256", "key_env", "rpm", "tpm", "budget", "allow"})) {
      if (key == "name") {
        out.name = non_empty(value);
      } else if (key == "key_sha256") {
        out.key_sha256 = non_empty(value);
        std::transform(out.key_sha256.begin(), out.key_sha256.end(), out.key_sha256.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (out.key_sha256.size() != 64 ||
            out.key_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
          fail(value, "expected 64 hex digits (the SHA-256 of the key)");
      } else if (key == "key_env") {
        out.key_env = non_empty(value);
      } else if (key == "rpm" || key == "tpm") {
        std::uint64_t n = unsigned_int(value, std::numeric_limits<std::uint32_t>::max());
        if (n == 0) fail(value, "must be greater than zero; omit it for no limit");
        (key == "rpm" ? out.rpm : out.tpm) = n;
      } else if (key == "budget") {
        key_budget b;
        bool has_usd = false;
        for (const auto& [bkey, bvalue] : entries(value, {"usd", "period"})) {
          if (bkey == "usd") {
            b.usd = non_negative(bvalue, "USD");
            has_usd = true;
          } else {
            std::string text = scalar(bvalue);
            if (text != "day" && text != "month")
              fail(bvalue, "expected day or month, got '" + text + "'");
            b.period = text == "day" ? budget_period::day : budget_period::month;
          }
        }
        if (!has_usd) fail(value, "a budget needs usd");
        out.budget = b;
      } else if (key == "allow") {
        for (const auto& [akey, avalue] : entries(value, {"regions"}))
          if (akey == "regions") out.allow_regions = names(avalue);
        if (out.allow_regions.empty()) fail(value, "allow.regions must name at least one region");
      }
    }
    if (out.name.empty()) fail_entry(at, "a key needs a name");
    if (out.key_sha256.empty() == out.key_env.empty())
      fail_entry(at, "give either key_sha256 or key_env (exactly one)");
    return out;
  }

  void parse_keys(const located& at, config& out) const {
    std::set<std::string> names_seen;
    for (const auto& item : items(at)) {
      out.keys.push_back(virtual_key(item));
      const key_config& k = out.keys.back();
      if (!names_seen.insert(k.name).second)
        fail_entry(item, "duplicate key name '" + k.name + "'");
      for (const auto& region : k.allow_regions)
        if (!out.regions.count(region))
          fail_entry(item, "unknown region '" + region +
                               "' in allow.regions; use cn, us, eu, local or a name declared "
                               "under regions");
    }
  }

  // Routes come last: their checks need the declared providers and regions.
  void parse_routes(const located& at, config& out) const {
    references refs;
    std::set<std::string> matches;
    for (const auto& item : items(at)) {
      out.routes.push_back(route(item, refs));
      if (!matches.insert(out.routes.back().match).second)
        fail_entry(item, "duplicate route for match '" + out.routes.back().match +
                             "'; the first would hide this one");
    }
    for (const auto& ref : refs.providers) {
      const std::string& name = ref.node.Scalar();
      if (std::none_of(out.providers.begin(), out.providers.end(),
                       [&](const provider_config& p) { return p.name == name; }))
        fail(ref, "unknown provider '" + name + "'; declare it under providers");
    }
    for (const auto& ref : refs.regions)
      if (!out.regions.count(ref.node.Scalar()))
        fail(ref, "unknown region '" + ref.node.Scalar() +
                      "'; use cn, us, eu, local or a name declared under regions");
  }

 private:
  std::string source_;
};

// Splits "250ms" into its digits and unit; the digits must be a whole non-negative number.
std::pair<std::uint64_t, std::string_view> number_and_unit(std::string_view text,
                                                           std::string_view what) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0)
    throw std::invalid_argument("expected " + std::string(what) + ", got '" + std::string(text) +
                                "'");
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits)
    throw std::invalid_argument("'" + std::string(text) + "' is too large");
  return {value, text.substr(digits)};
}

std::uint64_t checked_multiply(std::uint64_t value, std::uint64_t factor, std::string_view text) {
  if (factor != 0 && value > std::numeric_limits<std::uint64_t>::max() / factor)
    throw std::invalid_argument("'" + std::string(text) + "' is too large");
  return value * factor;
}

}  // namespace

duration parse_duration(const std::string& text) {
  auto [value, unit] = number_and_unit(text, "a duration such as 250ms, 10s, 2m, 1h or 30d");
  std::uint64_t factor = 0;
  if (unit == "ms") factor = 1;
  if (unit == "s") factor = 1000;
  if (unit == "m") factor = 60'000;
  if (unit == "h") factor = 3'600'000;
  if (unit == "d") factor = 86'400'000;
  if (unit.empty())
    throw std::invalid_argument("duration '" + text +
                                "' has no unit; write it as 250ms, 10s, 2m, 1h or 30d");
  if (factor == 0)
    throw std::invalid_argument("unknown duration unit '" + std::string(unit) + "' in '" + text +
                                "'; expected ms, s, m, h or d");
  std::uint64_t ms = checked_multiply(value, factor, text);
  if (ms > static_cast<std::uint64_t>(std::numeric_limits<duration::rep>::max()))
    throw std::invalid_argument("duration '" + text + "' is too large");
  return duration(static_cast<duration::rep>(ms));
}

std::uint64_t parse_size(const std::string& text) {
  auto [value, unit] = number_and_unit(text, "a size such as 512KiB, 8MiB or 1000");
  static constexpr std::pair<std::string_view, std::uint64_t> k_units[] = {{"", 1},
                                                                           {"B", 1},
                                                                           {"KB", 1000},
                                                                           {"MB", 1000'000},
                                                                           {"GB", 1000'000'000},
                                                                           {"KiB", 1ull << 10},
                                                                           {"MiB", 1ull << 20},
                                                                           {"GiB", 1ull << 30}};
  for (const auto& [name, factor] : k_units)
    if (unit == name) return checked_multiply(value, factor, text);
  throw std::invalid_argument("unknown size unit '" + std::string(unit) + "' in '" + text +
                              "'; expected B, KB, MB, GB, KiB, MiB or GiB");
}

endpoint parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    throw std::invalid_argument("expected host:port or :port, got '" + text + "'");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  // IPv6 hosts are bracketed ("[::1]:8080") so the last colon still separates the port.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    throw std::invalid_argument("an IPv6 host must be bracketed, as in [::1]:8080; got '" + text +
                                "'");
  if (host.empty()) host = "0.0.0.0";
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec == std::errc::invalid_argument ||
      end != port_text.data() + port_text.size())
    throw std::invalid_argument("expected a numeric port in '" + text + "'");
  if (ec == std::errc::result_out_of_range || port > 65535)
    throw std::invalid_argument("port " + port_text + " is out of range 0..65535");
  return endpoint{host, static_cast<std::uint16_t>(port)};
}

std::string_view to_string(dialect_kind d) {
  switch (d) {
    case dialect_kind::openai:
      return "openai";
    case dialect_kind::anthropic:
      return "anthropic";
    case dialect_kind::gemini:
      return "gemini";
  }
  return "unknown";
}

std::map<std::string, region_config> default_regions() {
  return {{"cn", {0.076, 0}}, {"eu", {0.175, 0}}, {"local", {0.14, 0}}, {"us", {0.14, 0}}};
}

std::string_view to_string(route_policy p) {
  switch (p) {
    case route_policy::cost:
      return "cost";
    case route_policy::latency:
      return "latency";
    case route_policy::throughput:
      return "throughput";
    case route_policy::quality:
      return "quality";
    case route_policy::balanced:
      return "balanced";
    case route_policy::weighted:
      return "weighted";
    case route_policy::ordered:
      return "ordered";
  }
  return "unknown";
}

std::optional<route_policy> parse_route_policy(std::string_view text) {
  for (auto p : k_policies)
    if (to_string(p) == text) return p;
  return std::nullopt;
}

std::string_view to_string(budget_period p) {
  return p == budget_period::day ? "day" : "month";
}

std::string_view to_string(capability c) {
  switch (c) {
    case capability::tools:
      return "tools";
    case capability::images:
      return "images";
    case capability::json:
      return "json";
  }
  return "unknown";
}

namespace {

// yaml-cpp 0.7 loops forever, emitting nulls and growing without bound, on a document whose
// root starts with a tag or anchor followed by ',' (e.g. "!a,", found by tests/fuzz/fuzz_yaml).
// A real document yields at most a few events per byte, so a first pass that only counts events
// stops the loop before YAML::LoadAll builds it into nodes.
class event_budget : public YAML::EventHandler {
 public:
  event_budget(std::size_t text_bytes, const std::string& source)
      : left_(4 * text_bytes + 64), source_(source) {}

  void OnDocumentStart(const YAML::Mark& m) override { spend(m); }
  void OnDocumentEnd() override { spend(mark_); }
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { spend(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { spend(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    spend(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    spend(m);
  }
  void OnSequenceEnd() override { spend(mark_); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    spend(m);
  }
  void OnMapEnd() override { spend(mark_); }

 private:
  void spend(const YAML::Mark& m) {
    mark_ = m;
    if (left_-- == 0)
      throw config_error(source_ + ": (line " + std::to_string(m.line + 1) +
                         "): invalid YAML: the parser does not terminate on this text");
  }

  std::size_t left_;
  const std::string& source_;
  YAML::Mark mark_;
};

}  // namespace

config parse_config(const std::string& yaml_text, const std::string& source) {
  std::vector<YAML::Node> documents;
  try {
    std::istringstream in(yaml_text);
    YAML::Parser events(in);
    event_budget budget(yaml_text.size(), source);
    while (events.HandleNextDocument(budget)) {
    }
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw config_error(source + ": (line " + std::to_string(e.mark.line + 1) +
                       "): invalid YAML: " + e.msg);
  }
  parser p(source);
  if (documents.size() > 1)
    p.fail("", documents[1].Mark(), "expected a single YAML document, found several");
  return p.document(documents.empty() ? YAML::Node() : documents.front());
}

config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw config_error(path + ": cannot read the file");
  return parse_config(text.str(), path);
}

}  // namespace meridian::config
