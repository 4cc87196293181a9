// Stored Responses: what POST /v1/responses with `store: true` (OpenAI's default) keeps, so that
// GET /v1/responses/{id}, its input_items and a later `previous_response_id` find it. Kept in
// the ledger's database (SQLite or PostgreSQL; the table comes with the ledger's migrations),
// each owned by the virtual key that made it: another key finds nothing, as if it did not exist.
// Bounded by a retention and a size cap over all stored responses (the oldest go first).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "stats/ledger.hpp"
#include "stats/report.hpp"

namespace meridian::stats {

namespace detail {
class sql_connection;
}

struct stored_response {
  std::string id;     // resp_…
  std::string owner;  // the virtual key's name; empty: made without a key
  std::int64_t created_ms = 0;
  std::string input;     // JSON array: every input item the response answered, history included
  std::string response;  // the Response object as it was answered
};

struct response_store_options {
  std::string path;      // the ledger's SQLite file
  std::string postgres;  // or its PostgreSQL URL
  std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};
  std::uint64_t max_bytes = 256ull << 20;  // input + response of every stored response
};

response_store_options response_store_options_from(const config::stats_config& cfg);

// Thread-safe (one connection, calls serialized); synchronous, so called off the event loops
// (the control thread), like the ledger's queries. The database must have been opened by a
// ledger first, which creates the table; until then every call is `unavailable`.
class response_store {
 public:
  explicit response_store(response_store_options options);
  ~response_store();
  response_store(const response_store&) = delete;
  response_store& operator=(const response_store&) = delete;

  // Keeps `r`, after removing what is past retention; then, while the total is over the cap,
  // the oldest others. False (nothing kept) when `r` alone is larger than the cap.
  result<bool> put(const stored_response& r, time_point now);
  // The response `id` if `owner` made it and it is within retention (nullopt otherwise).
  // With no owner given (the admin token), any owner's.
  result<std::optional<stored_response>> get(const std::string& id,
                                              const std::optional<std::string>& owner,
                                              time_point now) const;
  // True when it was there (and owned by `owner`, when given) and is now gone.
  result<bool> remove(const std::string& id, const std::optional<std::string>& owner);
  // The bytes and count stored now (for tests and the operator).
  result<std::pair<std::uint64_t, std::uint64_t>> totals() const;

 private:
  template <class T, class F>
  result<T> run(F&& body, bool write) const;

  response_store_options options_;
  mutable std::mutex mu_;
  mutable std::unique_ptr<detail::sql_connection> db_;
};

}  // namespace meridian::stats
