// The Prometheus text exposition: HELP/TYPE, escaping, histogram buckets.
#include <doctest/doctest.h>

#include "stats/metrics.hpp"

using namespace meridian::stats;

TEST_CASE("metrics: counters, gauges and escaping") {
  registry r;
  auto& c = r.counter("meridian_requests_total", "Requests.", {"provider", "status"});
  auto& g = r.gauge("meridian_inflight_requests", "In flight.");
  c.inc({"deep\"seek\\\n", "200"});
  c.inc({"deep\"seek\\\n", "200"}, 2);
  g.add({}, 3);
  g.add({}, -1);
  std::string text = r.expose();
  CHECK(text.find(
            "# HELP meridian_requests_total Requests.\n# TYPE meridian_requests_total counter\n") !=
        std::string::npos);
  CHECK(text.find("meridian_requests_total{provider=\"deep\\\"seek\\\\\\n\",status=\"200\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("meridian_inflight_requests 2\n") != std::string::npos);
  // sorted by name
  CHECK(text.find("meridian_inflight_requests") < text.find("meridian_requests_total"));
  CHECK_THROWS_AS(c.inc({"only-one"}), std::logic_error);
  CHECK_THROWS_AS(r.counter("meridian_requests_total", "again"), std::logic_error);
}

TEST_CASE("metrics: histogram buckets are cumulative") {
  registry r;
  auto& h = r.histogram("meridian_request_duration_seconds", "Latency.", {"provider"}, {0.1, 1});
  h.observe({"a"}, 0.05);
  h.observe({"a"}, 0.5);
  h.observe({"a"}, 5);
  std::string text = r.expose();
  CHECK(text.find("meridian_request_duration_seconds_bucket{provider=\"a\",le=\"0.1\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("meridian_request_duration_seconds_bucket{provider=\"a\",le=\"1\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("meridian_request_duration_seconds_bucket{provider=\"a\",le=\"+Inf\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("meridian_request_duration_seconds_sum{provider=\"a\"} 5.55\n") !=
        std::string::npos);
  CHECK(text.find("meridian_request_duration_seconds_count{provider=\"a\"} 3\n") !=
        std::string::npos);
  CHECK(h.count({"a"}) == 3);
}
