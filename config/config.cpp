// Parses and validates Meridian's YAML into the typed structs of config.hpp, reporting each
// problem with its source, YAML path and line so an operator can fix it without guessing.
#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
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
constexpr std::string_view k_unsupported_sections[] = {"routes", "regions", "energy", "auth",
                                                       "keys",   "stats",   "state"};

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
    for (const auto& [key, value] :
         entries(at, {"max_body_bytes", "max_header_bytes", "max_connections"})) {
      if (key == "max_connections") {
        out.max_connections = static_cast<std::uint32_t>(positive(value));
        continue;
      }
      std::uint64_t bytes = convert(value, parse_size);
      if (bytes == 0) fail(value, "must be greater than zero");
      if (key == "max_body_bytes") {
        out.max_body_bytes = bytes;
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
         entries(at, {"input", "output", "cache_read", "cache_write", "quality", "context"})) {
      if (key == "input") out.input = price(value);
      if (key == "output") out.output = price(value);
      if (key == "cache_read") out.cache_read = price(value);
      if (key == "cache_write") out.cache_write = price(value);
      if (key == "context") out.context = static_cast<std::uint32_t>(positive(value));
      if (key == "quality") {
        std::string text = scalar(value);
        int q = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), q);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size() || q < 0 ||
            q > 100)
          fail(value, "expected an integer between 0 and 100, got '" + text + "'");
        out.quality = q;
      }
    }
    return out;
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
                      "tls", "headers", "models"})) {
      if (key == "preset") {
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
    located at{root, "", root.Mark(), root.Mark()};
    if (!root.IsNull() && !root.IsMap())
      fail(at, "expected a map of sections, got " + std::string(kind_name(root)));
    if (root.IsNull()) return out;

    std::vector<std::pair<std::string, located>> model_entries;
    for (const auto& kv : root) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      if (std::find(std::begin(k_unsupported_sections), std::end(k_unsupported_sections), key) !=
          std::end(k_unsupported_sections))
        fail(key, kv.first.Mark(), "section not supported by this version yet");
    }
    for (const auto& [key, value] : entries(at, {"server", "providers", "models"})) {
      if (key == "server") {
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
    return out;
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
  auto [value, unit] = number_and_unit(text, "a duration such as 250ms, 10s, 2m or 1h");
  std::uint64_t factor = 0;
  if (unit == "ms") factor = 1;
  if (unit == "s") factor = 1000;
  if (unit == "m") factor = 60'000;
  if (unit == "h") factor = 3'600'000;
  if (unit.empty())
    throw std::invalid_argument("duration '" + text +
                                "' has no unit; write it as 250ms, 10s, 2m or 1h");
  if (factor == 0)
    throw std::invalid_argument("unknown duration unit '" + std::string(unit) + "' in '" + text +
                                "'; expected ms, s, m or h");
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

config parse_config(const std::string& yaml_text, const std::string& source) {
  std::vector<YAML::Node> documents;
  try {
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
