// Glue between query parameters, the ledger's queries and the report shapes.
#include "stats/api.hpp"

#include "stats/dashboard.hpp"

namespace meridian::stats {
namespace {

std::optional<std::string_view> param(const query_params& q, const char* name) {
  auto it = q.find(name);
  if (it == q.end()) return std::nullopt;
  return std::string_view(it->second);
}

query_error no_ledger() {
  return {"", "the usage ledger is disabled (stats.ledger: none)", query_error::kind::unavailable};
}

}  // namespace

namespace {

// Totals read while events still wait to be written (a ledger that cannot write) are stale:
// the answer says so, and how many are waiting, instead of passing for the whole truth.
void mark_completeness(const ledger& book, nlohmann::json& out) {
  const std::size_t waiting = book.queued();
  out["complete"] = waiting == 0;
  out["pending_events"] = waiting;
}

}  // namespace

result<nlohmann::json> share_answer(const ledger* book, const query_params& q, time_point now,
                                    const std::optional<baseline>& base) {
  if (!book) return no_ledger();
  auto parsed =
      parse_share_query(param(q, "window"), param(q, "by"), param(q, "from"), param(q, "to"), now);
  if (auto* e = std::get_if<query_error>(&parsed)) return *e;
  const auto& sq = std::get<share_query>(parsed);
  auto data = book->share(sq.window, sq.by);
  if (auto* e = std::get_if<query_error>(&data)) return *e;
  auto out = share_json(std::get<share_data>(data), base);
  if (sq.by == dimension::provider) {  // latency and fallbacks beside each provider's tokens
    auto latency = book->latency_by_provider(sq.window);
    if (auto* e = std::get_if<query_error>(&latency)) return *e;
    for (auto& row : out["rows"]) {
      row["latency_ms_mean"] = nullptr;
      row["ttft_ms_mean"] = nullptr;
      row["answered_after_fallback"] = 0;
      for (const auto& p : std::get<std::vector<ledger::provider_latency>>(latency)) {
        if (p.provider != row["key"]) continue;
        row["latency_ms_mean"] = p.latency_ms;
        if (p.ttft_ms) row["ttft_ms_mean"] = *p.ttft_ms;
        row["answered_after_fallback"] = p.after_fallback;
      }
    }
  }
  mark_completeness(*book, out);
  return out;
}

result<nlohmann::json> daily_answer(const ledger* book, const query_params& q, time_point now) {
  if (!book) return no_ledger();
  auto parsed = parse_daily_query(param(q, "days"), param(q, "top"), param(q, "by"));
  if (auto* e = std::get_if<query_error>(&parsed)) return *e;
  const auto& dq = std::get<daily_query>(parsed);
  auto data = book->daily(dq.days, dq.top, dq.by, now);
  if (auto* e = std::get_if<query_error>(&data)) return *e;
  auto out = daily_json(std::get<daily_data>(data));
  mark_completeness(*book, out);
  return out;
}

result<nlohmann::json> series_answer(const ledger* book, const query_params& q, time_point now) {
  if (!book) return no_ledger();
  auto parsed =
      parse_share_query(param(q, "window"), param(q, "by"), param(q, "from"), param(q, "to"), now);
  if (auto* e = std::get_if<query_error>(&parsed)) return *e;
  const auto& sq = std::get<share_query>(parsed);
  auto top = parse_daily_query(std::nullopt, param(q, "top"), std::nullopt);
  if (auto* e = std::get_if<query_error>(&top)) return *e;
  const bool hourly = sq.window.to - sq.window.from <= std::chrono::hours(48);
  const dimension by = param(q, "by") ? sq.by : dimension::model;
  auto data = book->series(sq.window, hourly ? std::chrono::hours(1) : std::chrono::hours(24),
                           std::get<daily_query>(top).top, by);
  if (auto* e = std::get_if<query_error>(&data)) return *e;
  auto out = daily_json(std::get<daily_data>(data));
  out.erase("days");
  out["window"] = sq.window.name;
  out["bucket"] = hourly ? "hour" : "day";
  mark_completeness(*book, out);
  return out;
}

result<nlohmann::json> generation_answer(const ledger* book, const query_params& q,
                                         const std::optional<std::string>& visible_to) {
  if (!book) return no_ledger();
  auto id = param(q, "id");
  if (!id || id->empty()) return query_error{"id", "the id parameter is required"};
  auto found = book->generation(std::string(*id), visible_to);
  if (auto* e = std::get_if<query_error>(&found)) return *e;
  const auto& ev = std::get<std::optional<usage_event>>(found);
  if (!ev)
    return query_error{"id", "no generation with id '" + std::string(*id) + "'",
                       query_error::kind::not_found};
  return generation_json(*ev);
}

result<std::string> dashboard_answer(const ledger* book, const query_params& q, time_point now,
                                     const std::optional<baseline>& base, bool show_keys) {
  dashboard_data d;
  d.generated_at = format_iso8601(now);
  query_params by = q;
  const std::pair<const char*, nlohmann::json*> shares[] = {
      {"region", &d.share_by_region}, {"provider", &d.share_by_provider},
      {"model", &d.share_by_model},   {"app", &d.share_by_app},
      {"task", &d.share_by_task},     {"language", &d.share_by_language}};
  for (const auto& [dim, slot] : shares) {
    by["by"] = dim;
    auto share = share_answer(book, by, now, base);
    if (auto* e = std::get_if<query_error>(&share)) return *e;
    *slot = std::move(std::get<nlohmann::json>(share));
  }
  // The charts follow the page's window: hourly buckets up to two days, daily beyond.
  // The tokens chart stacks what ?chart= asks for (model unless it names another dimension).
  if (auto c = q.find("chart"); c != q.end())
    for (const char* dim : {"provider", "author", "region"})
      if (c->second == dim) d.chart_by = dim;
  const std::string dims[] = {"region", d.chart_by};
  for (int i = 0; i < 2; ++i) {
    query_params sq = {{"by", dims[i]}, {"top", "8"}};
    for (const char* k : {"window", "from", "to"})
      if (auto it = q.find(k); it != q.end()) sq[k] = it->second;
    auto series = series_answer(book, sq, now);
    if (auto* e = std::get_if<query_error>(&series)) return *e;
    (i == 0 ? d.series_by_region : d.series_by_model) = std::move(std::get<nlohmann::json>(series));
  }
  // Every tenant's spend is the operator's to see, not one key holder's.
  if (show_keys) {
    by["by"] = "key";
    auto keys = share_answer(book, by, now, base);
    if (auto* e = std::get_if<query_error>(&keys)) return *e;
    d.share_by_key = std::move(std::get<nlohmann::json>(keys));
  }
  return render_dashboard(d);
}

}  // namespace meridian::stats
