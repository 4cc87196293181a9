// The /dashboard page: one self-contained HTML document rendered from the stats API's JSON, so
// the first view is readable without JavaScript and the inline script only has to refresh it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace meridian::stats {

// The JSON answers of the stats API, exactly as /v1/stats/share and /v1/stats/daily return them.
// Any member may be null or malformed (no traffic yet, a store not open): the page still renders.
struct dashboard_data {
  nlohmann::json share_by_region;    // GET /v1/stats/share?window=…&by=region
  nlohmann::json share_by_provider;  // GET /v1/stats/share?window=…&by=provider
  nlohmann::json share_by_model;     // GET /v1/stats/share?window=…&by=model
  nlohmann::json share_by_app;       // by=app, OpenRouter's app ranking (X-Title / HTTP-Referer)
  nlohmann::json share_by_task;      // by=task, what the classifier saw the prompts ask for
  nlohmann::json share_by_language;  // by=language
  nlohmann::json series_by_region;   // GET /v1/stats/series?window=…&by=region&top=8
  nlohmann::json series_by_model;    // GET /v1/stats/series?window=…&by=<chart_by>&top=8
  std::string chart_by = "model";  // what the tokens chart stacks: model, provider, author, region
  nlohmann::json share_by_key;     // by=key, for the operator only; null: not shown
  std::string generated_at;          // ISO 8601, shown in the footer
};

// The whole page: inline CSS, inline SVG charts and an inline script that re-renders the same
// markup from the same-origin API every 10 s. Every string taken from `d` is HTML-escaped, and
// the page references no external resource.
std::string render_dashboard(const dashboard_data& d);

}  // namespace meridian::stats
