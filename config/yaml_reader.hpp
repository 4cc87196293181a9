// The strict YAML reader under the section parsers: nodes located by path and line, maps checked
// for duplicate and unknown keys, typed scalars, and config_error messages that name all three.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace meridian::config::detail {

// "a map", "a list", "a scalar" or "nothing", for messages such as "expected a map, got a list".
std::string_view kind_name(const YAML::Node& node);

// A node with the path and line that name it in messages. Null nodes carry no mark in
// yaml-cpp, so they inherit their key's.
struct located {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  YAML::Mark key_mark;  // where the name sits; a block map's own mark is its first child's line
};

class reader {
 public:
  explicit reader(std::string source) : source_(std::move(source)) {}

  // The name of the text being read, as every message starts.
  const std::string& source() const { return source_; }

  [[noreturn]] void fail(const std::string& path, const YAML::Mark& mark,
                         std::string_view what) const;
  [[noreturn]] void fail(const located& at, std::string_view what) const;
  // For problems with an entry as a whole (its name, a missing key) rather than its value.
  [[noreturn]] void fail_entry(const located& at, std::string_view what) const;

  // The entries of a map, checked for non-scalar, duplicate and (unless `allowed` is empty, as
  // for names the operator picks) unknown keys. A null node is an empty map, so "models:" with
  // nothing under it is fine.
  std::vector<std::pair<std::string, located>> entries(
      const located& at, std::initializer_list<std::string_view> allowed = {}) const;

  // The items of a YAML list, each located as "path[i]". A null node is an empty list.
  std::vector<located> items(const located& at) const;

  std::string scalar(const located& at) const;
  std::string non_empty(const located& at) const;
  // A list of non-empty names.
  std::vector<std::string> names(const located& at) const;
  std::uint64_t unsigned_int(const located& at, std::uint64_t max) const;
  // An unsigned integer from 1 to 2^32 - 1.
  std::uint64_t positive(const located& at) const;
  bool boolean(const located& at) const;
  // USD per million tokens.
  double price(const located& at) const;
  // A finite non-negative number; `what` says what it measures in the message.
  double non_negative(const located& at, std::string_view what) const;
  // An integer from 0 to 100.
  int quality(const located& at) const;

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

  // The line an entry starts on, as config structs record it.
  static int line_of(const located& at);

 private:
  std::string source_;
};

}  // namespace meridian::config::detail
