// The statistics endpoints' logic without HTTP: query parameters in, JSON (or a query_error
// naming the parameter) out. The gateway only parses the URL and writes the answer.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "stats/ledger.hpp"
#include "stats/report.hpp"

namespace meridian::stats {

using query_params = std::map<std::string, std::string>;

// GET /v1/stats/share?window=7d&by=region (or from/to).
result<nlohmann::json> share_answer(const ledger* book, const query_params& q, time_point now,
                                    const std::optional<baseline>& base);
// GET /v1/stats/daily?days=30&top=20&by=model.
result<nlohmann::json> daily_answer(const ledger* book, const query_params& q, time_point now);
// GET /v1/stats/series?window=24h&by=model&top=8: absolute tokens over the window (as share's
// window, or from and to), hourly up to two days, daily beyond; `bucket` says which.
result<nlohmann::json> series_answer(const ledger* book, const query_params& q, time_point now);
// GET /v1/generation?id=REQUEST_ID; a query_error with param "id" when there is no such record.
// `visible_to`: the caller's key name ("" for a caller without one), so a tenant finds only its
// own requests; nullopt finds any (no keys configured, or the admin token).
result<nlohmann::json> generation_answer(const ledger* book, const query_params& q,
                                         const std::optional<std::string>& visible_to = std::nullopt);
// GET /dashboard?window=7d: the whole page, first view rendered here.
result<std::string> dashboard_answer(const ledger* book, const query_params& q, time_point now,
                                     const std::optional<baseline>& base, bool show_keys = false);

}  // namespace meridian::stats
