// Builds the share, daily and generation answers; pure functions, so every figure the
// dashboard shows can be tested without a database.
#include "stats/report.hpp"

#include "config/config.hpp"  // parse_duration

#include <algorithm>
#include <array>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <numeric>

namespace meridian::stats {
namespace {

using namespace std::chrono;

// 128-bit products: token totals times a million overflow 64 bits past 1.8e13 tokens.
__extension__ typedef unsigned __int128 u128;

constexpr std::pair<std::string_view, dimension> k_dimensions[] = {
    {"region", dimension::region}, {"provider", dimension::provider}, {"model", dimension::model},
    {"author", dimension::author}, {"key", dimension::key},           {"app", dimension::app},
    {"task", dimension::task},     {"language", dimension::language}};

constexpr std::pair<std::string_view, hours> k_windows[] = {
    {"1h", hours(1)}, {"24h", hours(24)}, {"7d", hours(24 * 7)}, {"30d", hours(24 * 30)}};

time_point floor_hour(time_point t) {
  return floor<hours>(t);
}
time_point ceil_hour(time_point t) {
  return ceil<hours>(t);
}

std::optional<unsigned> parse_bounded(std::string_view text, unsigned lo, unsigned hi) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value < lo || value > hi) return std::nullopt;
  return value;
}

// Reads exactly `n` digits at `pos`.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

nlohmann::json money_fields(nlohmann::json out, const aggregate& a) {
  out["requests"] = a.requests;
  out["errors"] = a.errors;
  out["estimated_tokens"] = a.estimated_tokens;
  const auto tokens = a.tokens.total();
  out["estimated_share"] =
      tokens == 0 ? 0.0 : static_cast<double>(a.estimated_tokens) / static_cast<double>(tokens);
  out["cost_usd"] = a.cost_usd;
  out["energy_kwh"] = a.energy_kwh;
  out["electricity_usd"] = a.electricity_usd;
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string json_text(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

std::string_view to_string(dimension d) {
  for (const auto& [name, value] : k_dimensions)
    if (value == d) return name;
  return "unknown";
}

std::optional<dimension> parse_dimension(std::string_view text) {
  for (const auto& [name, value] : k_dimensions)
    if (name == text) return value;
  return std::nullopt;
}

aggregate& aggregate::operator+=(const aggregate& o) {
  tokens += o.tokens;
  requests += o.requests;
  errors += o.errors;
  estimated_tokens += o.estimated_tokens;
  cost_usd += o.cost_usd;
  uncached_cost_usd += o.uncached_cost_usd;
  energy_kwh += o.energy_kwh;
  electricity_usd += o.electricity_usd;
  return *this;
}

double cost_at(const token_buckets& t, const price& p) {
  return (static_cast<double>(t.input) * p.input +
          static_cast<double>(t.cache_read) * p.cache_read +
          static_cast<double>(t.cache_write) * p.cache_write +
          static_cast<double>(t.output + t.reasoning) * p.output) /
         1e6;
}

result<share_query> parse_share_query(std::optional<std::string_view> window,
                                      std::optional<std::string_view> by,
                                      std::optional<std::string_view> from,
                                      std::optional<std::string_view> to, time_point now) {
  share_query out;
  if (by) {
    auto d = parse_dimension(*by);
    if (!d)
      return query_error{
          "by", "unknown by '" + std::string(*by) +
                    "'; expected region, provider, model, author, key, app, task or language"};
    out.by = *d;
  }
  if (from || to) {
    if (window) return query_error{"window", "give either window or from and to, not both"};
    if (!from) return query_error{"from", "from is required with to"};
    if (!to) return query_error{"to", "to is required with from"};
    auto f = parse_iso8601(*from);
    if (!f)
      return query_error{"from", "expected an ISO 8601 time such as 2026-11-01T00:00:00Z, got '" +
                                     std::string(*from) + "'"};
    auto t = parse_iso8601(*to);
    if (!t)
      return query_error{"to", "expected an ISO 8601 time such as 2026-11-08T00:00:00Z, got '" +
                                   std::string(*to) + "'"};
    out.window = {"custom", floor_hour(*f), ceil_hour(*t)};
    if (out.window.from >= out.window.to) return query_error{"to", "to must be after from"};
    return out;
  }
  std::string_view name = window.value_or("7d");
  for (const auto& [label, length] : k_windows) {
    if (label != name) continue;
    auto end = floor_hour(now) + hours(1);
    out.window = {std::string(label), end - length, end};
    return out;
  }
  // Any duration the config takes (90m, 1d, 48h, 2w is not one), in whole hours: the ledger keeps
  // hourly buckets.
  std::optional<config::duration> length;
  try {
    length = config::parse_duration(std::string(name));
  } catch (const std::invalid_argument&) {
  }
  if (length && (length->count() == 0 || *length % hours(1) != config::duration::zero()))
    return query_error{"window", "window '" + std::string(name) +
                                     "' is not a whole number of hours (the ledger keeps hourly "
                                     "buckets)"};
  if (length && *length > hours(24 * 400))
    return query_error{"window", "window '" + std::string(name) + "' is longer than 400 days"};
  if (length) {
    auto end = floor_hour(now) + hours(1);
    out.window = {std::string(name), end - *length, end};
    return out;
  }
  return query_error{"window", "unknown window '" + std::string(name) +
                                   "'; expected a duration in whole hours such as 1h, 24h, 1d, "
                                   "7d or 30d, or from and to"};
}

result<daily_query> parse_daily_query(std::optional<std::string_view> days,
                                      std::optional<std::string_view> top,
                                      std::optional<std::string_view> by) {
  daily_query out;
  if (days) {
    auto v = parse_bounded(*days, 1, 366);
    if (!v) return query_error{"days", "expected a whole number of days from 1 to 366"};
    out.days = *v;
  }
  if (top) {
    auto v = parse_bounded(*top, 1, 100);
    if (!v) return query_error{"top", "expected a whole number from 1 to 100"};
    out.top = *v;
  }
  if (by) {
    auto d = parse_dimension(*by);
    if (!d)
      return query_error{
          "by", "unknown by '" + std::string(*by) +
                    "'; expected region, provider, model, author, key, app, task or language"};
    out.by = *d;
  }
  return out;
}

std::vector<std::uint64_t> micro_shares(const std::vector<std::uint64_t>& tokens) {
  constexpr std::uint64_t k_whole = 1'000'000;
  std::vector<std::uint64_t> out(tokens.size(), 0);
  u128 total = std::accumulate(tokens.begin(), tokens.end(), u128{0});
  if (total == 0) return out;
  std::vector<std::pair<u128, std::size_t>> remainders;
  std::uint64_t given = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    u128 scaled = u128{tokens[i]} * k_whole;
    out[i] = static_cast<std::uint64_t>(scaled / total);
    given += out[i];
    remainders.emplace_back(scaled % total, i);
  }
  // Largest remainder first; ties go to the earlier row, which is the larger one after sorting.
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = 0; given < k_whole; ++i, ++given) ++out[remainders[i].second];
  return out;
}

std::vector<daily_day> top_n_series(
    const std::vector<std::pair<std::string, std::map<std::string, std::uint64_t>>>& per_day,
    unsigned top) {
  std::map<std::string, std::uint64_t> overall;
  for (const auto& [day, rows] : per_day)
    for (const auto& [key, tokens] : rows) overall[key] += tokens;
  std::vector<std::pair<std::string, std::uint64_t>> ranked(overall.begin(), overall.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (ranked.size() > top) ranked.resize(top);
  std::map<std::string, bool> chosen;
  for (const auto& [key, tokens] : ranked) chosen[key] = true;

  std::vector<daily_day> out;
  for (const auto& [day, rows] : per_day) {
    daily_day d{day, {}};
    std::uint64_t other = 0;
    for (const auto& [key, tokens] : rows) {
      if (chosen.count(key))
        d.rows.push_back({key, tokens});
      else
        other += tokens;
    }
    std::stable_sort(d.rows.begin(), d.rows.end(),
                     [](const daily_row& a, const daily_row& b) { return a.tokens > b.tokens; });
    if (other > 0) d.rows.push_back({"other", other});
    out.push_back(std::move(d));
  }
  return out;
}

nlohmann::json share_json(const share_data& data, const std::optional<baseline>& base) {
  std::vector<const share_row*> rows;
  for (const auto& r : data.rows) rows.push_back(&r);
  std::sort(rows.begin(), rows.end(), [](const share_row* a, const share_row* b) {
    auto ta = a->current.tokens.total(), tb = b->current.tokens.total();
    return ta != tb ? ta > tb : a->key < b->key;
  });
  aggregate total;
  std::vector<std::uint64_t> tokens;
  for (const auto* r : rows) {
    total += r->current;
    tokens.push_back(r->current.tokens.total());
  }
  auto shares = micro_shares(tokens);

  nlohmann::json out;
  out["window"] = data.window.name;
  out["by"] = std::string(to_string(data.by));
  out["from"] = format_iso8601(data.window.from);
  out["to"] = format_iso8601(data.window.to);
  out["total"] = money_fields({{"tokens", total.tokens.total()}}, total);
  out["rows"] = nlohmann::json::array();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = *rows[i];
    auto row = money_fields(
        {{"key", r.key}, {"tokens", tokens[i]}, {"share", static_cast<double>(shares[i]) / 1e6}},
        r.current);
    row["previous_tokens"] = r.previous_tokens;
    row["growth"] =
        r.previous_tokens == 0
            ? nlohmann::json(nullptr)
            : nlohmann::json(
                  static_cast<double>(tokens[i]) / static_cast<double>(r.previous_tokens) - 1.0);
    out["rows"].push_back(std::move(row));
  }
  if (base) {
    double baseline_cost = cost_at(total.tokens, base->prices);
    // The split: routing saved the baseline's price of the tokens with no cache against the
    // served models' price with no cache; caching saved what the served providers' caches
    // took off that. The two add up to the uncached baseline minus what was paid.
    token_buckets uncached = total.tokens;
    uncached.input += uncached.cache_read + uncached.cache_write;
    uncached.cache_read = uncached.cache_write = 0;
    const double baseline_uncached = cost_at(uncached, base->prices);
    out["savings"] = {{"baseline", base->name},
                      {"baseline_cost_usd", baseline_cost},
                      {"actual_cost_usd", total.cost_usd},
                      {"saved_usd", baseline_cost - total.cost_usd},
                      {"baseline_uncached_cost_usd", baseline_uncached},
                      {"by_routing_usd", baseline_uncached - total.uncached_cost_usd},
                      {"by_caching_usd", total.uncached_cost_usd - total.cost_usd}};
  } else {
    out["savings"] = nullptr;
  }
  return out;
}

nlohmann::json daily_json(const daily_data& data) {
  nlohmann::json out{{"days", data.days},
                     {"top", data.top},
                     {"by", std::string(to_string(data.by))},
                     {"series", nlohmann::json::array()}};
  for (const auto& d : data.series) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : d.rows) rows.push_back({{"key", r.key}, {"tokens", r.tokens}});
    out["series"].push_back(
        {{"day", d.day}, {"rows", std::move(rows)}, {"estimated_tokens", d.estimated_tokens}});
  }
  return out;
}

nlohmann::json generation_json(const usage_event& e) {
  return {{"id", e.request_id},
          {"client_request_id", e.client_request_id.empty() ? nlohmann::json(nullptr)
                                                            : nlohmann::json(e.client_request_id)},
          {"session", e.session.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.session)},
          {"app", e.app.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.app)},
          {"task", e.task.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.task)},
          {"language", e.language.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.language)},
          {"provider", e.provider},
          {"model", e.model},
          {"region", e.region},
          {"tokens",
           {{"input", e.tokens.input},
            {"cache_read", e.tokens.cache_read},
            {"cache_write", e.tokens.cache_write},
            {"output", e.tokens.output},
            {"reasoning", e.tokens.reasoning}}},
          {"cost_usd", e.cost_usd},
          {"energy_kwh", e.energy_kwh},
          {"electricity_usd", e.electricity_usd},
          {"latency_ms", e.latency_ms},
          {"ttft_ms", e.ttft_ms ? nlohmann::json(*e.ttft_ms) : nlohmann::json(nullptr)},
          {"outcome", e.outcome},
          {"status", e.status},
          {"fallback_index", e.fallback_index},
          {"estimated", e.estimated},
          {"created", format_iso8601(e.time)}};
}

std::string share_table(const nlohmann::json& share) {
  // Every column the share API has; money to the micro-dollar and energy to the milli-watt-hour,
  // the precision the ledger keeps, so small figures are never printed as 0.0000.
  using line = std::vector<std::string>;
  const line header{"key",      "share",  "tokens",   "estimated",       "requests", "errors",
                    "cost_usd", "kwh",    "electricity_usd", "growth"};
  auto cells = [](const nlohmann::json& r, const std::string& key, const std::string& share_text,
                  const std::string& growth) {
    return line{key,
                share_text,
                std::to_string(r.value("tokens", std::uint64_t{0})),
                fixed(r.value("estimated_share", 0.0) * 100, 2) + "%",
                std::to_string(r.value("requests", std::uint64_t{0})),
                std::to_string(r.value("errors", std::uint64_t{0})),
                fixed(r.value("cost_usd", 0.0), 6),
                fixed(r.value("energy_kwh", 0.0), 6),
                fixed(r.value("electricity_usd", 0.0), 6),
                growth};
  };
  std::vector<line> lines{header};
  for (const auto& r : share.value("rows", nlohmann::json::array())) {
    std::string growth = "new";
    if (r.contains("growth") && r["growth"].is_number()) {
      double g = r["growth"].get<double>() * 100;
      growth = (g >= 0 ? "+" : "") + fixed(g, 1) + "%";
    }
    lines.push_back(cells(r, json_text(r.value("key", nlohmann::json(""))),
                          fixed(r.value("share", 0.0) * 100, 2) + "%", growth));
  }
  const auto& total = share.value("total", nlohmann::json::object());
  bool any = lines.size() > 1;
  lines.push_back(cells(total, "total", any ? "100.00%" : "0.00%", ""));

  std::vector<std::size_t> width(header.size(), 0);
  for (const auto& l : lines)
    for (std::size_t i = 0; i < l.size(); ++i) width[i] = std::max(width[i], l[i].size());

  std::string out = "tokens by " + json_text(share.value("by", nlohmann::json(""))) + ", window " +
                    json_text(share.value("window", nlohmann::json(""))) + " (" +
                    json_text(share.value("from", nlohmann::json(""))) + " .. " +
                    json_text(share.value("to", nlohmann::json(""))) + ")\n";
  for (const auto& l : lines) {
    std::string text;
    for (std::size_t i = 0; i < l.size(); ++i) {
      // The key column reads left to right; figures line up on their last digit.
      std::string pad(width[i] - l[i].size(), ' ');
      text += i == 0 ? l[i] + pad : "  " + pad + l[i];
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  }
  const auto& savings = share.value("savings", nlohmann::json());
  if (savings.is_object())
    out += "savings against " + json_text(savings.value("baseline", nlohmann::json(""))) +
           ": baseline " + fixed(savings.value("baseline_cost_usd", 0.0), 6) + " USD, actual " +
           fixed(savings.value("actual_cost_usd", 0.0), 6) + " USD, saved " +
           fixed(savings.value("saved_usd", 0.0), 6) +
           " USD (without caches: " + fixed(savings.value("by_routing_usd", 0.0), 6) +
           " by routing, " + fixed(savings.value("by_caching_usd", 0.0), 6) + " by caching)\n";
  return out;
}

std::string format_iso8601(time_point t) {
  auto secs = floor<seconds>(t);
  auto day = floor<days>(secs);
  year_month_day ymd{day};
  hh_mm_ss hms{secs - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string format_day(time_point t) {
  return format_iso8601(t).substr(0, 10);
}

std::optional<time_point> parse_iso8601(std::string_view text) {
  auto y = digits(text, 0, 4), mo = digits(text, 5, 2), d = digits(text, 8, 2);
  if (!y || !mo || !d || text[4] != '-' || text[7] != '-') return std::nullopt;
  year_month_day ymd{year(*y), month(static_cast<unsigned>(*mo)), day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return std::nullopt;
  time_point out = sys_days(ymd);
  if (text.size() == 10) return out;
  std::string_view rest = text.substr(10);
  if (!rest.empty() && rest.back() == 'Z') rest.remove_suffix(1);
  if (rest.size() != 9 || (rest[0] != 'T' && rest[0] != ' ') || rest[3] != ':' || rest[6] != ':')
    return std::nullopt;
  auto h = digits(rest, 1, 2), mi = digits(rest, 4, 2), s = digits(rest, 7, 2);
  if (!h || !mi || !s || *h > 23 || *mi > 59 || *s > 59) return std::nullopt;
  return out + hours(*h) + minutes(*mi) + seconds(*s);
}

}  // namespace meridian::stats
