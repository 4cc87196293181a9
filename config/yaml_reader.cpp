// The strict YAML reader of yaml_reader.hpp: paths, kind names, map and list checks, typed
// scalars and the located config_error messages.
#include "config/yaml_reader.hpp"

#include "config/config.hpp"  // closest_name

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

namespace meridian::config::detail {

namespace {

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

}  // namespace

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

void reader::fail(const std::string& path, const YAML::Mark& mark, std::string_view what) const {
  int line = mark.is_null() ? 1 : mark.line + 1;
  std::string where = path.empty() ? std::string("(document)") : path;
  throw config_error(source_ + ": " + where + " (line " + std::to_string(line) +
                     "): " + std::string(what));
}

void reader::fail(const located& at, std::string_view what) const {
  fail(at.path, at.mark, what);
}

void reader::fail_entry(const located& at, std::string_view what) const {
  fail(at.path, at.key_mark.is_null() ? at.mark : at.key_mark, what);
}

std::vector<std::pair<std::string, located>> reader::entries(
    const located& at, std::initializer_list<std::string_view> allowed) const {
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
    if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      const std::string near =
          closest_name(key, std::vector<std::string>(allowed.begin(), allowed.end()));
      fail(path, key_mark,
           "unknown key" + (near.empty() ? std::string() : " (did you mean '" + near + "'?)") +
               "; expected one of " + join(allowed));
    }
    if (!seen.insert(key).second)
      fail(path, key_mark, at.path == "providers" ? "duplicate provider name" : "duplicate key");
    YAML::Mark value_mark = kv.second.Mark().is_null() ? key_mark : kv.second.Mark();
    out.emplace_back(key, located{kv.second, std::move(path), value_mark, key_mark});
  }
  return out;
}

std::vector<located> reader::items(const located& at) const {
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

std::string reader::scalar(const located& at) const {
  if (!at.node.IsScalar())
    fail(at, "expected a scalar value, got " + std::string(kind_name(at.node)));
  return at.node.Scalar();
}

std::string reader::non_empty(const located& at) const {
  std::string text = scalar(at);
  if (text.empty()) fail(at, "must not be empty");
  return text;
}

std::vector<std::string> reader::names(const located& at) const {
  std::vector<std::string> out;
  for (const auto& item : items(at)) out.push_back(non_empty(item));
  return out;
}

std::uint64_t reader::unsigned_int(const located& at, std::uint64_t max) const {
  std::string text = scalar(at);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
    fail(at, "expected an unsigned integer, got '" + text + "'");
  if (ec == std::errc::result_out_of_range || value > max)
    fail(at, "'" + text + "' is too large; the maximum is " + std::to_string(max));
  return value;
}

std::uint64_t reader::positive(const located& at) const {
  std::uint64_t value = unsigned_int(at, std::numeric_limits<std::uint32_t>::max());
  if (value == 0) fail(at, "must be greater than zero");
  return value;
}

bool reader::boolean(const located& at) const {
  std::string text = scalar(at);
  if (text == "true") return true;
  if (text == "false") return false;
  fail(at, "expected true or false, got '" + text + "'");
}

double reader::price(const located& at) const {
  std::string text = scalar(at);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value))
    fail(at, "expected a number (USD per million tokens), got '" + text + "'");
  if (value < 0) fail(at, "a price must not be negative, got '" + text + "'");
  return value;
}

double reader::non_negative(const located& at, std::string_view what) const {
  std::string text = scalar(at);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value))
    fail(at, "expected a number (" + std::string(what) + "), got '" + text + "'");
  if (value < 0) fail(at, "must not be negative, got '" + text + "'");
  return value;
}

int reader::quality(const located& at) const {
  std::string text = scalar(at);
  int q = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), q);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || q < 0 || q > 100)
    fail(at, "expected an integer between 0 and 100, got '" + text + "'");
  return q;
}

int reader::line_of(const located& at) {
  const YAML::Mark& mark = at.key_mark.is_null() ? at.mark : at.key_mark;
  return mark.is_null() ? 1 : mark.line + 1;
}

}  // namespace meridian::config::detail
