// The free value parsers of config.hpp: durations ("250ms"), sizes ("8MiB") and endpoints
// ("host:port"), each throwing std::invalid_argument with a message fit for an operator.
#include "config/config.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::config {

namespace {

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

std::string closest_name(std::string_view word, const std::vector<std::string>& names) {
  // Levenshtein distance, one row at a time.
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = up;
      }
    }
    return row[b.size()];
  };
  const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const auto& n : names) {
    const std::size_t d = distance(word, n);
    if (d < best_distance) {
      best = n;
      best_distance = d;
    }
  }
  return best;
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

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace meridian::config
