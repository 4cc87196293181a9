// Stored Responses on the ledger's database (see response_store.hpp), through the same small
// database interface as the ledger (ledger_db.hpp), on a connection of their own.
#include "stats/response_store.hpp"

#include <vector>

#include "stats/ledger_db.hpp"

namespace meridian::stats {

using detail::sql_connection;
using detail::sql_error;

namespace {

std::int64_t unix_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The owner condition: any owner for the admin token, else exactly the given one.
std::string owned(const std::optional<std::string>& owner) {
  return owner ? " AND owner = ?" : "";
}

}  // namespace

response_store_options response_store_options_from(const config::stats_config& cfg) {
  response_store_options out;
  out.path = cfg.ledger_path;
  out.postgres = cfg.ledger_postgres;
  out.retention = cfg.responses.retention;
  out.max_bytes = cfg.responses.max_bytes;
  return out;
}

response_store::response_store(response_store_options options) : options_(std::move(options)) {}
response_store::~response_store() = default;

// Runs `body` in a transaction (a write one when `write`); a failure drops the connection, so the
// next call reopens it (a restarted PostgreSQL, a replaced file).
template <class T, class F>
result<T> response_store::run(F&& body, bool write) const {
  std::lock_guard lock(mu_);
  try {
    if (options_.postgres.empty() && options_.path.empty())
      throw sql_error("no ledger is configured");
    if (!db_)
      db_ = options_.postgres.empty()
                ? detail::open_sqlite(options_.path, detail::sqlite_role::admin)
                : detail::open_postgres(options_.postgres);
    write ? db_->begin_write() : db_->begin_read();
    try {
      T out = body(*db_);
      db_->commit();
      return out;
    } catch (const std::exception&) {
      db_->rollback();
      throw;
    }
  } catch (const std::exception& e) {
    if (db_ && !db_->healthy()) db_.reset();
    return query_error{"", std::string("response store unavailable: ") + e.what(),
                       query_error::kind::unavailable};
  }
}

result<bool> response_store::put(const stored_response& r, time_point now) {
  const std::uint64_t bytes = r.input.size() + r.response.size();
  return run<bool>(
      [&](sql_connection& db) {
        db.prepare("DELETE FROM responses WHERE created_ms < ?")
            ->bind(1, unix_ms(now - options_.retention))
            .run();
        if (bytes > options_.max_bytes) return false;
        db.prepare(
              "INSERT INTO responses (id, owner, created_ms, bytes, input, response) "
              "VALUES (?, ?, ?, ?, ?, ?)")
            ->bind(1, r.id)
            .bind(2, r.owner)
            .bind(3, r.created_ms)
            .bind(4, bytes)
            .bind(5, r.input)
            .bind(6, r.response)
            .run();
        auto total = db.prepare("SELECT COALESCE(SUM(bytes), 0) FROM responses");
        std::uint64_t sum = total->step() ? total->uint64(0) : 0;
        total->reset();
        if (sum <= options_.max_bytes) return true;
        // Over the cap: the oldest others go until the rest fits.
        std::vector<std::string> evict;
        auto oldest = db.prepare(
            "SELECT id, bytes FROM responses WHERE id <> ? ORDER BY created_ms, id");
        oldest->bind(1, r.id);
        while (sum > options_.max_bytes && oldest->step()) {
          evict.push_back(oldest->text(0));
          sum -= std::min(sum, oldest->uint64(1));
        }
        oldest->reset();
        auto drop = db.prepare("DELETE FROM responses WHERE id = ?");
        for (const auto& id : evict) drop->bind(1, id).run();
        return true;
      },
      true);
}

result<std::optional<stored_response>> response_store::get(const std::string& id,
                                                            const std::optional<std::string>& owner,
                                                            time_point now) const {
  return run<std::optional<stored_response>>(
      [&](sql_connection& db) -> std::optional<stored_response> {
        auto s = db.prepare(
            "SELECT id, owner, created_ms, input, response FROM responses WHERE id = ? AND "
            "created_ms >= ?" +
            owned(owner));
        s->bind(1, id).bind(2, unix_ms(now - options_.retention));
        if (owner) s->bind(3, *owner);
        if (!s->step()) return std::nullopt;
        stored_response r{s->text(0), s->text(1), s->int64(2), s->text(3), s->text(4)};
        s->reset();
        return r;
      },
      false);
}

result<bool> response_store::remove(const std::string& id,
                                    const std::optional<std::string>& owner) {
  return run<bool>(
      [&](sql_connection& db) {
        auto s = db.prepare("DELETE FROM responses WHERE id = ?" + owned(owner) + " RETURNING id");
        s->bind(1, id);
        if (owner) s->bind(2, *owner);
        bool removed = s->step();
        while (s->step()) {
        }
        s->reset();
        return removed;
      },
      true);
}

result<std::pair<std::uint64_t, std::uint64_t>> response_store::totals() const {
  return run<std::pair<std::uint64_t, std::uint64_t>>(
      [&](sql_connection& db) {
        auto s = db.prepare("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM responses");
        std::pair<std::uint64_t, std::uint64_t> out{0, 0};
        if (s->step()) out = {s->uint64(0), s->uint64(1)};
        s->reset();
        return out;
      },
      false);
}

}  // namespace meridian::stats
