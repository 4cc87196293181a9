// The stored-Responses checks, run by test_response_store.cpp on SQLite and by
// test_ledger_postgres.cpp on PostgreSQL: the same answers from either engine.
#pragma once

#include "stats/response_store.hpp"

namespace meridian::stats::testing {

// `store` sits on a freshly migrated ledger database, retention 1 h and a 4 KiB cap.
void check_response_store(response_store& store);

}  // namespace meridian::stats::testing
