// The /dashboard page renderer: figures with their test ids, SVG, escaping, empty state and no
// external resources.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "stats/dashboard.hpp"

using namespace meridian::stats;
using nlohmann::json;

namespace {

bool has(const std::string& page, const std::string& needle) {
  return page.find(needle) != std::string::npos;
}

// The markup before the inline script, where a formatting slip would show as "nan" or "inf".
std::string markup(const std::string& page) {
  return page.substr(0, page.find("<script>"));
}

std::size_t count(const std::string& page, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = page.find(needle); at != std::string::npos; at = page.find(needle, at + 1)) ++n;
  return n;
}

json share(const std::string& by, json rows, json savings = nullptr) {
  return {{"window", "7d"},
          {"by", by},
          {"from", "2026-11-07T00:00:00Z"},
          {"to", "2026-11-14T00:00:00Z"},
          {"total",
           {{"tokens", 1234567},
            {"requests", 4321},
            {"cost_usd", 3.41},
            {"energy_kwh", 0.37},
            {"electricity_usd", 0.052}}},
          {"rows", std::move(rows)},
          {"savings", std::move(savings)}};
}

json row(const std::string& key, double tokens, double fraction, json growth) {
  return {{"key", key},
          {"tokens", tokens},
          {"share", fraction},
          {"requests", 100},
          {"cost_usd", 1.5},
          {"energy_kwh", 0.12},
          {"electricity_usd", 0.01},
          {"previous_tokens", 10},
          {"growth", std::move(growth)}};
}

dashboard_data sample() {
  dashboard_data d;
  d.share_by_region = share("region",
                            {row("cn", 753086, 0.61, 0.12), row("us", 382716, 0.31, -0.05),
                             row("local", 98765, 0.08, nullptr)},
                            {{"baseline", "openai/gpt-4o"},
                             {"baseline_cost_usd", 10.0},
                             {"actual_cost_usd", 3.41},
                             {"saved_usd", 6.59}});
  d.share_by_provider =
      share("provider", {row("deepseek", 753086, 0.61, 0.2), row("openai", 481481, 0.39, nullptr)});
  d.share_by_model = share("model", {row("deepseek/deepseek-chat", 753086, 0.61, 0.2),
                                     row("openai/gpt-4o-mini", 481481, 0.39, nullptr)});
  d.series_by_region = {
      {"days", 2},
      {"top", 20},
      {"by", "region"},
      {"series",
       {{{"day", "2026-11-01"},
         {"rows", {{{"key", "cn"}, {"tokens", 600}}, {{"key", "us"}, {"tokens", 400}}}}},
        {{"day", "2026-11-02"},
         {"rows", {{{"key", "cn"}, {"tokens", 100}}, {{"key", "other"}, {"tokens", 300}}}}}}}};
  d.generated_at = "2026-11-14T12:00:00Z";
  return d;
}

}  // namespace

TEST_CASE("dashboard: every share figure carries its test id and formatted value") {
  std::string page = render_dashboard(sample());
  CHECK(has(page, "data-testid=\"share-region-cn\">61.0 %<"));
  CHECK(has(page, "data-testid=\"share-region-us\">31.0 %<"));
  CHECK(has(page, "data-testid=\"share-region-local\">8.0 %<"));
  CHECK(has(page, "data-testid=\"share-provider-deepseek\">61.0 %<"));
  CHECK(has(page, "data-testid=\"share-provider-openai\">39.0 %<"));
  CHECK(has(page, "data-testid=\"share-model-deepseek/deepseek-chat\">61.0 %<"));
  CHECK(has(page, "data-testid=\"share-model-openai/gpt-4o-mini\">39.0 %<"));
  CHECK(has(page, "data-testid=\"tokens-region-cn\" title=\"753086 tokens\">753.1 k<"));
  CHECK(has(page, "data-testid=\"growth-region-cn\">+12.0 %<"));
  CHECK(has(page, "data-testid=\"growth-region-us\">-5.0 %<"));
  CHECK(has(page, "data-testid=\"growth-region-local\">new<"));
}

TEST_CASE("dashboard: headline tiles, costs and savings are human friendly") {
  std::string page = render_dashboard(sample());
  CHECK(has(page, "data-testid=\"total-tokens\" title=\"1234567 tokens\">1.2 M<"));
  CHECK(has(page, "data-testid=\"total-requests\" title=\"4321 requests\">4.3 k<"));
  CHECK(has(page, "data-testid=\"total-cost\" title=\"3.410000\">$3.41<"));
  CHECK(has(page, "data-testid=\"total-energy\" title=\"0.370000 kWh\">0.370 kWh<"));
  CHECK(has(page, "data-testid=\"total-electricity\" title=\"0.052000\">$0.0520<"));
  CHECK(has(page, "data-testid=\"cost-region-cn\">$1.50<"));
  CHECK(has(page, "data-testid=\"energy-region-cn\">0.120 kWh<"));
  CHECK(has(page, "data-testid=\"savings-saved\">saved $6.59 (65.9 %)<"));
  CHECK(has(page, "data-testid=\"savings-baseline\">$10.00<"));
  CHECK(has(page, "data-testid=\"savings-model\">openai/gpt-4o<"));
  CHECK(has(page, "data-testid=\"generated\">2026-11-14T12:00:00Z<"));
}

TEST_CASE("dashboard: charts are inline SVG with stacked daily shares") {
  std::string page = render_dashboard(sample());
  CHECK(has(markup(page), "<svg class=\"chart\""));
  CHECK(has(page, "data-testid=\"daily-region\""));
  CHECK(has(page, "<title>cn 2026-11-01: 60.0 % (600 tokens)</title>"));
  CHECK(has(page, "<title>other 2026-11-02: 75.0 % (300 tokens)</title>"));
  // Region colours are fixed so a region reads the same in every chart.
  CHECK(has(page, "fill=\"#d62728\"><title>cn"));
  CHECK(count(page, "<svg class=\"bar\"") >= 7);
}

TEST_CASE("dashboard: tokens by model follow the window, absolute, hourly ticks by time") {
  dashboard_data d = sample();
  d.series_by_model = {{"window", "24h"},
                       {"bucket", "hour"},
                       {"series",
                        {{{"day", "2026-11-14T10:00:00Z"},
                          {"rows", {{{"key", "openai/gpt-4o"}, {"tokens", 1000}}}}},
                         {{"day", "2026-11-14T11:00:00Z"},
                          {"rows", {{{"key", "openai/gpt-4o"}, {"tokens", 250}},
                                    {{"key", "deepseek/deepseek-chat"}, {"tokens", 250}}}}}}}};
  const std::string page = render_dashboard(d);
  CHECK(has(page, "data-testid=\"tokens-model\""));
  CHECK(has(page, ">10:00</text>"));
  // One scale for the window: the 500-token hour is half as tall as the 1,000-token one.
  CHECK(has(page, "<title>openai/gpt-4o 2026-11-14T10:00:00Z: 100.0 % (1.0 k tokens)</title>"));
  CHECK(has(page, "y=\"8.00\" width"));  // the peak bucket reaches the top
  CHECK(has(page, "y=\"112.00\" width"));  // the other reaches halfway (8 + 208 / 2)
  CHECK(has(page, ">1.0 k</text>"));  // the axis is in tokens
  dashboard_data none = sample();
  CHECK(has(render_dashboard(none), "data-testid=\"tokens-model-empty\""));
}

TEST_CASE("dashboard: the page references nothing outside itself") {
  for (const dashboard_data& d : {sample(), dashboard_data{}}) {
    std::string page = render_dashboard(d);
    CHECK_FALSE(has(page, "http://"));
    CHECK_FALSE(has(page, "https://"));
    CHECK_FALSE(has(page, " src="));
    CHECK_FALSE(has(page, "url("));
    CHECK_FALSE(has(page, "@import"));
    CHECK(count(page, "<link") == count(page, "<link rel=\"icon\" href=\"data:,\">"));
    CHECK(has(page, "<style>"));
    CHECK(count(page, "<script>") == 1);
  }
}

TEST_CASE("dashboard: hostile keys from config are escaped everywhere") {
  const std::string evil = "<script>alert(1)</script>";
  const std::string escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
  dashboard_data d = sample();
  d.share_by_region["rows"].push_back(row(evil, 5, 0.01, nullptr));
  d.share_by_region["savings"]["baseline"] = evil;
  d.share_by_provider["rows"].push_back(row(evil + "\"'&", 5, 0.01, nullptr));
  d.share_by_model["rows"].push_back(row(evil, 5, 0.01, nullptr));
  d.series_by_region["series"][0]["rows"].push_back({{"key", evil}, {"tokens", 5}});
  d.share_by_region["window"] = "\"><b>";
  d.generated_at = evil;
  std::string page = render_dashboard(d);
  CHECK_FALSE(has(page, "alert(1)</script>"));
  CHECK_FALSE(has(page, "<script>alert"));
  CHECK_FALSE(has(page, "\"><b>"));
  CHECK(count(page, "<script>") == 1);
  CHECK(has(page, "data-testid=\"share-region-" + escaped + "\">1.0 %<"));
  CHECK(has(page, "data-testid=\"share-provider-" + escaped + "&quot;&#39;&amp;\">1.0 %<"));
  CHECK(has(page, "data-testid=\"share-model-" + escaped + "\">1.0 %<"));
  CHECK(has(page, "data-testid=\"savings-model\">" + escaped + "<"));
  CHECK(has(page, "<title>" + escaped + " 2026-11-01"));
}

TEST_CASE("dashboard: no traffic renders a friendly empty state") {
  dashboard_data zero;
  zero.share_by_region = share("region", json::array());
  zero.share_by_region["total"] = {
      {"tokens", 0}, {"requests", 0}, {"cost_usd", 0}, {"energy_kwh", 0}, {"electricity_usd", 0}};
  zero.share_by_provider = share("provider", json::array());
  zero.share_by_model = share("model", json::array());
  zero.series_by_region = {{"days", 14}, {"series", json::array()}};
  for (const dashboard_data& d : {dashboard_data{}, zero}) {
    std::string page = render_dashboard(d);
    CHECK(has(page, "data-testid=\"empty-state\""));
    CHECK(has(page, "data-testid=\"daily-region-empty\""));
    CHECK(has(page, "data-testid=\"share-region-empty\""));
    CHECK(has(page, "data-testid=\"share-provider-empty\""));
    CHECK(has(page, "data-testid=\"share-model-empty\""));
    CHECK(has(page, "data-testid=\"costs-empty\""));
    CHECK(has(page, "data-testid=\"savings-none\""));
    CHECK(has(page, "data-testid=\"total-tokens\" title=\"0 tokens\">0<"));
    CHECK_FALSE(has(markup(page), "<svg class=\"chart\""));
    CHECK_FALSE(has(markup(page), "nan"));
    CHECK_FALSE(has(markup(page), "inf"));
  }
}

TEST_CASE("dashboard: a day without tokens leaves a gap rather than a broken bar") {
  dashboard_data d = sample();
  d.series_by_region["series"].push_back(
      {{"day", "2026-11-03"}, {"rows", {{{"key", "cn"}, {"tokens", 0}}}}});
  std::string page = render_dashboard(d);
  CHECK_FALSE(has(page, "2026-11-03: "));
  CHECK_FALSE(has(markup(page), "nan"));
  CHECK(has(page, "<title>cn 2026-11-02: 25.0 % (100 tokens)</title>"));
}

TEST_CASE("dashboard: every name has one colour on the page, and distinct names distinct ones") {
  // Hashed into ten slots, these three shared one yellow.
  dashboard_data d = sample();
  const std::vector<std::string> names = {"openai/gpt-4o",        "openai/gpt-4o-mini",
                                          "gem/gemini-2.5-flash", "deepseek/deepseek-chat",
                                          "qwen/qwen-plus",       "claude/claude-sonnet-4-5",
                                          "local/qwen2.5:7b",     "moonshot/kimi-k2",
                                          "zhipu/glm-4.6",        "minimax/abab",
                                          "qwen/qwen-turbo",      "openai/gpt-4.1"};
  json rows = json::array();
  for (const auto& n : names) rows.push_back(row(n, 1000, 1.0 / 12, nullptr));
  d.share_by_model = share("model", rows);
  const std::string page = markup(render_dashboard(d));
  auto colour_of = [&](const std::string& key) {
    const std::string tail = "\"></i>" + key + "</td>";
    auto at = page.find(tail);
    REQUIRE_MESSAGE(at != std::string::npos, key);
    return page.substr(at - 7, 7);
  };
  std::set<std::string> seen;
  for (const auto& n : names) {
    const std::string c = colour_of(n);
    CHECK_MESSAGE(c[0] == '#', n);
    CHECK_MESSAGE(seen.insert(c).second, n << " shares " << c);
  }
  // A name keeps its colour in another table of the same page; regions keep theirs.
  CHECK(colour_of("deepseek") != colour_of("openai"));
  CHECK(colour_of("cn") == "#d62728");
  CHECK_FALSE(seen.count("#d62728"));
  // The same data renders the same colours again (stable across reloads).
  CHECK(markup(render_dashboard(d)) == page);
}

TEST_CASE("dashboard: failures per provider, and spend per key for the operator only") {
  dashboard_data d = sample();
  json flaky = row("flaky", 100, 0.1, nullptr);
  flaky["requests"] = 8;
  flaky["errors"] = 3;
  flaky["latency_ms_mean"] = 812.4;
  flaky["ttft_ms_mean"] = nullptr;
  flaky["answered_after_fallback"] = 2;
  d.share_by_provider["rows"].push_back(flaky);
  std::string page = markup(render_dashboard(d));
  CHECK(has(page, "data-testid=\"errors-provider-flaky\">3<"));
  CHECK(has(page, "data-testid=\"error-rate-provider-flaky\">37.5 %<"));
  CHECK(has(page, "data-testid=\"error-rate-provider-deepseek\">0.0 %<"));
  CHECK(has(page, "data-testid=\"latency-provider-flaky\">812 ms<"));
  CHECK(has(page, "data-testid=\"latency-provider-deepseek\">-<"));  // no generation records
  CHECK(has(page, "data-testid=\"fallback-provider-flaky\">2<"));
  // Without the operator's view no key's name or spend is on the page.
  CHECK(has(page, "data-testid=\"spend-hidden\""));
  CHECK(has(page, "id=\"spend\" data-keys=\"0\""));
  d.share_by_key = share("key", {row("team-web", 500, 0.5, nullptr), row("", 500, 0.5, nullptr)});
  page = markup(render_dashboard(d));
  CHECK(has(page, "id=\"spend\" data-keys=\"1\""));
  CHECK(has(page, "data-testid=\"spend-key-team-web\">$1.50<"));
  CHECK(has(page, "data-testid=\"spend-key-(no key)\">$1.50<"));
}

TEST_CASE("dashboard: the tokens chart stacks the dimension the page asks for") {
  dashboard_data d = sample();
  d.chart_by = "author";
  const std::string page = markup(render_dashboard(d));
  CHECK(has(page, "<nav id=\"chart-by\" class=\"inline\" data-active=\"author\">"));
  CHECK(has(page, "href=\"?window=7d&amp;chart=provider\" data-chart=\"provider\""));
  CHECK(has(page, "data-chart=\"author\" data-testid=\"chart-author\" class=\"on\""));
  const bool drawn = has(page, "aria-label=\"tokens by author over the window\"") ||
                     has(page, "data-testid=\"tokens-model-empty\"");
  CHECK(drawn);
}
