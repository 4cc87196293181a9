// The names of config.hpp's enums: one table per enum drives to_string, parsing and the list of
// allowed names that error messages give.
#include "config/detail.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace meridian::config {

namespace {

template <typename E, std::size_t N>
using name_table = std::array<std::pair<E, std::string_view>, N>;

constexpr name_table<dialect_kind, 3> k_dialects{{{dialect_kind::openai, "openai"},
                                                  {dialect_kind::anthropic, "anthropic"},
                                                  {dialect_kind::gemini, "gemini"}}};
constexpr name_table<route_policy, 7> k_policies{{{route_policy::cost, "cost"},
                                                  {route_policy::latency, "latency"},
                                                  {route_policy::throughput, "throughput"},
                                                  {route_policy::quality, "quality"},
                                                  {route_policy::balanced, "balanced"},
                                                  {route_policy::weighted, "weighted"},
                                                  {route_policy::ordered, "ordered"}}};
constexpr name_table<capability, 4> k_capabilities{{{capability::tools, "tools"},
                                                    {capability::images, "images"},
                                                    {capability::json, "json"},
                                                    {capability::reasoning, "reasoning"}}};
constexpr name_table<budget_period, 2> k_periods{
    {{budget_period::day, "day"}, {budget_period::month, "month"}}};

// The table of an enum, chosen by overload.
constexpr const auto& table(dialect_kind) {
  return k_dialects;
}
constexpr const auto& table(route_policy) {
  return k_policies;
}
constexpr const auto& table(capability) {
  return k_capabilities;
}
constexpr const auto& table(budget_period) {
  return k_periods;
}

template <typename E>
std::string_view name_of(E value) {
  for (const auto& [e, name] : table(value))
    if (e == value) return name;
  return "unknown";
}

}  // namespace

namespace detail {

template <typename E>
std::optional<E> parse_enum(std::string_view text) {
  for (const auto& [value, name] : table(E{}))
    if (name == text) return value;
  return std::nullopt;
}

template <typename E>
std::string enum_names(std::string_view separator) {
  std::string out;
  for (const auto& [value, name] : table(E{})) {
    if (!out.empty()) out += separator;
    out += name;
  }
  return out;
}

template std::optional<dialect_kind> parse_enum<dialect_kind>(std::string_view);
template std::optional<route_policy> parse_enum<route_policy>(std::string_view);
template std::optional<capability> parse_enum<capability>(std::string_view);
template std::optional<budget_period> parse_enum<budget_period>(std::string_view);
template std::string enum_names<dialect_kind>(std::string_view);
template std::string enum_names<route_policy>(std::string_view);
template std::string enum_names<capability>(std::string_view);
template std::string enum_names<budget_period>(std::string_view);

}  // namespace detail

std::string_view to_string(dialect_kind d) {
  return name_of(d);
}
std::string_view to_string(route_policy p) {
  return name_of(p);
}
std::string_view to_string(capability c) {
  return name_of(c);
}
std::string_view to_string(budget_period p) {
  return name_of(p);
}

std::optional<route_policy> parse_route_policy(std::string_view text) {
  return detail::parse_enum<route_policy>(text);
}

}  // namespace meridian::config
