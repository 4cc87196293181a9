// Every domain error the gateway meets, as the one api_error the client is told (core/
// api_error.hpp renders it). The only place a domain error becomes a status: the router, the
// parsers and the ledger name what went wrong, and this file says how a client hears it.
#pragma once

#include "core/api_error.hpp"
#include "policies/facts.hpp"
#include "policies/resolve.hpp"
#include "policies/router.hpp"
#include "providers/request.hpp"
#include "stats/report.hpp"

namespace meridian::gateway {

using core::api_error;
using core::error_kind;

// A malformed body (no param: invalid_json) or a bad member (invalid_value), 400.
api_error to_api_error(const providers::request_error& e);
// A routing field the router cannot read, 400.
api_error to_api_error(const policies::facts_error& e);
// Nothing can serve the request: 404 model_not_found when nothing was found, else 400
// no_candidates (or the plan's own code, e.g. ambiguous_model).
api_error to_api_error(const policies::plan_error& e);
// A model name that names nothing (404) or several deployments (400 ambiguous_model).
api_error to_api_error(const policies::resolve_error& e);
// A statistics query: a bad parameter (400), no such record (404), no ledger (503).
api_error to_api_error(const stats::query_error& e);

}  // namespace meridian::gateway
