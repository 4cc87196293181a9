// The statistics answers as JSON (a contract with the dashboard and the gateway) and as the
// terminal table of `meridian stats`, plus the parsing of their query parameters.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "stats/usage_event.hpp"

namespace meridian::stats {

using time_point = std::chrono::system_clock::time_point;

// What rows are grouped by. Model rows are keyed "provider/model".
// app, task and language come from the generation records (kept for stats.retention).
enum class dimension { region, provider, model, author, key, app, task, language };
std::string_view to_string(dimension d);
std::optional<dimension> parse_dimension(std::string_view text);

// A bad query parameter (`param` names it), a record that is not there, or a ledger that cannot
// answer.
struct query_error {
  enum class kind { bad_param, not_found, unavailable };
  std::string param;
  std::string message;
  kind what = kind::bad_param;
};
template <class T>
using result = std::variant<T, query_error>;

// A half-open interval [from, to) on whole hours, since the ledger keeps hourly buckets.
struct time_window {
  std::string name;  // "1h", "24h", "7d", "30d" or "custom"
  time_point from, to;
};

// Sums over some set of events.
struct aggregate {
  token_buckets tokens;
  std::uint64_t requests = 0;          // attempts: a fallback counts for each provider it reached
  std::uint64_t errors = 0;            // attempts whose outcome was not "ok"
  std::uint64_t estimated_tokens = 0;  // of tokens, those counted by Meridian's estimate (the
                                       // upstream reported no usage, or not all of it)
  double cost_usd = 0;
  double uncached_cost_usd = 0;  // cost_usd had nothing been served from or written to a cache
  double energy_kwh = 0;
  double electricity_usd = 0;
  aggregate& operator+=(const aggregate& o);
};

struct share_row {
  std::string key;
  aggregate current;
  std::uint64_t previous_tokens = 0;  // the same key over the window just before
};

struct share_data {
  time_window window;
  dimension by = dimension::region;
  std::vector<share_row> rows;  // any order; share_json sorts
};

struct daily_row {
  std::string key;
  std::uint64_t tokens = 0;
};
struct daily_day {
  std::string day;  // "2026-11-01", UTC
  std::vector<daily_row> rows;
  std::uint64_t estimated_tokens = 0;  // of the day's tokens, those that were estimated
};
struct daily_data {
  unsigned days = 30;
  unsigned top = 20;
  dimension by = dimension::model;
  std::vector<daily_day> series;  // oldest first, one entry per day even without traffic
};

// USD per million tokens, as in providers::model_info (which stats must not depend on).
struct price {
  double input = 0, output = 0, cache_read = 0, cache_write = 0;
};
// USD for `t` at `p`; reasoning is billed as output, as providers::cost_usd does.
double cost_at(const token_buckets& t, const price& p);

// The model every token is priced against for the savings figure.
struct baseline {
  std::string name;  // "provider/model"
  price prices;
};

struct share_query {
  time_window window;
  dimension by = dimension::region;
};
struct daily_query {
  unsigned days = 30;
  unsigned top = 20;
  dimension by = dimension::model;
};

// window = 1h|24h|7d|30d (default 7d), ending with the hour that contains `now`; or from and to
// (ISO 8601, "2026-11-01" or "2026-11-01T10:00:00Z"), rounded out to whole hours.
// by = region|provider|model|author|key (default region). Unset parameters are nullopt.
result<share_query> parse_share_query(std::optional<std::string_view> window,
                                      std::optional<std::string_view> by,
                                      std::optional<std::string_view> from,
                                      std::optional<std::string_view> to, time_point now);
// days 1..366 (default 30), top 1..100 (default 20), by as above (default model).
result<daily_query> parse_daily_query(std::optional<std::string_view> days,
                                      std::optional<std::string_view> top,
                                      std::optional<std::string_view> by);

// Shares in millionths that add to exactly 1'000'000 (largest-remainder rounding of
// tokens / total), so the JSON shares, each a multiple of 1e-6, sum to 1. All zero when
// the total is zero.
std::vector<std::uint64_t> micro_shares(const std::vector<std::uint64_t>& tokens);

// Per-day top-N: keys ranked by their tokens over all days (ties by name), each day listing the
// top keys it has traffic for, by tokens descending, then "other" with the rest (omitted at 0).
// `per_day` is oldest first.
std::vector<daily_day> top_n_series(
    const std::vector<std::pair<std::string, std::map<std::string, std::uint64_t>>>& per_day,
    unsigned top);

// {"window","by","from","to","total":{...},"rows":[...],"savings":{...}|null}; rows by tokens
// descending (ties by key), growth = tokens / previous_tokens - 1 or null when previous is 0.
// Every row and the total say how much of their tokens was estimated: estimated_tokens and
// estimated_share (of the row's own tokens, 0 when it has none).
nlohmann::json share_json(const share_data& data, const std::optional<baseline>& base = {});
// {"days","top","by","series":[{"day","rows":[{"key","tokens"}],"estimated_tokens"}]}
nlohmann::json daily_json(const daily_data& data);
// One request's record, as GET /v1/generation answers it.
nlohmann::json generation_json(const usage_event& event);

// The share answer as an aligned terminal table (key, share, tokens, requests, cost, kWh,
// growth) with a total line and, when present, the savings line.
std::string share_table(const nlohmann::json& share);

// "2026-11-01T10:00:00Z" (UTC, whole seconds).
std::string format_iso8601(time_point t);
// "2026-11-01" (UTC day).
std::string format_day(time_point t);
// "2026-11-01" or "2026-11-01T10:00:00Z" (a trailing Z or nothing; no offsets).
std::optional<time_point> parse_iso8601(std::string_view text);

}  // namespace meridian::stats
