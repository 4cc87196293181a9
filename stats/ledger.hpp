// The token ledger: usage events batched into SQLite or PostgreSQL (hourly buckets plus
// per-request generation records) by a storage thread, the share/daily/generation queries over
// it, and the admin-managed keys that every gateway sharing the database sees.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "stats/report.hpp"
#include "stats/usage_event.hpp"

namespace meridian::stats {

struct ledger_options {
  std::string path;      // the SQLite file; created with its schema when absent
  std::string postgres;  // or a libpq URL (postgres://user@host:port/db); set: path is ignored
  std::chrono::milliseconds flush_interval{std::chrono::seconds(1)};
  std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};  // generation records
  std::size_t max_queue = 100000;  // events held (queued or awaiting a retry) before dropping
  bool background = true;          // false: no storage thread, only explicit flush() (tests)
};

// A virtual key created through the admin API, kept in the ledger's database so that every
// gateway sharing the database sees it. The secret itself is never stored, only its SHA-256.
struct stored_key {
  std::string name;
  std::string key_sha256;       // 64 lowercase hex digits
  std::string spec;             // JSON: {"rpm":N,"tpm":N,"budget":{"usd":X,"period":"day|month"},
                                //        "allow":{"regions":[...]}} with absent members unset
  std::int64_t created_ms = 0;  // Unix milliseconds
  std::optional<std::int64_t> revoked_ms;  // set once revoked; revoked keys stay listed
};

// The options config's `stats` section asks for; path and postgres are empty for "none".
ledger_options ledger_options_from(const config::stats_config& cfg);

// Thread-safe. record() never blocks on I/O: events wait in a bounded queue that the storage
// thread writes every flush_interval in one transaction. A failed open or write (a missing
// directory, PostgreSQL down) is reported by last_error() and write_errors() and retried on the
// next flush with the same events; nothing throws into the caller. Queries use their own
// connection, so they never wait for a write (WAL mode; PostgreSQL's MVCC), and may be called
// from any thread; they are serialized with each other, as are the keys API's writes, which
// have a third connection. Several gateways (ledger objects) may share one PostgreSQL
// database: bucket upserts add up and the first-time migration runs once. The constructor
// connects at once (up to libpq's connect_timeout of 5 s unless the URL sets another), so
// build the ledger on the control thread, never on an event loop; so too for every query.
class ledger {
 public:
  explicit ledger(ledger_options options);
  ~ledger();  // stop()
  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  // Queues one event; false when it was dropped (queue full, counted in dropped()) or the
  // ledger is stopped (not counted: nothing is lost that a running gateway produced).
  bool record(usage_event event);
  // Writes everything queued now, on the caller's thread; retention is measured from `now`.
  void flush();
  void flush(time_point now);
  // Ends the storage thread and writes what is left; later record() calls do nothing.
  void stop();

  std::uint64_t dropped() const;
  std::uint64_t write_errors() const;
  std::size_t queued() const;      // events not yet written, including those awaiting a retry
  std::string last_error() const;  // empty while the last flush succeeded
  int schema_version() const;      // of the open database; 0 until it could be opened

  // Per-key sums over the window, with each key's tokens over the window just before.
  result<share_data> share(const time_window& window, dimension by) const;
  // `days` UTC days ending with the one containing `now`, top-N keys plus "other".
  result<daily_data> daily(unsigned days, unsigned top, dimension by, time_point now) const;
  // Per provider, over the window's generation records (each request's last attempt, kept for
  // `retention`): requests answered, mean latency and time to first token of those, and how many
  // of them were answered after an earlier candidate failed.
  struct provider_latency {
    std::string provider;
    std::uint64_t answered = 0, after_fallback = 0;
    double latency_ms = 0;
    std::optional<double> ttft_ms;
  };
  result<std::vector<provider_latency>> latency_by_provider(const time_window& window) const;
  // Per route and deployment, over the window's answered generation records whose usage the
  // upstream reported: prompt tokens and those read from the provider's cache.
  struct cache_use {
    std::string route, provider, model;
    std::uint64_t prompt = 0, cache_read = 0;
  };
  result<std::vector<cache_use>> cache_use_by_route(const time_window& window) const;
  // Tokens per `bucket` (whole hours; a day's buckets are labelled by day, others by their
  // start in ISO 8601) over the window, top-N keys plus "other", oldest first.
  result<daily_data> series(const time_window& window, std::chrono::seconds bucket, unsigned top,
                            dimension by) const;
  // The record of one request (its last attempt) by Meridian's request id or the client's
  // x-request-id (the newest such), or nullopt when unknown or past retention. With `key`, only
  // records made with that key (empty: without one) are found.
  result<std::optional<usage_event>> generation(
      const std::string& id, const std::optional<std::string>& key = std::nullopt) const;

  // Admin-managed keys. Synchronous (the control thread calls them), on their own connection.
  // add_key: false when an active (not revoked) key already has the name.
  result<bool> add_key(const stored_key& key);
  // false when no active key has the name.
  result<bool> revoke_key(const std::string& name, time_point now);
  // Every stored key, revoked ones included, oldest first.
  result<std::vector<stored_key>> keys() const;
  // USD spent by one key (usage_event::key) in [from, to), from the hourly buckets written so
  // far (flush() first); whole hours, so `from` should be a period start.
  result<double> key_spend(const std::string& key, time_point from, time_point to) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace meridian::stats
