// The report shapes: query parsing, shares that add to one, growth, savings, top-N, the
// generation record and the terminal table.
#include <doctest/doctest.h>

#include <numeric>

#include "stats/report.hpp"
#include "stats/trace.hpp"

using namespace meridian;
using namespace std::chrono;

namespace {

const stats::time_point k_now = sys_days(year(2026) / 11 / 10) + hours(12) + minutes(34);

stats::share_row make_row(std::string key, std::uint64_t input, std::uint64_t output,
                          std::uint64_t previous, double cost) {
  stats::share_row r;
  r.key = std::move(key);
  r.current.tokens.input = input;
  r.current.tokens.output = output;
  r.current.requests = 10;
  r.current.cost_usd = cost;
  r.current.uncached_cost_usd = cost;  // no cache: caching saved nothing
  r.current.energy_kwh = static_cast<double>(input + output) / 1e6;
  r.current.electricity_usd = r.current.energy_kwh * 0.1;
  r.previous_tokens = previous;
  return r;
}

stats::share_query share_ok(const stats::result<stats::share_query>& r) {
  REQUIRE(std::holds_alternative<stats::share_query>(r));
  return std::get<stats::share_query>(r);
}

std::optional<std::string_view> none_of() {
  return std::nullopt;
}

std::string error_param(const stats::result<stats::share_query>& r) {
  REQUIRE(std::holds_alternative<stats::query_error>(r));
  return std::get<stats::query_error>(r).param;
}

}  // namespace

TEST_CASE("report: named windows end with the current hour") {
  auto q = share_ok(
      stats::parse_share_query(std::nullopt, std::nullopt, std::nullopt, std::nullopt, k_now));
  CHECK(q.window.name == "7d");
  CHECK(q.by == stats::dimension::region);
  CHECK(stats::format_iso8601(q.window.to) == "2026-11-10T13:00:00Z");
  CHECK(stats::format_iso8601(q.window.from) == "2026-11-03T13:00:00Z");
  auto h = share_ok(stats::parse_share_query("1h", "author", std::nullopt, std::nullopt, k_now));
  CHECK(h.window.to - h.window.from == hours(1));
  CHECK(h.by == stats::dimension::author);
  auto custom = share_ok(
      stats::parse_share_query(std::nullopt, "key", "2026-11-01", "2026-11-02T10:30:00Z", k_now));
  CHECK(custom.window.name == "custom");
  CHECK(stats::format_iso8601(custom.window.to) == "2026-11-02T11:00:00Z");
  // Any duration in the config's syntax, in whole hours: meridian stats --window 1d.
  auto day = share_ok(stats::parse_share_query("1d", none_of(), none_of(), none_of(), k_now));
  CHECK(day.window.name == "1d");
  CHECK(day.window.to - day.window.from == hours(24));
  CHECK(stats::format_iso8601(day.window.to) == "2026-11-10T13:00:00Z");
  auto two = share_ok(stats::parse_share_query("48h", none_of(), none_of(), none_of(), k_now));
  CHECK(two.window.to - two.window.from == hours(48));
  auto minutes = share_ok(stats::parse_share_query("120m", none_of(), none_of(), none_of(), k_now));
  CHECK(minutes.window.to - minutes.window.from == hours(2));
}

TEST_CASE("report: invalid parameters name themselves") {
  auto none = std::nullopt;
  CHECK(error_param(stats::parse_share_query("2w", none, none, none, k_now)) == "window");
  CHECK(error_param(stats::parse_share_query("90m", none, none, none, k_now)) == "window");
  CHECK(error_param(stats::parse_share_query("0h", none, none, none, k_now)) == "window");
  CHECK(error_param(stats::parse_share_query("500d", none, none, none, k_now)) == "window");
  CHECK(error_param(stats::parse_share_query(none, "country", none, none, k_now)) == "by");
  CHECK(error_param(stats::parse_share_query(none, none, "yesterday", "2026-11-02", k_now)) ==
        "from");
  CHECK(error_param(stats::parse_share_query(none, none, "2026-11-01", none, k_now)) == "to");
  CHECK(error_param(stats::parse_share_query(none, none, "2026-11-02", "2026-11-01", k_now)) ==
        "to");
  CHECK(error_param(stats::parse_share_query("7d", none, "2026-11-01", "2026-11-02", k_now)) ==
        "window");
  auto daily = stats::parse_daily_query("0", none, none);
  REQUIRE(std::holds_alternative<stats::query_error>(daily));
  CHECK(std::get<stats::query_error>(daily).param == "days");
  auto top = stats::parse_daily_query(none, "many", none);
  CHECK(std::get<stats::query_error>(top).param == "top");
  auto good = stats::parse_daily_query("7", "3", "provider");
  REQUIRE(std::holds_alternative<stats::daily_query>(good));
  CHECK(std::get<stats::daily_query>(good).days == 7);
  CHECK(std::get<stats::daily_query>(good).by == stats::dimension::provider);
}

TEST_CASE("report: ISO 8601 round trip and rejects") {
  auto t = stats::parse_iso8601("2026-02-28T23:59:59Z");
  REQUIRE(t);
  CHECK(stats::format_iso8601(*t) == "2026-02-28T23:59:59Z");
  CHECK(stats::format_day(*t) == "2026-02-28");
  CHECK_FALSE(stats::parse_iso8601("2026-02-30"));
  CHECK_FALSE(stats::parse_iso8601("2026-11-01T25:00:00Z"));
  CHECK_FALSE(stats::parse_iso8601("2026-11-01T10:00:00+02:00"));
  CHECK_FALSE(stats::parse_iso8601("20261101"));
}

TEST_CASE("report: micro shares add to exactly one million") {
  auto thirds = stats::micro_shares({1, 1, 1});
  CHECK(thirds == std::vector<std::uint64_t>{333334, 333333, 333333});
  auto skewed = stats::micro_shares({999'999'999, 1, 1, 7});
  CHECK(std::accumulate(skewed.begin(), skewed.end(), std::uint64_t{0}) == 1'000'000);
  auto huge = stats::micro_shares({UINT64_MAX / 2, UINT64_MAX / 4});
  CHECK(huge == std::vector<std::uint64_t>{666667, 333333});
  CHECK(stats::micro_shares({0, 0}) == std::vector<std::uint64_t>{0, 0});
}

TEST_CASE("report: share JSON sorts rows, shares add to one, savings against the baseline") {
  stats::share_data d;
  d.window = {"7d", sys_days(year(2026) / 11 / 3), sys_days(year(2026) / 11 / 10)};
  d.by = stats::dimension::region;
  d.rows = {make_row("local", 80'000, 0, 0, 0), make_row("cn", 400'000, 210'000, 500'000, 0.3),
            make_row("us", 100'000, 210'000, 310'000, 2.0)};
  stats::baseline base{"openai/gpt-4o", {2.5, 10, 1.25, 0}};
  auto j = stats::share_json(d, base);
  CHECK(j["window"] == "7d");
  CHECK(j["from"] == "2026-11-03T00:00:00Z");
  CHECK(j["to"] == "2026-11-10T00:00:00Z");
  CHECK(j["total"]["tokens"] == 1'000'000);
  CHECK(j["total"]["requests"] == 30);
  CHECK(j["total"]["cost_usd"].get<double>() == doctest::Approx(2.3));
  REQUIRE(j["rows"].size() == 3);
  CHECK(j["rows"][0]["key"] == "cn");
  CHECK(j["rows"][1]["key"] == "us");
  CHECK(j["rows"][2]["key"] == "local");
  CHECK(j["rows"][0]["share"].get<double>() == 0.61);
  double sum = 0;
  for (const auto& r : j["rows"]) sum += r["share"].get<double>();
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(j["rows"][0]["growth"].get<double>() == doctest::Approx(0.22));
  CHECK(j["rows"][1]["growth"].get<double>() == doctest::Approx(0.0));
  CHECK(j["rows"][2]["growth"].is_null());
  CHECK(j["rows"][2]["previous_tokens"] == 0);
  // 580k input at 2.5 and 420k output at 10 per million.
  CHECK(j["savings"]["baseline_cost_usd"].get<double>() == doctest::Approx(1.45 + 4.2));
  CHECK(j["savings"]["actual_cost_usd"].get<double>() == doctest::Approx(2.3));
  CHECK(j["savings"]["saved_usd"].get<double>() == doctest::Approx(5.65 - 2.3));
  CHECK(stats::share_json(d)["savings"].is_null());

  stats::share_data empty;
  empty.window = d.window;
  auto e = stats::share_json(empty);
  CHECK(e["rows"].empty());
  CHECK(e["total"]["tokens"] == 0);
}

TEST_CASE("report: top-N folds the rest into other and omits a zero other") {
  std::vector<std::pair<std::string, std::map<std::string, std::uint64_t>>> per_day = {
      {"2026-11-01", {{"a", 10}, {"b", 5}, {"c", 1}}},
      {"2026-11-02", {}},
      {"2026-11-03", {{"b", 50}, {"a", 1}}}};
  auto s = stats::top_n_series(per_day, 2);
  REQUIRE(s.size() == 3);
  REQUIRE(s[0].rows.size() == 3);
  CHECK(s[0].rows[0].key == "a");
  CHECK(s[0].rows[2].key == "other");
  CHECK(s[0].rows[2].tokens == 1);
  CHECK(s[1].rows.empty());
  REQUIRE(s[2].rows.size() == 2);
  CHECK(s[2].rows[0].key == "b");
  auto one = stats::top_n_series(per_day, 1);
  CHECK(one[0].rows.back().tokens == 11);  // a and c behind b overall
}

TEST_CASE("report: generation JSON carries every bucket") {
  stats::usage_event e;
  e.request_id = "req-9";
  e.provider = "deepseek";
  e.model = "deepseek-chat";
  e.region = "cn";
  e.tokens = {1, 2, 3, 4, 5};
  e.cost_usd = 0.01;
  e.latency_ms = 12.5;
  e.status = 200;
  e.time = sys_days(year(2026) / 11 / 10) + hours(1);
  auto j = stats::generation_json(e);
  CHECK(j["id"] == "req-9");
  CHECK(j["tokens"] ==
        nlohmann::json::parse(
            R"({"input":1,"cache_read":2,"cache_write":3,"output":4,"reasoning":5})"));
  CHECK(j["ttft_ms"].is_null());
  CHECK(j["created"] == "2026-11-10T01:00:00Z");
  CHECK(j["estimated"] == false);
  e.ttft_ms = 80;
  CHECK(stats::generation_json(e)["ttft_ms"] == 80.0);
}

TEST_CASE("report: the share table lines up its columns") {
  stats::share_data d;
  d.window = {"24h", sys_days(year(2026) / 11 / 9), sys_days(year(2026) / 11 / 10)};
  d.rows = {make_row("cn", 6'100, 0, 5'000, 0.5), make_row("us", 3'900, 0, 0, 1.25)};
  auto text = stats::share_table(stats::share_json(d, stats::baseline{"openai/gpt-4o", {2, 8}}));
  CHECK(text ==
        "tokens by region, window 24h (2026-11-09T00:00:00Z .. 2026-11-10T00:00:00Z)\n"
        "key      share  tokens  estimated  requests  errors  cost_usd       kwh  electricity_usd  "
        "growth\n"
        "cn      61.00%    6100      0.00%        10       0  0.500000  0.006100         0.000610  "
        "+22.0%\n"
        "us      39.00%    3900      0.00%        10       0  1.250000  0.003900         0.000390  "
        "   new\n"
        "total  100.00%   10000      0.00%        20       0  1.750000  0.010000         0.001000\n"
        "savings against openai/gpt-4o: baseline 0.020000 USD, actual 1.750000 USD, saved "
        "-1.730000 USD (without caches: -1.730000 by routing, 0.000000 by caching)\n");
}

TEST_CASE("report: savings split what routing saved from what caching saved") {
  stats::share_data d;
  d.window = {"24h", sys_days(year(2026) / 11 / 9), sys_days(year(2026) / 11 / 10)};
  // 1M input tokens, 800k of them read from the serving provider's cache at a tenth of its
  // $1 input price: paid 0.2 + 0.08 = 0.28, would have paid 1.0 without the cache.
  auto row = make_row("cn", 200'000, 0, 0, 0.28);
  row.current.tokens.cache_read = 800'000;
  row.current.uncached_cost_usd = 1.0;
  d.rows = {row};
  // The baseline at $2.5 input, $1.25 cache read.
  auto j = stats::share_json(d, stats::baseline{"openai/gpt-4o", {2.5, 10, 1.25, 0}});
  const auto& s = j["savings"];
  CHECK(s["baseline_cost_usd"].get<double>() == doctest::Approx(0.5 + 1.0));
  CHECK(s["baseline_uncached_cost_usd"].get<double>() == doctest::Approx(2.5));
  CHECK(s["by_routing_usd"].get<double>() == doctest::Approx(1.5));
  CHECK(s["by_caching_usd"].get<double>() == doctest::Approx(0.72));
  CHECK(s["by_routing_usd"].get<double>() + s["by_caching_usd"].get<double>() ==
        doctest::Approx(s["baseline_uncached_cost_usd"].get<double>() - 0.28));
}

TEST_CASE("trace: traceparent parses and formats as W3C says") {
  auto c = stats::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  REQUIRE(c);
  CHECK(c->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(c->span_id == "00f067aa0ba902b7");
  CHECK(c->sampled);
  CHECK(stats::format_traceparent(*c) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK_FALSE(stats::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled);
  for (const char* bad :
       {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"})
    CHECK_MESSAGE(!stats::parse_traceparent(bad), bad);
  // A later version may append fields.
  CHECK(stats::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
  CHECK(stats::new_trace_id().size() == 32);
  CHECK(stats::new_span_id().size() == 16);
  CHECK(stats::new_span_id() != stats::new_span_id());
}

TEST_CASE("trace: OTLP JSON carries ids, kinds, times as strings and typed attributes") {
  stats::span s;
  s.trace_id = std::string(32, 'a');
  s.span_id = std::string(16, 'b');
  s.name = "chat m";
  s.kind = stats::span_kind::client;
  s.start_unix_ns = 1;
  s.end_unix_ns = 2;
  s.attributes = {{"gen_ai.usage.input_tokens", std::int64_t{12}},
                  {"gen_ai.system", std::string("openai")},
                  {"meridian.cost_usd", 0.5},
                  {"meridian.estimated", true}};
  s.error = true;
  s.status_message = "http_503";
  auto j = nlohmann::json::parse(stats::otlp_json({s}, "svc"));
  const auto& out = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  CHECK(out["kind"] == 3);
  CHECK(out["startTimeUnixNano"] == "1");
  CHECK_FALSE(out.contains("parentSpanId"));
  CHECK(out["attributes"][0]["value"] == nlohmann::json{{"intValue", "12"}});
  CHECK(out["attributes"][1]["value"] == nlohmann::json{{"stringValue", "openai"}});
  CHECK(out["attributes"][2]["value"] == nlohmann::json{{"doubleValue", 0.5}});
  CHECK(out["attributes"][3]["value"] == nlohmann::json{{"boolValue", true}});
  CHECK(out["status"] == nlohmann::json{{"code", 2}, {"message", "http_503"}});
}
