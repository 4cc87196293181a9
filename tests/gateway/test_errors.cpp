// gateway/errors: each domain error becomes the api_error (and so the status) a client hears;
// no status is chosen by matching message text.
#include <doctest/doctest.h>

#include "gateway/errors.hpp"

using namespace meridian;
using core::error_kind;
using gateway::to_api_error;

TEST_CASE("errors: a malformed body is invalid_json, a bad member invalid_value, both 400") {
  auto whole = to_api_error(providers::request_error{"request body is not valid JSON", ""});
  CHECK(whole.kind == error_kind::invalid_request);
  CHECK(whole.code == "invalid_json");
  CHECK(whole.param.empty());
  auto member = to_api_error(providers::request_error{"'stream' must be a boolean", "stream"});
  CHECK(member.code == "invalid_value");
  CHECK(member.param == "stream");
  CHECK(core::http_status(member.kind) == 400);
  CHECK(to_api_error(policies::facts_error{"provider.sort", "bad sort"}).code == "invalid_value");
}

TEST_CASE("errors: a plan that found nothing is 404, one that excluded everything 400") {
  using policies::plan_error;
  auto missing = to_api_error(plan_error{plan_error::kind::not_found, "model", "No model 'x'", ""});
  CHECK(core::http_status(missing.kind) == 404);
  CHECK(missing.code == "model_not_found");
  CHECK(missing.param == "model");
  auto excluded =
      to_api_error(plan_error{plan_error::kind::unsatisfiable, "provider", "excluded", ""});
  CHECK(core::http_status(excluded.kind) == 400);
  CHECK(excluded.code == "no_candidates");
  auto ambiguous = to_api_error(
      plan_error{plan_error::kind::unsatisfiable, "model", "several", "ambiguous_model"});
  CHECK(ambiguous.code == "ambiguous_model");
}

TEST_CASE("errors: a model name that resolves to nothing or to several") {
  using policies::resolve_error;
  auto none = to_api_error(resolve_error{resolve_error::kind::not_found, "no such model"});
  CHECK(core::http_status(none.kind) == 404);
  CHECK(none.code == "model_not_found");
  auto several = to_api_error(resolve_error{resolve_error::kind::ambiguous, "several"});
  CHECK(core::http_status(several.kind) == 400);
  CHECK(several.code == "ambiguous_model");
  CHECK(several.param == "model");
}

TEST_CASE("errors: a stats query's kind, not its message, picks the status") {
  using stats::query_error;
  CHECK(core::http_status(to_api_error(query_error{"by", "unknown by"}).kind) == 400);
  // A message that merely starts like the not-found one is still a bad parameter.
  CHECK(core::http_status(to_api_error(query_error{"id", "no generation with id 'x'"}).kind) ==
        400);
  CHECK(core::http_status(
            to_api_error(query_error{"id", "gone", query_error::kind::not_found}).kind) == 404);
  auto down = to_api_error(query_error{"", "ledger unavailable", query_error::kind::unavailable});
  CHECK(core::http_status(down.kind) == 503);
  CHECK(down.code == "stats_unavailable");
}
