// Server-side render of the /dashboard page. The inline script at the bottom mirrors each
// render_* function here one to one (same markup, same number formats, same colours), so the
// refreshed view in the browser looks exactly like the first view from the server.
#include "stats/dashboard.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::stats {
namespace {

using nlohmann::json;

const json& member(const json& j, const char* key) {
  static const json k_missing;
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end()) return *it;
  }
  return k_missing;
}

double num(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_number() ? v.get<double>() : 0.0;
}

std::string str(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : std::string{};
}

const json& list(const json& j, const char* key) {
  static const json k_empty = json::array();
  const json& v = member(j, key);
  return v.is_array() ? v : k_empty;
}

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Rounds half up before printing so that JavaScript's toFixed, which breaks exact ties the
// other way from printf, prints the same digits for the same double.
std::string fixed(double x, int decimals) {
  double f = std::pow(10.0, decimals);
  double r = std::floor(x * f + 0.5) / f;
  if (r == 0) r = 0;  // no "-0.0"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, r);
  return buf;
}

std::string fmt_count(double x) {
  double a = std::fabs(x);
  if (a < 1e3) return fixed(x, 0);
  if (a < 1e6) return fixed(x / 1e3, 1) + " k";
  if (a < 1e9) return fixed(x / 1e6, 1) + " M";
  if (a < 1e12) return fixed(x / 1e9, 1) + " B";
  return fixed(x / 1e12, 1) + " T";
}

std::string fmt_usd(double x) {
  std::string sign = x < 0 ? "-" : "";
  double a = std::fabs(x);
  if (a >= 1e6) return sign + "$" + fmt_count(a);
  if (a >= 1 || a == 0) return sign + "$" + fixed(a, 2);
  return sign + "$" + fixed(a, 4);  // fractions of a cent are what small deployments spend
}

std::string fmt_kwh(double x) {
  double a = std::fabs(x);
  if (a < 10) return fixed(x, 3) + " kWh";
  if (a < 1e6) return fixed(x, 1) + " kWh";
  return fmt_count(x) + " kWh";
}

std::string fmt_pct(double fraction) {
  return fixed(fraction * 100, 1) + " %";
}

std::string fmt_growth(const json& g) {
  if (!g.is_number()) return "new";  // null: nothing in the previous window to grow from
  std::string p = fixed(g.get<double>() * 100, 1);
  return (p[0] != '-' && p != "0.0" ? "+" : "") + p + " %";
}

constexpr std::pair<std::string_view, std::string_view> k_regions[] = {
    {"cn", "#d62728"},    {"us", "#1f77b4"},    {"eu", "#9467bd"},
    {"local", "#2ca02c"}, {"other", "#8c8c8c"},
};
// Twenty distinguishable colours (Tableau 20 without the region hues' near twins).
constexpr std::string_view k_palette[] = {
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#17becf", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d",
    "#499894", "#86bcb6", "#f1ce63", "#d37295", "#fabfd2", "#d4a6c8",
};

std::uint32_t fnv1a(std::string_view key) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : key) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

// The page's colours: every name shown gets one colour in every table and chart, and distinct
// names distinct colours (up to the palette's twenty). Names are placed in sorted order, each at
// its hash's slot or the next free one, so a name keeps its colour from reload to reload while
// the set of names does not change. Regions keep fixed colours ("cn is red" everywhere).
thread_local std::vector<std::pair<std::string, std::string>> t_colours;

void assign_colours(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  t_colours.clear();
  bool used[std::size(k_palette)] = {};
  std::size_t taken = 0;
  for (const auto& key : keys) {
    bool region = false;
    for (const auto& [name, c] : k_regions) region |= name == key;
    if (region) continue;
    std::size_t slot = fnv1a(key) % std::size(k_palette);
    if (taken < std::size(k_palette)) {
      while (used[slot]) slot = (slot + 1) % std::size(k_palette);
      used[slot] = true;
      ++taken;
    }
    t_colours.emplace_back(key, std::string(k_palette[slot]));
  }
}

std::string colour(std::string_view key) {
  for (const auto& [name, c] : k_regions)
    if (name == key) return std::string(c);
  for (const auto& [name, c] : t_colours)
    if (name == key) return c;
  return std::string(k_palette[fnv1a(key) % std::size(k_palette)]);
}

// Every name the page shows: the share tables' rows and the daily chart's.
std::vector<std::string> page_keys(const dashboard_data& d) {
  std::vector<std::string> keys;
  for (const json* share : {&d.share_by_region, &d.share_by_provider, &d.share_by_model,
                            &d.share_by_app, &d.share_by_task, &d.share_by_language})
    for (const json& r : list(*share, "rows")) keys.push_back(str(r, "key"));
  for (const json* series : {&d.series_by_region, &d.series_by_model})
    for (const json& day : list(*series, "series"))
      for (const json& r : list(day, "rows")) keys.push_back(str(r, "key"));
  return keys;
}

std::string bar(double fraction, const std::string& fill, int width) {
  double f = std::clamp(fraction, 0.0, 1.0);
  std::string w = std::to_string(width);
  return "<svg class=\"bar\" viewBox=\"0 0 " + w + " 12\" width=\"" + w +
         "\" height=\"12\" aria-hidden=\"true\"><rect width=\"" + w +
         "\" height=\"12\" fill=\"#eceff3\"/><rect width=\"" + fixed(f * width, 1) +
         "\" height=\"12\" fill=\"" + fill + "\"/></svg>";
}

std::string swatch(const std::string& fill) {
  return "<i class=\"sw\" style=\"background:" + fill + "\"></i>";
}

std::string render_range(const json& s) {
  std::string w = str(s, "window");
  std::string out = "window " + esc(w.empty() ? "7d" : w);
  std::string from = str(s, "from"), to = str(s, "to");
  if (!from.empty() || !to.empty()) out += ": " + esc(from) + " to " + esc(to);
  return out;
}

std::string render_empty(const json& s) {
  const json& t = member(s, "total");
  if (num(t, "tokens") > 0 || num(t, "requests") > 0 || !list(s, "rows").empty()) return "";
  return "<p class=\"empty\" data-testid=\"empty-state\">No traffic yet. The figures appear here "
         "after the first request through the gateway.</p>";
}

std::string tile(const char* id, const std::string& value, const char* label,
                 const std::string& exact) {
  return std::string("<div class=\"tile\"><div class=\"v\" data-testid=\"") + id + "\" title=\"" +
         esc(exact) + "\">" + esc(value) + "</div><div class=\"l\">" + label + "</div></div>";
}

std::string render_tiles(const json& s) {
  const json& t = member(s, "total");
  double tokens = num(t, "tokens"), requests = num(t, "requests");
  return tile("total-tokens", fmt_count(tokens), "tokens", fixed(tokens, 0) + " tokens") +
         tile("total-requests", fmt_count(requests), "requests", fixed(requests, 0) + " requests") +
         tile("total-cost", fmt_usd(num(t, "cost_usd")), "cost", fixed(num(t, "cost_usd"), 6)) +
         tile("total-energy", fmt_kwh(num(t, "energy_kwh")), "energy",
              fixed(num(t, "energy_kwh"), 6) + " kWh") +
         tile("total-electricity", fmt_usd(num(t, "electricity_usd")), "electricity",
              fixed(num(t, "electricity_usd"), 6)) +
         // How much of the figures above is Meridian's estimate rather than the upstream's count.
         tile("total-estimated", fmt_pct(num(t, "estimated_share")), "estimated",
              fixed(num(t, "estimated_tokens"), 0) + " tokens estimated");
}

std::string render_share(const json& s, const char* dim, std::size_t limit) {
  const json& rows = list(s, "rows");
  std::string d = dim;
  if (rows.empty())
    return "<p class=\"none\" data-testid=\"share-" + d + "-empty\">No traffic in this window.</p>";
  std::string out = "<table data-testid=\"share-" + d + "\"><thead><tr><th>" + d +
                    "</th><th></th><th class=\"n\">share</th><th class=\"n\">tokens</th>"
                    "<th class=\"n\">growth</th></tr></thead><tbody>";
  for (std::size_t i = 0; i < rows.size() && i < limit; ++i) {
    const json& r = rows[i];
    std::string key = str(r, "key"), k = esc(key), c = colour(key);
    double tokens = num(r, "tokens");
    out += "<tr><td class=\"k\">" + swatch(c) + k + "</td><td>" + bar(num(r, "share"), c, 140) +
           "</td><td class=\"n\" data-testid=\"share-" + d + "-" + k + "\">" +
           fmt_pct(num(r, "share")) + "</td><td class=\"n\" data-testid=\"tokens-" + d + "-" + k +
           "\" title=\"" + fixed(tokens, 0) + " tokens\">" + fmt_count(tokens) +
           "</td><td class=\"n\" data-testid=\"growth-" + d + "-" + k + "\">" +
           fmt_growth(member(r, "growth")) + "</td></tr>";
  }
  if (rows.size() > limit)
    out += "<tr><td class=\"more\" colspan=\"5\">and " + std::to_string(rows.size() - limit) +
           " more</td></tr>";
  return out + "</tbody></table>";
}

std::string render_costs(const json& s) {
  const json& rows = list(s, "rows");
  if (rows.empty())
    return "<p class=\"none\" data-testid=\"costs-empty\">No traffic in this window.</p>";
  double max_cost = 0, max_kwh = 0;
  for (const json& r : rows) {
    max_cost = std::max(max_cost, num(r, "cost_usd"));
    max_kwh = std::max(max_kwh, num(r, "energy_kwh"));
  }
  std::string out =
      "<table data-testid=\"costs-region\"><thead><tr><th>region</th><th colspan=\"2\">cost</th>"
      "<th colspan=\"2\">energy</th><th class=\"n\">electricity</th><th class=\"n\">requests</th>"
      "</tr></thead><tbody>";
  for (const json& r : rows) {
    std::string key = str(r, "key"), k = esc(key), c = colour(key);
    double cost = num(r, "cost_usd"), kwh = num(r, "energy_kwh");
    out += "<tr><td class=\"k\">" + swatch(c) + k + "</td><td>" +
           bar(max_cost > 0 ? cost / max_cost : 0, c, 80) +
           "</td><td class=\"n\" data-testid=\"cost-region-" + k + "\">" + fmt_usd(cost) +
           "</td><td>" + bar(max_kwh > 0 ? kwh / max_kwh : 0, c, 80) +
           "</td><td class=\"n\" data-testid=\"energy-region-" + k + "\">" + fmt_kwh(kwh) +
           "</td><td class=\"n\" data-testid=\"electricity-region-" + k + "\">" +
           fmt_usd(num(r, "electricity_usd")) +
           "</td><td class=\"n\" data-testid=\"requests-region-" + k + "\">" +
           fmt_count(num(r, "requests")) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

// Attempts, failed attempts and the failure rate per provider: the fallbacks and errors an
// operator looks for first.
std::string render_reliability(const json& s) {
  const json& rows = list(s, "rows");
  if (rows.empty())
    return "<p class=\"none\" data-testid=\"errors-empty\">No traffic in this window.</p>";
  std::string out =
      "<table data-testid=\"errors-provider\"><thead><tr><th>provider</th><th></th>"
      "<th class=\"n\">attempts</th><th class=\"n\">failed</th><th class=\"n\">failure rate</th>"
      "<th class=\"n\">after fallback</th><th class=\"n\">mean latency</th>"
      "<th class=\"n\">mean TTFT</th></tr></thead><tbody>";
  auto ms = [](const json& v) {
    return v.is_number() ? fixed(v.get<double>(), 0) + " ms" : std::string("-");
  };
  for (const json& r : rows) {
    std::string key = str(r, "key"), k = esc(key), c = colour(key);
    double attempts = num(r, "requests"), failed = num(r, "errors");
    double rate = attempts > 0 ? failed / attempts : 0;
    out += "<tr><td class=\"k\">" + swatch(c) + k + "</td><td>" + bar(rate, "#d62728", 80) +
           "</td><td class=\"n\">" + fmt_count(attempts) +
           "</td><td class=\"n\" data-testid=\"errors-provider-" + k + "\">" + fmt_count(failed) +
           "</td><td class=\"n\" data-testid=\"error-rate-provider-" + k + "\">" + fmt_pct(rate) +
           "</td><td class=\"n\" data-testid=\"fallback-provider-" + k + "\">" +
           fmt_count(num(r, "answered_after_fallback")) +
           "</td><td class=\"n\" data-testid=\"latency-provider-" + k + "\">" +
           ms(member(r, "latency_ms_mean")) + "</td><td class=\"n\">" +
           ms(member(r, "ttft_ms_mean")) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

// Spend per virtual key, for the operator only (dashboard_data::share_by_key is null otherwise).
std::string render_spend(const json& s) {
  if (!s.is_object())
    return "<p class=\"none\" data-testid=\"spend-hidden\">Spend per key is shown to the operator "
           "(the admin token, or the admin listener).</p>";
  const json& rows = list(s, "rows");
  if (rows.empty())
    return "<p class=\"none\" data-testid=\"spend-empty\">No traffic in this window.</p>";
  double max_cost = 0;
  for (const json& r : rows) max_cost = std::max(max_cost, num(r, "cost_usd"));
  std::string out =
      "<table data-testid=\"spend-key\"><thead><tr><th>key</th><th colspan=\"2\">spend</th>"
      "<th class=\"n\">tokens</th><th class=\"n\">requests</th></tr></thead><tbody>";
  for (const json& r : rows) {
    std::string key = str(r, "key"), k = esc(key.empty() ? "(no key)" : key);
    double cost = num(r, "cost_usd");
    out += "<tr><td class=\"k\">" + k + "</td><td>" +
           bar(max_cost > 0 ? cost / max_cost : 0, "#4e79a7", 80) +
           "</td><td class=\"n\" data-testid=\"spend-key-" + k + "\">" + fmt_usd(cost) +
           "</td><td class=\"n\">" + fmt_count(num(r, "tokens")) + "</td><td class=\"n\">" +
           fmt_count(num(r, "requests")) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

std::string render_savings(const json& s) {
  const json& sv = member(s, "savings");
  if (!sv.is_object())
    return "<p class=\"none\" data-testid=\"savings-none\">No baseline model is configured, so "
           "there is nothing to compare against.</p>";
  double baseline = num(sv, "baseline_cost_usd"), actual = num(sv, "actual_cost_usd");
  double saved = num(sv, "saved_usd");
  double top = std::max(baseline, actual);
  double rel = baseline > 0 ? saved / baseline : 0;
  std::string headline = saved >= 0 ? "saved " + fmt_usd(saved) + " (" + fmt_pct(rel) + ")"
                                    : "spent " + fmt_usd(-saved) + " more (" + fmt_pct(-rel) + ")";
  return "<p class=\"big\" data-testid=\"savings-saved\">" + headline +
         "</p><table><tbody><tr><td class=\"k\">baseline <span data-testid=\"savings-model\">" +
         esc(str(sv, "baseline")) + "</span></td><td>" +
         bar(top > 0 ? baseline / top : 0, "#8c8c8c", 200) +
         "</td><td class=\"n\" data-testid=\"savings-baseline\">" + fmt_usd(baseline) +
         "</td></tr><tr><td class=\"k\">actual</td><td>" +
         bar(top > 0 ? actual / top : 0, "#2ca02c", 200) +
         "</td><td class=\"n\" data-testid=\"savings-actual\">" + fmt_usd(actual) +
         "</td></tr></tbody></table>";
}

// Stacked 100 % bars, one per day: each day's rows as fractions of that day's tokens.
// A stacked bar per bucket of a series answer (daily or hourly): each key's share of the bucket
// (`absolute` false), or its tokens on one scale for the whole window (`absolute` true).
std::string render_stack(const json& d, bool absolute, const std::string& testid,
                         const std::string& label) {
  const json& series = list(d, "series");
  std::vector<double> totals;
  std::vector<std::string> keys;
  double all = 0, peak = 0;
  for (const json& day : series) {
    double t = 0;
    for (const json& r : list(day, "rows")) {
      if (num(r, "tokens") > 0) t += num(r, "tokens");
      std::string key = str(r, "key");
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    totals.push_back(t);
    all += t;
    peak = std::max(peak, t);
  }
  if (all <= 0)
    return "<p class=\"none\" data-testid=\"" + testid + "-empty\">No figures in this window yet.</p>";
  const double w = 640, h = 240, left = 48, right = 8, top = 8, bottom = 24;
  const double pw = w - left - right, ph = h - top - bottom;
  const double n = static_cast<double>(series.size());
  const double slot = pw / n, bw = std::min(slot * 0.8, 48.0);
  const std::size_t step = static_cast<std::size_t>(std::ceil(n / 7));
  std::string out = "<svg class=\"chart\" viewBox=\"0 0 640 240\" role=\"img\" aria-label=\"" +
                    esc(label) + "\" data-testid=\"" + testid + "\">";
  for (int p = 0; p <= 100; p += 25) {
    std::string y = fixed(top + ph * (1 - p / 100.0), 2);
    out += "<line class=\"gl\" x1=\"" + fixed(left, 2) + "\" x2=\"" + fixed(w - right, 2) +
           "\" y1=\"" + y + "\" y2=\"" + y + "\"/><text class=\"ax\" x=\"" + fixed(left - 4, 2) +
           "\" y=\"" + fixed(top + ph * (1 - p / 100.0) + 3, 2) + "\" text-anchor=\"end\">" +
           (absolute ? fmt_count(peak * p / 100.0) : std::to_string(p) + "%") + "</text>";
  }
  for (std::size_t i = 0; i < series.size(); ++i) {
    const json& day = series[i];
    std::string name = str(day, "day");
    std::string x = fixed(left + i * slot + (slot - bw) / 2, 2);
    double acc = 0, total = totals[i], scale = absolute ? peak : total;
    for (const json& r : list(day, "rows")) {
      double t = num(r, "tokens");
      if (t <= 0 || scale <= 0) continue;
      double y0 = top + ph * (1 - acc / scale), y1 = top + ph * (1 - (acc + t) / scale);
      std::string key = str(r, "key");
      out += "<rect x=\"" + x + "\" y=\"" + fixed(y1, 2) + "\" width=\"" + fixed(bw, 2) +
             "\" height=\"" + fixed(y0 - y1, 2) + "\" fill=\"" + colour(key) + "\"><title>" +
             esc(key) + " " + esc(name) + ": " + fmt_pct(t / total) + " (" + fmt_count(t) +
             " tokens)</title></rect>";
      acc += t;
    }
    // An hour's label is its time of day, a day's its month and day.
    const std::string tick = name.size() >= 16 ? name.substr(11, 5)
                             : name.size() >= 10 ? name.substr(5, 5)
                                                 : name;
    if (i % step == 0)
      out += "<text class=\"ax\" x=\"" + fixed(left + i * slot + slot / 2, 2) + "\" y=\"" +
             fixed(h - 8, 2) + "\" text-anchor=\"middle\">" + esc(tick) + "</text>";
  }
  out += "</svg><ul class=\"legend\">";
  for (const std::string& key : keys) out += "<li>" + swatch(colour(key)) + esc(key) + "</li>";
  return out + "</ul>";
}

// The tokens chart's dimension, as links that keep working without the script.
std::string render_chart_by(const std::string& active, const std::string& window) {
  std::string out;
  for (const char* b : {"model", "provider", "author", "region"}) {
    std::string s = b;
    out += "<a href=\"?window=" + esc(window) + "&amp;chart=" + s + "\" data-chart=\"" + s +
           "\" data-testid=\"chart-" + s + "\"" + (s == active ? " class=\"on\"" : "") + ">" + s +
           "</a>";
  }
  return out;
}

std::string render_windows(const std::string& active) {
  std::string out;
  for (const char* w : {"1h", "24h", "7d", "30d"}) {
    std::string s = w;
    out += "<a href=\"?window=" + s + "\" data-window=\"" + s + "\" data-testid=\"window-" + s +
           "\"" + (s == active ? " class=\"on\"" : "") + ">" + s + "</a>";
  }
  return out;
}

constexpr std::string_view k_style = R"css(
:root{color-scheme:light;--fg:#1d2330;--mute:#667085;--line:#e4e7ec;--bg:#f7f8fa}
*{box-sizing:border-box}
body{margin:0;padding:20px 24px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 20px;margin-bottom:16px}
h1{font-size:20px;margin:0}
.sub{color:var(--mute);margin:0}
nav a{display:inline-block;padding:2px 10px;margin-right:4px;border:1px solid var(--line);border-radius:12px;color:var(--fg);text-decoration:none;background:#fff}
nav a.on{background:var(--fg);color:#fff;border-color:var(--fg)}
nav.inline{display:inline;margin-left:6px}nav.inline a{font-weight:400;font-size:12px;padding:0 8px}
.status{color:#b54708;font-size:12px}
.empty{background:#fff;border:1px dashed #98a2b3;padding:16px;border-radius:8px;margin:0 0 16px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-bottom:16px}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.tile .v{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .l{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
figure.wide{grid-column:1/-1}
figcaption{font-weight:600;margin-bottom:8px}
table{border-collapse:collapse;width:100%}
th{font-weight:500;color:var(--mute);font-size:12px;text-align:left}
td,th{padding:3px 6px;border-bottom:1px solid var(--line);vertical-align:middle}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.k{overflow-wrap:anywhere;min-width:7em}
.more{color:var(--mute);font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.bar{display:block}
.chart{width:100%;max-width:900px;height:auto;display:block}
.gl{stroke:#e4e7ec}
.ax{font-size:10px;fill:#667085}
.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px}
.none{color:var(--mute)}
.big{font-size:20px;font-weight:600;margin:4px 0 10px}
footer{color:var(--mute);font-size:12px;margin-top:16px}
)css";

// Mirrors the render_* functions above; keep the two in step when either changes.
constexpr std::string_view k_script = R"js(
(function () {
  'use strict';
  var REGIONS = {cn: '#d62728', us: '#1f77b4', eu: '#9467bd', local: '#2ca02c', other: '#8c8c8c'};
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1',
                 '#ff9da7', '#9c755f', '#17becf', '#a0cbe8', '#ffbe7d', '#8cd17d', '#b6992d',
                 '#499894', '#86bcb6', '#f1ce63', '#d37295', '#fabfd2', '#d4a6c8'];
  var ESC = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};
  var EMPTY = [];

  function isObj(j) { return j !== null && typeof j === 'object' && !Array.isArray(j); }
  function member(j, k) { return isObj(j) && Object.prototype.hasOwnProperty.call(j, k) ? j[k] : null; }
  function num(j, k) { var v = member(j, k); return typeof v === 'number' && isFinite(v) ? v : 0; }
  function str(j, k) { var v = member(j, k); return typeof v === 'string' ? v : ''; }
  function list(j, k) { var v = member(j, k); return Array.isArray(v) ? v : EMPTY; }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }

  function fixed(x, d) {
    var f = Math.pow(10, d);
    var r = Math.floor(x * f + 0.5) / f;
    if (r === 0) r = 0;
    return r.toFixed(d);
  }
  function fmtCount(x) {
    var a = Math.abs(x);
    if (a < 1e3) return fixed(x, 0);
    if (a < 1e6) return fixed(x / 1e3, 1) + ' k';
    if (a < 1e9) return fixed(x / 1e6, 1) + ' M';
    if (a < 1e12) return fixed(x / 1e9, 1) + ' B';
    return fixed(x / 1e12, 1) + ' T';
  }
  function fmtUsd(x) {
    var sign = x < 0 ? '-' : '';
    var a = Math.abs(x);
    if (a >= 1e6) return sign + '$' + fmtCount(a);
    if (a >= 1 || a === 0) return sign + '$' + fixed(a, 2);
    return sign + '$' + fixed(a, 4);
  }
  function fmtKwh(x) {
    var a = Math.abs(x);
    if (a < 10) return fixed(x, 3) + ' kWh';
    if (a < 1e6) return fixed(x, 1) + ' kWh';
    return fmtCount(x) + ' kWh';
  }
  function fmtPct(f) { return fixed(f * 100, 1) + ' %'; }
  function fmtGrowth(g) {
    if (typeof g !== 'number' || !isFinite(g)) return 'new';
    var p = fixed(g * 100, 1);
    return (p[0] !== '-' && p !== '0.0' ? '+' : '') + p + ' %';
  }
  function fnv1a(key) {
    var h = 0x811c9dc5;
    var bytes = new TextEncoder().encode(key);
    for (var i = 0; i < bytes.length; ++i) { h = (h ^ bytes[i]) >>> 0; h = Math.imul(h, 0x01000193) >>> 0; }
    return h;
  }
  var COLOURS = {};
  function assignColours(keys) {
    // Sorted by UTF-8 bytes, as the server sorts them.
    var enc = new TextEncoder();
    var uniq = keys.filter(function (k, i) { return keys.indexOf(k) === i; });
    uniq.sort(function (a, b) {
      var x = enc.encode(a), y = enc.encode(b);
      for (var i = 0; i < Math.min(x.length, y.length); ++i) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    });
    COLOURS = {};
    var used = PALETTE.map(function () { return false; }), taken = 0;
    uniq.forEach(function (key) {
      if (Object.prototype.hasOwnProperty.call(REGIONS, key)) return;
      var slot = fnv1a(key) % PALETTE.length;
      if (taken < PALETTE.length) {
        while (used[slot]) slot = (slot + 1) % PALETTE.length;
        used[slot] = true;
        ++taken;
      }
      COLOURS[key] = PALETTE[slot];
    });
  }
  function colour(key) {
    if (Object.prototype.hasOwnProperty.call(REGIONS, key)) return REGIONS[key];
    if (Object.prototype.hasOwnProperty.call(COLOURS, key)) return COLOURS[key];
    return PALETTE[fnv1a(key) % PALETTE.length];
  }
  function pageKeys(shares, series) {
    var keys = [];
    shares.forEach(function (s) { list(s, 'rows').forEach(function (r) { keys.push(str(r, 'key')); }); });
    series.forEach(function (d) {
      list(d, 'series').forEach(function (day) {
        list(day, 'rows').forEach(function (r) { keys.push(str(r, 'key')); });
      });
    });
    return keys;
  }
  function bar(fraction, fill, width) {
    var f = Math.min(Math.max(fraction, 0), 1);
    var w = String(width);
    return '<svg class="bar" viewBox="0 0 ' + w + ' 12" width="' + w +
      '" height="12" aria-hidden="true"><rect width="' + w +
      '" height="12" fill="#eceff3"/><rect width="' + fixed(f * width, 1) +
      '" height="12" fill="' + fill + '"/></svg>';
  }
  function swatch(fill) { return '<i class="sw" style="background:' + fill + '"></i>'; }

  function renderRange(s) {
    var w = str(s, 'window');
    var out = 'window ' + esc(w === '' ? '7d' : w);
    var from = str(s, 'from'), to = str(s, 'to');
    if (from !== '' || to !== '') out += ': ' + esc(from) + ' to ' + esc(to);
    return out;
  }
  function renderEmpty(s) {
    var t = member(s, 'total');
    if (num(t, 'tokens') > 0 || num(t, 'requests') > 0 || list(s, 'rows').length > 0) return '';
    return '<p class="empty" data-testid="empty-state">No traffic yet. The figures appear here ' +
      'after the first request through the gateway.</p>';
  }
  function tile(id, value, label, exact) {
    return '<div class="tile"><div class="v" data-testid="' + id + '" title="' + esc(exact) + '">' +
      esc(value) + '</div><div class="l">' + label + '</div></div>';
  }
  function renderTiles(s) {
    var t = member(s, 'total');
    var tokens = num(t, 'tokens'), requests = num(t, 'requests');
    return tile('total-tokens', fmtCount(tokens), 'tokens', fixed(tokens, 0) + ' tokens') +
      tile('total-requests', fmtCount(requests), 'requests', fixed(requests, 0) + ' requests') +
      tile('total-cost', fmtUsd(num(t, 'cost_usd')), 'cost', fixed(num(t, 'cost_usd'), 6)) +
      tile('total-energy', fmtKwh(num(t, 'energy_kwh')), 'energy', fixed(num(t, 'energy_kwh'), 6) + ' kWh') +
      tile('total-electricity', fmtUsd(num(t, 'electricity_usd')), 'electricity',
           fixed(num(t, 'electricity_usd'), 6)) +
      tile('total-estimated', fmtPct(num(t, 'estimated_share')), 'estimated',
           fixed(num(t, 'estimated_tokens'), 0) + ' tokens estimated');
  }
  function renderShare(s, d, limit) {
    var rows = list(s, 'rows');
    if (rows.length === 0)
      return '<p class="none" data-testid="share-' + d + '-empty">No traffic in this window.</p>';
    var out = '<table data-testid="share-' + d + '"><thead><tr><th>' + d +
      '</th><th></th><th class="n">share</th><th class="n">tokens</th>' +
      '<th class="n">growth</th></tr></thead><tbody>';
    for (var i = 0; i < rows.length && i < limit; ++i) {
      var r = rows[i];
      var key = str(r, 'key'), k = esc(key), c = colour(key);
      var tokens = num(r, 'tokens');
      out += '<tr><td class="k">' + swatch(c) + k + '</td><td>' + bar(num(r, 'share'), c, 140) +
        '</td><td class="n" data-testid="share-' + d + '-' + k + '">' + fmtPct(num(r, 'share')) +
        '</td><td class="n" data-testid="tokens-' + d + '-' + k + '" title="' + fixed(tokens, 0) +
        ' tokens">' + fmtCount(tokens) + '</td><td class="n" data-testid="growth-' + d + '-' + k +
        '">' + fmtGrowth(member(r, 'growth')) + '</td></tr>';
    }
    if (rows.length > limit)
      out += '<tr><td class="more" colspan="5">and ' + (rows.length - limit) + ' more</td></tr>';
    return out + '</tbody></table>';
  }
  function renderCosts(s) {
    var rows = list(s, 'rows');
    if (rows.length === 0)
      return '<p class="none" data-testid="costs-empty">No traffic in this window.</p>';
    var maxCost = 0, maxKwh = 0;
    rows.forEach(function (r) {
      maxCost = Math.max(maxCost, num(r, 'cost_usd'));
      maxKwh = Math.max(maxKwh, num(r, 'energy_kwh'));
    });
    var out = '<table data-testid="costs-region"><thead><tr><th>region</th><th colspan="2">cost</th>' +
      '<th colspan="2">energy</th><th class="n">electricity</th><th class="n">requests</th>' +
      '</tr></thead><tbody>';
    rows.forEach(function (r) {
      var key = str(r, 'key'), k = esc(key), c = colour(key);
      var cost = num(r, 'cost_usd'), kwh = num(r, 'energy_kwh');
      out += '<tr><td class="k">' + swatch(c) + k + '</td><td>' +
        bar(maxCost > 0 ? cost / maxCost : 0, c, 80) +
        '</td><td class="n" data-testid="cost-region-' + k + '">' + fmtUsd(cost) +
        '</td><td>' + bar(maxKwh > 0 ? kwh / maxKwh : 0, c, 80) +
        '</td><td class="n" data-testid="energy-region-' + k + '">' + fmtKwh(kwh) +
        '</td><td class="n" data-testid="electricity-region-' + k + '">' +
        fmtUsd(num(r, 'electricity_usd')) + '</td><td class="n" data-testid="requests-region-' +
        k + '">' + fmtCount(num(r, 'requests')) + '</td></tr>';
    });
    return out + '</tbody></table>';
  }
  function renderReliability(s) {
    var rows = list(s, 'rows');
    if (rows.length === 0)
      return '<p class="none" data-testid="errors-empty">No traffic in this window.</p>';
    var out = '<table data-testid="errors-provider"><thead><tr><th>provider</th><th></th>' +
      '<th class="n">attempts</th><th class="n">failed</th><th class="n">failure rate</th>' +
      '<th class="n">after fallback</th><th class="n">mean latency</th>' +
      '<th class="n">mean TTFT</th></tr></thead><tbody>';
    function ms(v) { return typeof v === 'number' ? fixed(v, 0) + ' ms' : '-'; }
    rows.forEach(function (r) {
      var key = str(r, 'key'), k = esc(key), c = colour(key);
      var attempts = num(r, 'requests'), failed = num(r, 'errors');
      var rate = attempts > 0 ? failed / attempts : 0;
      out += '<tr><td class="k">' + swatch(c) + k + '</td><td>' + bar(rate, '#d62728', 80) +
        '</td><td class="n">' + fmtCount(attempts) +
        '</td><td class="n" data-testid="errors-provider-' + k + '">' + fmtCount(failed) +
        '</td><td class="n" data-testid="error-rate-provider-' + k + '">' + fmtPct(rate) +
        '</td><td class="n" data-testid="fallback-provider-' + k + '">' +
        fmtCount(num(r, 'answered_after_fallback')) +
        '</td><td class="n" data-testid="latency-provider-' + k + '">' +
        ms(member(r, 'latency_ms_mean')) + '</td><td class="n">' + ms(member(r, 'ttft_ms_mean')) +
        '</td></tr>';
    });
    return out + '</tbody></table>';
  }
  function renderSpend(s) {
    var rows = list(s, 'rows');
    if (rows.length === 0)
      return '<p class="none" data-testid="spend-empty">No traffic in this window.</p>';
    var maxCost = 0;
    rows.forEach(function (r) { maxCost = Math.max(maxCost, num(r, 'cost_usd')); });
    var out = '<table data-testid="spend-key"><thead><tr><th>key</th><th colspan="2">spend</th>' +
      '<th class="n">tokens</th><th class="n">requests</th></tr></thead><tbody>';
    rows.forEach(function (r) {
      var key = str(r, 'key'), k = esc(key === '' ? '(no key)' : key);
      var cost = num(r, 'cost_usd');
      out += '<tr><td class="k">' + k + '</td><td>' + bar(maxCost > 0 ? cost / maxCost : 0, '#4e79a7', 80) +
        '</td><td class="n" data-testid="spend-key-' + k + '">' + fmtUsd(cost) +
        '</td><td class="n">' + fmtCount(num(r, 'tokens')) + '</td><td class="n">' +
        fmtCount(num(r, 'requests')) + '</td></tr>';
    });
    return out + '</tbody></table>';
  }
  function renderSavings(s) {
    var sv = member(s, 'savings');
    if (!isObj(sv))
      return '<p class="none" data-testid="savings-none">No baseline model is configured, so ' +
        'there is nothing to compare against.</p>';
    var baseline = num(sv, 'baseline_cost_usd'), actual = num(sv, 'actual_cost_usd');
    var saved = num(sv, 'saved_usd');
    var top = Math.max(baseline, actual);
    var rel = baseline > 0 ? saved / baseline : 0;
    var headline = saved >= 0 ? 'saved ' + fmtUsd(saved) + ' (' + fmtPct(rel) + ')'
                              : 'spent ' + fmtUsd(-saved) + ' more (' + fmtPct(-rel) + ')';
    return '<p class="big" data-testid="savings-saved">' + headline +
      '</p><table><tbody><tr><td class="k">baseline <span data-testid="savings-model">' +
      esc(str(sv, 'baseline')) + '</span></td><td>' + bar(top > 0 ? baseline / top : 0, '#8c8c8c', 200) +
      '</td><td class="n" data-testid="savings-baseline">' + fmtUsd(baseline) +
      '</td></tr><tr><td class="k">actual</td><td>' + bar(top > 0 ? actual / top : 0, '#2ca02c', 200) +
      '</td><td class="n" data-testid="savings-actual">' + fmtUsd(actual) +
      '</td></tr></tbody></table>';
  }
  function renderStack(d, absolute, testid, label) {
    var series = list(d, 'series');
    var totals = [], keys = [], all = 0, peak = 0;
    series.forEach(function (day) {
      var t = 0;
      list(day, 'rows').forEach(function (r) {
        if (num(r, 'tokens') > 0) t += num(r, 'tokens');
        var key = str(r, 'key');
        if (keys.indexOf(key) < 0) keys.push(key);
      });
      totals.push(t);
      all += t;
      peak = Math.max(peak, t);
    });
    if (all <= 0) return '<p class="none" data-testid="' + testid + '-empty">No figures in this window yet.</p>';
    var w = 640, h = 240, left = 48, right = 8, top = 8, bottom = 24;
    var pw = w - left - right, ph = h - top - bottom;
    var n = series.length;
    var slot = pw / n, bw = Math.min(slot * 0.8, 48);
    var step = Math.ceil(n / 7);
    var out = '<svg class="chart" viewBox="0 0 640 240" role="img" aria-label="' + esc(label) +
      '" data-testid="' + testid + '">';
    for (var p = 0; p <= 100; p += 25) {
      var y = fixed(top + ph * (1 - p / 100), 2);
      out += '<line class="gl" x1="' + fixed(left, 2) + '" x2="' + fixed(w - right, 2) +
        '" y1="' + y + '" y2="' + y + '"/><text class="ax" x="' + fixed(left - 4, 2) +
        '" y="' + fixed(top + ph * (1 - p / 100) + 3, 2) + '" text-anchor="end">' +
        (absolute ? fmtCount(peak * p / 100) : p + '%') + '</text>';
    }
    series.forEach(function (day, i) {
      var name = str(day, 'day');
      var x = fixed(left + i * slot + (slot - bw) / 2, 2);
      var acc = 0, total = totals[i], scale = absolute ? peak : total;
      list(day, 'rows').forEach(function (r) {
        var t = num(r, 'tokens');
        if (t <= 0 || scale <= 0) return;
        var y0 = top + ph * (1 - acc / scale), y1 = top + ph * (1 - (acc + t) / scale);
        var key = str(r, 'key');
        out += '<rect x="' + x + '" y="' + fixed(y1, 2) + '" width="' + fixed(bw, 2) +
          '" height="' + fixed(y0 - y1, 2) + '" fill="' + colour(key) + '"><title>' +
          esc(key) + ' ' + esc(name) + ': ' + fmtPct(t / total) + ' (' + fmtCount(t) +
          ' tokens)</title></rect>';
        acc += t;
      });
      var tick = name.length >= 16 ? name.substr(11, 5) : name.length >= 10 ? name.substr(5, 5) : name;
      if (i % step === 0)
        out += '<text class="ax" x="' + fixed(left + i * slot + slot / 2, 2) + '" y="' +
          fixed(h - 8, 2) + '" text-anchor="middle">' + esc(tick) + '</text>';
    });
    out += '</svg><ul class="legend">';
    keys.forEach(function (key) { out += '<li>' + swatch(colour(key)) + esc(key) + '</li>'; });
    return out + '</ul>';
  }

  function byId(id) { return document.getElementById(id); }
  function setHtml(id, html) { var e = byId(id); if (e) e.innerHTML = html; }
  function setStatus(text) { var e = byId('status'); if (e) e.textContent = text; }

  var WINDOWS = ['1h', '24h', '7d', '30d'];
  var nav = byId('windows');
  var current = nav ? nav.getAttribute('data-active') : '7d';
  var asked = new URLSearchParams(location.search).get('window');
  if (WINDOWS.indexOf(asked) >= 0) current = asked;
  // A page opened from a file has no API behind it; fetching would only log errors.
  var live = location.protocol === 'http:' || location.protocol === 'https:';
  var seq = 0;
  var CHARTS = ['model', 'provider', 'author', 'region'];
  var chartNav = byId('chart-by');
  var chartBy = chartNav ? chartNav.getAttribute('data-active') : 'model';
  var askedChart = new URLSearchParams(location.search).get('chart');
  if (CHARTS.indexOf(askedChart) >= 0) chartBy = askedChart;
  function markChart() {
    document.querySelectorAll('#chart-by a').forEach(function (a) {
      a.className = a.getAttribute('data-chart') === chartBy ? 'on' : '';
      a.setAttribute('href', '?window=' + current + '&chart=' + a.getAttribute('data-chart'));
    });
  }

  function markWindow() {
    document.querySelectorAll('#windows a').forEach(function (a) {
      a.className = a.getAttribute('data-window') === current ? 'on' : '';
    });
  }
  function getJson(url) {
    return fetch(url, {cache: 'no-store', headers: {Accept: 'application/json'}}).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    });
  }
  function render(region, provider, model, byRegion, byModel, app, task, language) {
    assignColours(pageKeys([region, provider, model, app, task, language], [byRegion, byModel]));
    setHtml('range', renderRange(region));
    setHtml('empty', renderEmpty(region));
    setHtml('tiles', renderTiles(region));
    setHtml('series-model', renderStack(byModel, true, 'tokens-model', 'tokens by ' + chartBy + ' over the window'));
    setHtml('daily', renderStack(byRegion, false, 'daily-region', 'token share by region over the window'));
    setHtml('region', renderShare(region, 'region', 50));
    setHtml('provider', renderShare(provider, 'provider', 20));
    setHtml('model', renderShare(model, 'model', 12));
    setHtml('app', renderShare(app, 'app', 12));
    setHtml('task', renderShare(task, 'task', 12));
    setHtml('language', renderShare(language, 'language', 12));
    setHtml('costs', renderCosts(region));
    setHtml('errors', renderReliability(provider));
    setHtml('savings', renderSavings(region));
    setHtml('generated', esc(new Date().toISOString().slice(0, 19) + 'Z'));
  }
  function refresh() {
    if (!live) { setStatus('offline: no stats API behind this page, showing the figures it was saved with'); return; }
    var mine = ++seq;
    var w = encodeURIComponent(current);
    var share = '/v1/stats/share?window=' + w + '&by=';
    var series = '/v1/stats/series?top=8&window=' + w + '&by=';
    Promise.all([getJson(share + 'region'), getJson(share + 'provider'), getJson(share + 'model'),
                 getJson(series + 'region'), getJson(series + chartBy), getJson(share + 'app'),
                 getJson(share + 'task'), getJson(share + 'language')]).then(function (res) {
      if (mine !== seq) return;
      try {
        render(res[0], res[1], res[2], res[3], res[4], res[5], res[6], res[7]);
        var spend = byId('spend');
        if (spend && spend.getAttribute('data-keys') === '1')
          getJson(share + 'key').then(function (k) { if (mine === seq) setHtml('spend', renderSpend(k)); },
                                      function () {});
        setStatus('');
      } catch (e) {
        setStatus('could not draw the latest figures: ' + e.message);
      }
    }, function () {
      if (mine === seq) setStatus('offline: the stats API did not answer, showing the last figures');
    });
  }

  if (nav) nav.addEventListener('click', function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[data-window]') : null;
    if (!a) return;
    ev.preventDefault();
    current = a.getAttribute('data-window');
    markWindow();
    markChart();
    refresh();
  });
  if (chartNav) chartNav.addEventListener('click', function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[data-chart]') : null;
    if (!a) return;
    ev.preventDefault();
    chartBy = a.getAttribute('data-chart');
    markChart();
    refresh();
  });
  markWindow();
  markChart();
  refresh();
  if (live) setInterval(refresh, 10000);
})();
)js";

}  // namespace

std::string render_dashboard(const dashboard_data& d) {
  assign_colours(page_keys(d));
  const json& region = d.share_by_region;
  std::string window = str(region, "window");
  if (window.empty()) window = "7d";
  std::string out;
  out.reserve(32 * 1024);
  out +=
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
      "<title>Meridian: token share</title><link rel=\"icon\" href=\"data:,\"><style>";
  out += k_style;
  out += "</style></head><body><header><h1>Meridian</h1><p class=\"sub\" id=\"range\">";
  out += render_range(region);
  out += "</p><nav id=\"windows\" data-active=\"" + esc(window) + "\">";
  out += render_windows(window);
  out +=
      "</nav><span id=\"status\" class=\"status\" data-testid=\"status\"></span></header>"
      "<div id=\"empty\">";
  out += render_empty(region);
  out += "</div><section id=\"tiles\" class=\"tiles\">";
  out += render_tiles(region);
  out +=
      "</section><div class=\"figs\"><figure class=\"wide\"><figcaption>Tokens over the window "
      "by <nav id=\"chart-by\" class=\"inline\" data-active=\"" +
      esc(d.chart_by) + "\">" + render_chart_by(d.chart_by, window) +
      "</nav></figcaption><div id=\"series-model\">";
  out += render_stack(d.series_by_model, true, "tokens-model",
                      "tokens by " + d.chart_by + " over the window");
  out +=
      "</div></figure><figure class=\"wide\"><figcaption>Token share by region over the "
      "window</figcaption><div id=\"daily\">";
  out += render_stack(d.series_by_region, false, "daily-region",
                      "token share by region over the window");
  out += "</div></figure><figure><figcaption>Share by region</figcaption><div id=\"region\">";
  out += render_share(region, "region", 50);
  out += "</div></figure><figure><figcaption>Share by provider</figcaption><div id=\"provider\">";
  out += render_share(d.share_by_provider, "provider", 20);
  out += "</div></figure><figure><figcaption>Share by model</figcaption><div id=\"model\">";
  out += render_share(d.share_by_model, "model", 12);
  out +=
      "</div></figure><figure><figcaption>Apps (X-Title or HTTP-Referer)</figcaption><div "
      "id=\"app\">";
  out += render_share(d.share_by_app, "app", 12);
  out +=
      "</div></figure><figure><figcaption>Tasks (a rule-based guess, "
      "docs/routing.md)</figcaption><div id=\"task\">";
  out += render_share(d.share_by_task, "task", 12);
  out += "</div></figure><figure><figcaption>Prompt language</figcaption><div id=\"language\">";
  out += render_share(d.share_by_language, "language", 12);
  out +=
      "</div></figure><figure><figcaption>Cost and energy by region</figcaption><div "
      "id=\"costs\">";
  out += render_costs(region);
  out +=
      "</div></figure><figure class=\"wide\"><figcaption>Reliability by provider</figcaption><div "
      "id=\"errors\">";
  out += render_reliability(d.share_by_provider);
  out += std::string(
             "</div></figure><figure><figcaption>Spend by key</figcaption><div id=\"spend\" "
             "data-keys=\"") +
         (d.share_by_key.is_object() ? "1" : "0") + "\">";
  out += render_spend(d.share_by_key);
  out +=
      "</div></figure><figure><figcaption>Savings against the baseline</figcaption><div "
      "id=\"savings\">";
  out += render_savings(region);
  out += "</div></figure></div><footer>updated <span id=\"generated\" data-testid=\"generated\">";
  out += esc(d.generated_at);
  out += "</span>; refreshes every 10 s from /v1/stats</footer><script>";
  out += k_script;
  out += "</script></body></html>\n";
  return out;
}

}  // namespace meridian::stats
