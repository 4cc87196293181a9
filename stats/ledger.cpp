// The ledger's storage: schema migrations, the batched write transaction and the read-side
// queries, written once against the small database interface of stats/ledger_db.hpp, with its
// SQLite implementation here (the libpq one is in ledger_postgres.cpp). The writer connection is
// guarded by one mutex (the storage thread and an explicit flush() take turns); queries and the
// keys API have their own connections and never wait for it.
#include "stats/ledger.hpp"

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "stats/ledger_db.hpp"

namespace meridian::stats {
namespace detail {
namespace {

struct db_closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;

class sqlite_statement final : public sql_statement {
 public:
  sqlite_statement(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      throw sql_error(sqlite3_errmsg(db));
  }
  ~sqlite_statement() override { sqlite3_finalize(stmt_); }
  sqlite_statement(const sqlite_statement&) = delete;
  sqlite_statement& operator=(const sqlite_statement&) = delete;

  void bind_int64(int i, std::int64_t v) override { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind_double(int i, double v) override { check(sqlite3_bind_double(stmt_, i, v)); }
  void bind_text(int i, const std::string& v) override {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_null(int i) override { check(sqlite3_bind_null(stmt_, i)); }
  void bind_text_kept(int i, std::string_view v) override {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }

  bool step() override {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw sql_error(sqlite3_errmsg(db_));
  }
  void reset() override { sqlite3_reset(stmt_); }

  std::int64_t int64(int col) const override { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const override { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const override {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw sql_error(sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class sqlite_connection final : public sql_connection {
 public:
  sqlite_connection(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK)
      throw sql_error("cannot open " + path + ": " +
                      (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    sqlite3_busy_timeout(db_.get(), 5000);
  }

  engine kind() const override { return engine::sqlite; }
  void exec(const std::string& sql) override {
    char* message = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : sqlite3_errmsg(db_.get());
      sqlite3_free(message);
      throw sql_error(text);
    }
  }
  std::unique_ptr<sql_statement> prepare(const std::string& sql) override {
    return std::make_unique<sqlite_statement>(db_.get(), sql);
  }
  void begin_write() override { exec("BEGIN IMMEDIATE"); }
  void begin_read() override { exec("BEGIN"); }
  void commit() override { exec("COMMIT"); }
  void rollback() noexcept override {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool healthy() const override { return sqlite3_get_autocommit(db_.get()) != 0; }
  void lock_migrations() override {}  // BEGIN IMMEDIATE holds the database's write lock

 private:
  db_ptr db_;
};

}  // namespace

std::unique_ptr<sql_connection> open_sqlite(const std::string& path, sqlite_role role) {
  if (role == sqlite_role::writer) {
    // WAL so readers never block the writer; synchronous=NORMAL because WAL then survives a
    // killed process, which is the durability the contract promises.
    auto db = std::make_unique<sqlite_connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    auto s = db->prepare("PRAGMA journal_mode=WAL");
    if (!s->step() || s->text(0) != "wal")
      throw sql_error("cannot switch " + path + " to WAL mode");
    s.reset();
    db->exec("PRAGMA synchronous=NORMAL");
    return db;
  }
  auto db = std::make_unique<sqlite_connection>(path, SQLITE_OPEN_READWRITE);
  if (role == sqlite_role::reader) db->exec("PRAGMA query_only=1");
  return db;
}

}  // namespace detail

namespace {

using namespace std::chrono;
using detail::engine;
using detail::sql_connection;
using detail::sql_error;
using detail::sql_statement;

// Applied in order, each once; schema_version holds how many have run. Append, never edit.
// Each has its SQLite text and, where the engines differ, its PostgreSQL text (64-bit BIGINT
// and DOUBLE PRECISION where SQLite's INTEGER and REAL already are).
struct migration {
  const char* sqlite;
  const char* postgres;  // nullptr: the same text
};
constexpr migration k_migrations[] = {
    {
        R"sql(
CREATE TABLE hourly (
  hour INTEGER NOT NULL,
  key TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  author TEXT NOT NULL,
  region TEXT NOT NULL,
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  input INTEGER NOT NULL,
  cache_read INTEGER NOT NULL,
  cache_write INTEGER NOT NULL,
  output INTEGER NOT NULL,
  reasoning INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  energy_kwh REAL NOT NULL,
  electricity_usd REAL NOT NULL,
  PRIMARY KEY (hour, key, provider, model, author, region)
) WITHOUT ROWID;
CREATE TABLE generations (
  request_id TEXT PRIMARY KEY,
  key TEXT NOT NULL,
  route TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  author TEXT NOT NULL,
  region TEXT NOT NULL,
  input INTEGER NOT NULL,
  cache_read INTEGER NOT NULL,
  cache_write INTEGER NOT NULL,
  output INTEGER NOT NULL,
  reasoning INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  energy_kwh REAL NOT NULL,
  electricity_usd REAL NOT NULL,
  latency_ms REAL NOT NULL,
  ttft_ms REAL,
  outcome TEXT NOT NULL,
  status INTEGER NOT NULL,
  fallback_index INTEGER NOT NULL,
  estimated INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX generations_created ON generations (created_ms);
)sql",
        R"sql(
CREATE TABLE hourly (
  hour BIGINT NOT NULL,
  key TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  author TEXT NOT NULL,
  region TEXT NOT NULL,
  requests BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  input BIGINT NOT NULL,
  cache_read BIGINT NOT NULL,
  cache_write BIGINT NOT NULL,
  output BIGINT NOT NULL,
  reasoning BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  energy_kwh DOUBLE PRECISION NOT NULL,
  electricity_usd DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (hour, key, provider, model, author, region)
);
CREATE TABLE generations (
  request_id TEXT PRIMARY KEY,
  key TEXT NOT NULL,
  route TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  author TEXT NOT NULL,
  region TEXT NOT NULL,
  input BIGINT NOT NULL,
  cache_read BIGINT NOT NULL,
  cache_write BIGINT NOT NULL,
  output BIGINT NOT NULL,
  reasoning BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  energy_kwh DOUBLE PRECISION NOT NULL,
  electricity_usd DOUBLE PRECISION NOT NULL,
  latency_ms DOUBLE PRECISION NOT NULL,
  ttft_ms DOUBLE PRECISION,
  outcome TEXT NOT NULL,
  status BIGINT NOT NULL,
  fallback_index BIGINT NOT NULL,
  estimated BIGINT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE INDEX generations_created ON generations (created_ms);
)sql",
    },
    // 2: admin-managed keys. A name is unique among active keys only, so a revoked key's name
    // can be reused; key_spend reads the hourly buckets by key.
    {
        R"sql(
CREATE TABLE keys (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  key_sha256 TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  revoked_ms INTEGER
);
CREATE UNIQUE INDEX keys_active_name ON keys (name) WHERE revoked_ms IS NULL;
CREATE INDEX hourly_key ON hourly (key, hour);
)sql",
        R"sql(
CREATE TABLE keys (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  name TEXT NOT NULL,
  key_sha256 TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  revoked_ms BIGINT
);
CREATE UNIQUE INDEX keys_active_name ON keys (name) WHERE revoked_ms IS NULL;
CREATE INDEX hourly_key ON hourly (key, hour);
)sql",
    },
    // 3: the client's own x-request-id beside Meridian's: a record's key is Meridian's id, so a
    // client id reused (a retry, another tenant) can no longer overwrite another record. And
    // how many of each bucket's tokens were estimated, so every aggregate can say so.
    {
        R"sql(
ALTER TABLE generations ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX generations_client ON generations (client_request_id, created_ms);
ALTER TABLE hourly ADD COLUMN estimated_tokens INTEGER NOT NULL DEFAULT 0;
)sql",
        R"sql(
ALTER TABLE generations ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX generations_client ON generations (client_request_id, created_ms);
ALTER TABLE hourly ADD COLUMN estimated_tokens BIGINT NOT NULL DEFAULT 0;
)sql",
    },
    // 4: the client's session (Claude Code's x-claude-code-session-id), for per-session
    // attribution of an agent's many requests.
    {
        R"sql(
ALTER TABLE generations ADD COLUMN session TEXT NOT NULL DEFAULT '';
)sql",
        nullptr,
    },
    // 5: stored Responses (stats/response_store.hpp): the Response object and the input items
    // it answered, owned by the key that made it; `bytes` is what the size cap counts.
    {
        R"sql(
CREATE TABLE responses (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  input TEXT NOT NULL,
  response TEXT NOT NULL
);
CREATE INDEX responses_created ON responses (created_ms);
)sql",
        R"sql(
CREATE TABLE responses (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  bytes BIGINT NOT NULL,
  input TEXT NOT NULL,
  response TEXT NOT NULL
);
CREATE INDEX responses_created ON responses (created_ms);
)sql",
    },
    // 6: who sent it and what it was for: the app (OpenRouter's HTTP-Referer / X-Title), the
    // task the classifier saw and the prompt's language, for share by app, task and language;
    // and the cost had no cache served, to split savings into routing's and caching's. Rows
    // from before it have NULL there, read as their actual cost (nothing known saved by caching).
    {
        R"sql(
ALTER TABLE generations ADD COLUMN app TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN task TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN language TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN uncached_cost_usd REAL;
ALTER TABLE hourly ADD COLUMN uncached_cost_usd REAL;
)sql",
        R"sql(
ALTER TABLE generations ADD COLUMN app TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN task TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN language TEXT NOT NULL DEFAULT '';
ALTER TABLE generations ADD COLUMN uncached_cost_usd DOUBLE PRECISION;
ALTER TABLE hourly ADD COLUMN uncached_cost_usd DOUBLE PRECISION;
)sql",
    },
};
constexpr int k_schema_version = static_cast<int>(std::size(k_migrations));

int read_schema_version(sql_connection& db) {
  auto s = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  return s->step() ? static_cast<int>(s->int64(0)) : 0;
}

// Brings the schema up to date, one transaction per migration, each re-reading the version
// under the migration lock: any number of processes may open an empty database at once.
int migrate(sql_connection& db, const std::string& name) {
  for (;;) {
    db.begin_write();
    try {
      db.lock_migrations();
      db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      int version = read_schema_version(db);
      if (version > k_schema_version)
        throw sql_error(name + " has schema version " + std::to_string(version) +
                        ", newer than this build's " + std::to_string(k_schema_version));
      if (version == k_schema_version) {
        db.commit();
        return version;
      }
      const auto& m = k_migrations[version];
      db.exec(db.kind() == engine::postgres && m.postgres ? m.postgres : m.sqlite);
      db.exec("DELETE FROM schema_version");
      db.prepare("INSERT INTO schema_version (version) VALUES (?)")->bind(1, version + 1).run();
      db.commit();
    } catch (const sql_error&) {
      db.rollback();
      throw;
    }
  }
}

std::int64_t unix_ms(time_point t) {
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}
std::int64_t unix_hour(time_point t) {
  return floor<hours>(t).time_since_epoch().count() * 3600;
}
std::int64_t unix_seconds(time_point t) {
  return duration_cast<seconds>(t.time_since_epoch()).count();
}

// The SQL expression a dimension groups by; from a fixed table, never from the query string.
const char* group_expression(dimension by) {
  switch (by) {
    case dimension::region:
      return "region";
    case dimension::provider:
      return "provider";
    case dimension::model:
      return "provider || '/' || model";
    case dimension::author:
      return "author";
    case dimension::key:
      return "key";
    case dimension::app:  // requests naming no app are shown as one row, not a blank
      return "CASE WHEN app = '' THEN '(unnamed)' ELSE app END";
    case dimension::task:
      return "CASE WHEN task = '' THEN '(none)' ELSE task END";
    case dimension::language:
      return "CASE WHEN language = '' THEN '(none)' ELSE language END";
  }
  return "region";
}

// Where a dimension's figures come from. The hourly buckets keep every attempt forever; the
// app, task and language are only on the generation records (one per request, its last
// attempt, kept for stats.retention), so those dimensions read them instead.
struct figures_source {
  const char* table;
  const char* hour;    // the expression for the hour, in Unix seconds
  const char* window;  // "from <= time < to" for two bound Unix seconds, as an index can serve
  const char* requests;
  const char* errors;
  const char* estimated;
};

figures_source source_of(dimension by) {
  if (by == dimension::app || by == dimension::task || by == dimension::language)
    return {"generations",
            "(created_ms / 1000)",
            "created_ms >= ? * 1000 AND created_ms < ? * 1000",
            "COUNT(*)",
            "SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)",
            "SUM(CASE WHEN estimated <> 0 THEN input + cache_read + cache_write + output + "
            "reasoning ELSE 0 END)"};
  return {"hourly",        "hour",        "hour >= ? AND hour < ?",
          "SUM(requests)", "SUM(errors)", "SUM(estimated_tokens)"};
}

using bucket_key =
    std::tuple<std::int64_t, std::string, std::string, std::string, std::string, std::string>;

// One transaction. The buckets are upserted in one fixed order (the map's), so concurrent
// writers on PostgreSQL lock the rows they share in the same order and cannot deadlock.
void write_batch(sql_connection& db, const std::vector<usage_event>& events, time_point cutoff) {
  std::map<bucket_key, aggregate> buckets;
  for (const auto& e : events) {
    auto& a = buckets[{unix_hour(e.time), e.key, e.provider, e.model, e.author, e.region}];
    a.tokens += e.tokens;
    a.requests += 1;
    a.errors += e.outcome == "ok" ? 0 : 1;
    if (e.estimated) a.estimated_tokens += e.tokens.total();
    a.cost_usd += e.cost_usd;
    a.uncached_cost_usd += e.uncached_cost_usd;
    a.energy_kwh += e.energy_kwh;
    a.electricity_usd += e.electricity_usd;
  }
  db.begin_write();
  try {
    auto upsert = db.prepare(R"sql(
INSERT INTO hourly (hour, key, provider, model, author, region, requests, errors, input,
                    cache_read, cache_write, output, reasoning, cost_usd, energy_kwh,
                    electricity_usd, estimated_tokens, uncached_cost_usd)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, key, provider, model, author, region) DO UPDATE SET
  requests = hourly.requests + excluded.requests, errors = hourly.errors + excluded.errors,
  input = hourly.input + excluded.input,
  cache_read = hourly.cache_read + excluded.cache_read,
  cache_write = hourly.cache_write + excluded.cache_write,
  output = hourly.output + excluded.output,
  reasoning = hourly.reasoning + excluded.reasoning,
  cost_usd = hourly.cost_usd + excluded.cost_usd,
  energy_kwh = hourly.energy_kwh + excluded.energy_kwh,
  electricity_usd = hourly.electricity_usd + excluded.electricity_usd,
  estimated_tokens = hourly.estimated_tokens + excluded.estimated_tokens,
  uncached_cost_usd = COALESCE(hourly.uncached_cost_usd, hourly.cost_usd) +
                      excluded.uncached_cost_usd)sql");
    for (const auto& [k, a] : buckets) {
      const auto& [hour, key, provider, model, author, region] = k;
      upsert->bind_row(hour, key, provider, model, author, region, a.requests, a.errors,
                       a.tokens.input, a.tokens.cache_read, a.tokens.cache_write, a.tokens.output,
                       a.tokens.reasoning, a.cost_usd, a.energy_kwh, a.electricity_usd,
                       a.estimated_tokens, a.uncached_cost_usd);
      upsert->run();
    }
    // A request id names the request, so with fallbacks its last attempt is the record kept.
    auto insert = db.prepare(R"sql(
INSERT INTO generations (request_id, key, route, provider, model, author, region, input,
                         cache_read, cache_write, output, reasoning, cost_usd, energy_kwh,
                         electricity_usd, latency_ms, ttft_ms, outcome, status, fallback_index,
                         estimated, created_ms, client_request_id, session, app, task,
                         language, uncached_cost_usd)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (request_id) DO UPDATE SET
  key = excluded.key, route = excluded.route, provider = excluded.provider,
  model = excluded.model, author = excluded.author, region = excluded.region,
  input = excluded.input, cache_read = excluded.cache_read,
  cache_write = excluded.cache_write, output = excluded.output,
  reasoning = excluded.reasoning, cost_usd = excluded.cost_usd,
  energy_kwh = excluded.energy_kwh, electricity_usd = excluded.electricity_usd,
  latency_ms = excluded.latency_ms, ttft_ms = excluded.ttft_ms, outcome = excluded.outcome,
  status = excluded.status, fallback_index = excluded.fallback_index,
  estimated = excluded.estimated, created_ms = excluded.created_ms,
  client_request_id = excluded.client_request_id, session = excluded.session,
  app = excluded.app, task = excluded.task, language = excluded.language,
  uncached_cost_usd = excluded.uncached_cost_usd
WHERE excluded.fallback_index >= generations.fallback_index)sql");
    for (const auto& e : events) {
      if (e.request_id.empty() || e.time < cutoff) continue;
      insert->bind_row(
          e.request_id, e.key, e.route, e.provider, e.model, e.author, e.region, e.tokens.input,
          e.tokens.cache_read, e.tokens.cache_write, e.tokens.output, e.tokens.reasoning,
          e.cost_usd, e.energy_kwh, e.electricity_usd, e.latency_ms, e.ttft_ms, e.outcome, e.status,
          static_cast<std::int64_t>(e.fallback_index), e.estimated ? 1 : 0, unix_ms(e.time),
          e.client_request_id, e.session, e.app, e.task, e.language, e.uncached_cost_usd);
      insert->run();
    }
    db.prepare("DELETE FROM generations WHERE created_ms < ?")->bind(1, unix_ms(cutoff)).run();
    db.commit();
  } catch (const sql_error&) {
    db.rollback();
    throw;
  }
}

// A read transaction, so a query's statements all see one snapshot.
class read_transaction {
 public:
  explicit read_transaction(sql_connection& db) : db_(db) { db.begin_read(); }
  ~read_transaction() { db_.rollback(); }  // read-only: ending it is all that is left
  read_transaction(const read_transaction&) = delete;
  read_transaction& operator=(const read_transaction&) = delete;

 private:
  sql_connection& db_;
};

bool lowercase_hex(const std::string& s, std::size_t length) {
  if (s.size() != length) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

ledger_options ledger_options_from(const config::stats_config& cfg) {
  ledger_options out;
  out.path = cfg.ledger_path;
  out.postgres = cfg.ledger_postgres;
  out.flush_interval = cfg.flush_interval;
  out.retention = cfg.retention;
  out.max_queue = static_cast<std::size_t>(cfg.max_queue);
  return out;
}

struct ledger::impl {
  explicit impl(ledger_options o) : options(std::move(o)) {}

  ledger_options options;

  bool configured() const { return !options.postgres.empty() || !options.path.empty(); }
  // For messages: the file, or (never the URL, whatever it may carry) the PostgreSQL ledger.
  std::string name() const {
    return options.postgres.empty() ? options.path : "the PostgreSQL ledger";
  }
  enum class role { writer, reader, admin };
  std::unique_ptr<sql_connection> open(role r) const {
    if (!options.postgres.empty()) return detail::open_postgres(options.postgres);
    return detail::open_sqlite(options.path, r == role::writer   ? detail::sqlite_role::writer
                                             : r == role::reader ? detail::sqlite_role::reader
                                                                 : detail::sqlite_role::admin);
  }

  mutable std::mutex queue_mu;
  std::condition_variable wake;
  std::deque<usage_event> queue;
  bool stopping = false;    // the storage thread should end
  bool stopped = false;     // record() refuses events
  bool flush_soon = false;  // the queue is half full: do not wait for the interval
  std::atomic<std::size_t> pending_size{0};
  std::atomic<std::uint64_t> dropped{0}, write_errors{0};
  std::thread thread;

  std::mutex write_mu;  // guards writer and pending
  std::unique_ptr<sql_connection> writer;
  std::vector<usage_event> pending;  // taken from the queue, not yet committed
  std::atomic<int> version{0};

  mutable std::mutex error_mu;
  std::string last_error;

  mutable std::mutex read_mu;  // guards reader
  mutable std::unique_ptr<sql_connection> reader;
  std::mutex admin_mu;  // guards admin, the keys API's write connection
  std::unique_ptr<sql_connection> admin;

  void report(const std::string& message) {
    write_errors.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(error_mu);
    last_error = message;
  }

  void open_writer_locked() {
    if (writer) return;
    auto db = open(role::writer);
    version = migrate(*db, name());
    writer = std::move(db);
  }

  void flush(time_point now) {
    std::lock_guard write_lock(write_mu);
    {
      std::lock_guard lock(queue_mu);
      for (auto& e : queue) pending.push_back(std::move(e));
      queue.clear();
      flush_soon = false;
    }
    pending_size = pending.size();
    try {
      open_writer_locked();
      write_batch(*writer, pending, now - options.retention);
      pending.clear();
      pending_size = 0;
      std::lock_guard lock(error_mu);
      last_error.clear();
    } catch (const std::exception& e) {
      // The events stay pending for the next flush; a connection that failed mid-write (or a
      // PostgreSQL connection that broke) is reopened then, which also recovers from a file
      // replaced underneath it or a database server restarted.
      if (writer && !writer->healthy()) writer.reset();
      report(e.what());
    }
  }

  void run() {
    std::unique_lock lock(queue_mu);
    while (!stopping) {
      wake.wait_for(lock, options.flush_interval, [&] { return stopping || flush_soon; });
      if (stopping) break;
      lock.unlock();
      flush(system_clock::now());
      lock.lock();
    }
  }

  // Runs a read-only query on the reader; a failure drops the connection so the next query
  // reopens it.
  template <class T, class F>
  result<T> query(F&& body) const {
    std::lock_guard lock(read_mu);
    try {
      if (!configured()) throw sql_error("no ledger is configured");
      if (!reader) reader = open(role::reader);
      read_transaction tx(*reader);
      return body(*reader);
    } catch (const std::exception& e) {
      reader.reset();
      return query_error{"", std::string("ledger unavailable: ") + e.what(),
                         query_error::kind::unavailable};
    }
  }

  // Runs `body` in a write transaction on the admin connection.
  template <class T, class F>
  result<T> administer(F&& body) {
    std::lock_guard lock(admin_mu);
    try {
      if (!configured()) throw sql_error("no ledger is configured");
      if (!admin) admin = open(role::admin);
      admin->begin_write();
      try {
        T out = body(*admin);
        admin->commit();
        return out;
      } catch (const std::exception&) {
        admin->rollback();
        throw;
      }
    } catch (const std::exception& e) {
      if (admin && !admin->healthy()) admin.reset();
      return query_error{"", std::string("ledger unavailable: ") + e.what(),
                         query_error::kind::unavailable};
    }
  }
};

ledger::ledger(ledger_options options) : impl_(std::make_unique<impl>(std::move(options))) {
  if (!impl_->configured()) {
    impl_->stopped = true;
    return;
  }
  // Opening at once reports a bad path or an unreachable server at start-up; a failure is
  // retried at every flush.
  {
    std::lock_guard lock(impl_->write_mu);
    try {
      impl_->open_writer_locked();
    } catch (const std::exception& e) {
      impl_->report(e.what());
    }
  }
  if (impl_->options.background) impl_->thread = std::thread([this] { impl_->run(); });
}

ledger::~ledger() {
  stop();
}

bool ledger::record(usage_event event) {
  std::lock_guard lock(impl_->queue_mu);
  if (impl_->stopped) return false;
  if (impl_->queue.size() + impl_->pending_size >= impl_->options.max_queue) {
    impl_->dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  impl_->queue.push_back(std::move(event));
  if (!impl_->flush_soon && impl_->queue.size() >= impl_->options.max_queue / 2) {
    impl_->flush_soon = true;
    impl_->wake.notify_one();
  }
  return true;
}

void ledger::flush() {
  flush(std::chrono::system_clock::now());
}

void ledger::flush(time_point now) {
  if (impl_->configured()) impl_->flush(now);
}

void ledger::stop() {
  {
    std::lock_guard lock(impl_->queue_mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->stopped = true;
  }
  impl_->wake.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
  flush();
}

std::uint64_t ledger::dropped() const {
  return impl_->dropped;
}
std::uint64_t ledger::write_errors() const {
  return impl_->write_errors;
}
std::size_t ledger::queued() const {
  std::lock_guard lock(impl_->queue_mu);
  return impl_->queue.size() + impl_->pending_size;
}
std::string ledger::last_error() const {
  std::lock_guard lock(impl_->error_mu);
  return impl_->last_error;
}
int ledger::schema_version() const {
  return impl_->version;
}

result<share_data> ledger::share(const time_window& window, dimension by) const {
  return impl_->query<share_data>([&](sql_connection& db) {
    share_data out;
    out.window = window;
    out.by = by;
    std::string expr = group_expression(by);
    const figures_source src = source_of(by);
    const std::string from =
        std::string(" FROM ") + src.table + " WHERE " + src.window + " GROUP BY 1";
    auto current =
        db.prepare("SELECT " + expr + ", " + src.requests + ", " + src.errors +
                   ", SUM(input), SUM(cache_read), SUM(cache_write), SUM(output), "
                   "SUM(reasoning), SUM(cost_usd), SUM(energy_kwh), "
                   "SUM(electricity_usd), " +
                   src.estimated + ", SUM(COALESCE(uncached_cost_usd, cost_usd))" + from);
    current->bind(1, unix_seconds(window.from)).bind(2, unix_seconds(window.to));
    std::map<std::string, std::size_t> index;
    while (current->step()) {
      share_row row;
      row.key = current->text(0);
      auto& a = row.current;
      a.requests = current->uint64(1);
      a.errors = current->uint64(2);
      a.tokens = {current->uint64(3), current->uint64(4), current->uint64(5), current->uint64(6),
                  current->uint64(7)};
      a.cost_usd = current->real(8);
      a.energy_kwh = current->real(9);
      a.electricity_usd = current->real(10);
      a.estimated_tokens = current->uint64(11);
      a.uncached_cost_usd = current->real(12);
      index[row.key] = out.rows.size();
      out.rows.push_back(std::move(row));
    }
    auto length = window.to - window.from;
    auto previous = db.prepare(
        "SELECT " + expr + ", SUM(input + cache_read + cache_write + output + reasoning)" + from);
    previous->bind(1, unix_seconds(window.from - length)).bind(2, unix_seconds(window.from));
    while (previous->step())
      if (auto it = index.find(previous->text(0)); it != index.end())
        out.rows[it->second].previous_tokens = previous->uint64(1);
    return out;
  });
}

result<daily_data> ledger::daily(unsigned days, unsigned top, dimension by, time_point now) const {
  auto first = floor<std::chrono::days>(now) - std::chrono::days(days > 0 ? days - 1 : 0);
  auto r = series({"days", first, first + std::chrono::days(days)}, hours(24), top, by);
  if (auto* d = std::get_if<daily_data>(&r)) d->days = days;
  return r;
}

result<std::vector<ledger::provider_latency>> ledger::latency_by_provider(
    const time_window& window) const {
  return impl_->query<std::vector<provider_latency>>([&](sql_connection& db) {
    std::vector<provider_latency> out;
    auto s = db.prepare(
        "SELECT provider, COUNT(*), SUM(CASE WHEN fallback_index > 0 THEN 1 ELSE 0 END), "
        "AVG(latency_ms), AVG(ttft_ms) FROM generations WHERE outcome = 'ok' AND created_ms >= ? "
        "AND created_ms < ? GROUP BY provider ORDER BY provider");
    s->bind(1, unix_ms(window.from)).bind(2, unix_ms(window.to));
    while (s->step()) {
      provider_latency p;
      p.provider = s->text(0);
      p.answered = s->uint64(1);
      p.after_fallback = s->uint64(2);
      p.latency_ms = s->real(3);
      if (!s->is_null(4)) p.ttft_ms = s->real(4);
      out.push_back(std::move(p));
    }
    return out;
  });
}

result<std::vector<ledger::cache_use>> ledger::cache_use_by_route(const time_window& window) const {
  return impl_->query<std::vector<cache_use>>([&](sql_connection& db) {
    std::vector<cache_use> out;
    auto s = db.prepare(
        "SELECT route, provider, model, SUM(input + cache_read + cache_write), SUM(cache_read) "
        "FROM generations WHERE outcome = 'ok' AND estimated = 0 AND created_ms >= ? AND "
        "created_ms < ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    s->bind(1, unix_ms(window.from)).bind(2, unix_ms(window.to));
    while (s->step())
      out.push_back({s->text(0), s->text(1), s->text(2), s->uint64(3), s->uint64(4)});
    return out;
  });
}

result<daily_data> ledger::series(const time_window& window, std::chrono::seconds bucket,
                                  unsigned top, dimension by) const {
  return impl_->query<daily_data>([&](sql_connection& db) {
    daily_data out;
    out.top = top;
    out.by = by;
    const std::int64_t width = std::max<std::int64_t>(bucket.count(), 3600);
    std::int64_t start = unix_seconds(window.from), end = unix_seconds(window.to);
    const auto buckets =
        static_cast<std::size_t>(std::max<std::int64_t>(0, (end - start + width - 1) / width));
    // Daily buckets are UTC days, the last one the day the window ends in (a 7d window ending
    // at 15:00 shows today, not the day that started 24 hours ago).
    if (width % 86400 == 0 && buckets > 0) {
      end = (end - 1) / 86400 * 86400 + 86400;
      start = end - width * static_cast<std::int64_t>(buckets);
    }
    out.days = static_cast<unsigned>(buckets);
    std::vector<std::pair<std::string, std::map<std::string, std::uint64_t>>> per_bucket;
    for (std::size_t i = 0; i < buckets; ++i) {
      const time_point at =
          time_point(std::chrono::seconds(start + width * static_cast<std::int64_t>(i)));
      per_bucket.push_back({width % 86400 == 0 ? format_day(at) : format_iso8601(at), {}});
    }
    const figures_source src = source_of(by);
    auto s = db.prepare(std::string("SELECT (") + src.hour + " - ?) / ?, " + group_expression(by) +
                        ", SUM(input + cache_read + cache_write + output + reasoning), " +
                        src.estimated + " FROM " + src.table + " WHERE " + src.window +
                        " GROUP BY 1, 2");
    s->bind(1, start).bind(2, width).bind(3, start).bind(4, end);
    std::vector<std::uint64_t> estimated(per_bucket.size(), 0);
    while (s->step()) {
      auto i = static_cast<std::size_t>(s->int64(0));
      if (i >= per_bucket.size()) continue;
      per_bucket[i].second[s->text(1)] += s->uint64(2);
      estimated[i] += s->uint64(3);
    }
    out.series = top_n_series(per_bucket, top);
    for (std::size_t i = 0; i < out.series.size() && i < estimated.size(); ++i)
      out.series[i].estimated_tokens = estimated[i];
    return out;
  });
}

result<std::optional<usage_event>> ledger::generation(const std::string& id,
                                                      const std::optional<std::string>& key) const {
  return impl_->query<std::optional<usage_event>>(
      [&](sql_connection& db) -> std::optional<usage_event> {
        // Meridian's own id names one record; a client's id may name several (retries reuse
        // it): the newest of those the caller may see.
        auto s = db.prepare(std::string(R"sql(
SELECT request_id, key, route, provider, model, author, region, input, cache_read, cache_write,
       output, reasoning, cost_usd, energy_kwh, electricity_usd, latency_ms, ttft_ms, outcome,
       status, fallback_index, estimated, created_ms, client_request_id, session, app, task,
       language
FROM generations WHERE (request_id = ? OR client_request_id = ?))sql") +
                            (key ? " AND key = ?" : "") +
                            " ORDER BY (request_id = ?) DESC, created_ms DESC LIMIT 1");
        s->bind(1, id).bind(2, id);
        int next = 3;
        if (key) s->bind(next++, *key);
        s->bind(next, id);
        if (!s->step()) return std::nullopt;
        usage_event e;
        e.request_id = s->text(0);
        e.key = s->text(1);
        e.route = s->text(2);
        e.provider = s->text(3);
        e.model = s->text(4);
        e.author = s->text(5);
        e.region = s->text(6);
        e.tokens = {s->uint64(7), s->uint64(8), s->uint64(9), s->uint64(10), s->uint64(11)};
        e.cost_usd = s->real(12);
        e.energy_kwh = s->real(13);
        e.electricity_usd = s->real(14);
        e.latency_ms = s->real(15);
        if (!s->is_null(16)) e.ttft_ms = s->real(16);
        e.outcome = s->text(17);
        e.status = static_cast<int>(s->int64(18));
        e.fallback_index = static_cast<unsigned>(s->int64(19));
        e.estimated = s->int64(20) != 0;
        e.time = time_point(milliseconds(s->int64(21)));
        e.client_request_id = s->text(22);
        e.session = s->text(23);
        e.app = s->text(24);
        e.task = s->text(25);
        e.language = s->text(26);
        s->reset();
        return e;
      });
}

result<bool> ledger::add_key(const stored_key& key) {
  if (key.name.empty()) return query_error{"name", "a key needs a name"};
  if (!lowercase_hex(key.key_sha256, 64))
    return query_error{"key_sha256", "must be 64 lowercase hex digits"};
  return impl_->administer<bool>([&](sql_connection& db) {
    // Race-free between gateways: the partial unique index decides, not a prior SELECT.
    auto s = db.prepare(R"sql(
INSERT INTO keys (name, key_sha256, spec, created_ms, revoked_ms) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) WHERE revoked_ms IS NULL DO NOTHING RETURNING id)sql");
    s->bind(1, key.name).bind(2, key.key_sha256).bind(3, key.spec).bind(4, key.created_ms);
    s->bind(5, key.revoked_ms);
    bool inserted = s->step();
    s->reset();
    return inserted;
  });
}

result<bool> ledger::revoke_key(const std::string& name, time_point now) {
  return impl_->administer<bool>([&](sql_connection& db) {
    auto s = db.prepare(
        "UPDATE keys SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL RETURNING id");
    s->bind(1, unix_ms(now)).bind(2, name);
    bool revoked = s->step();
    while (s->step()) {
    }
    s->reset();
    return revoked;
  });
}

result<std::vector<stored_key>> ledger::keys() const {
  return impl_->query<std::vector<stored_key>>([&](sql_connection& db) {
    std::vector<stored_key> out;
    auto s = db.prepare(
        "SELECT name, key_sha256, spec, created_ms, revoked_ms FROM keys ORDER BY created_ms, id");
    while (s->step()) {
      stored_key k;
      k.name = s->text(0);
      k.key_sha256 = s->text(1);
      k.spec = s->text(2);
      k.created_ms = s->int64(3);
      if (!s->is_null(4)) k.revoked_ms = s->int64(4);
      out.push_back(std::move(k));
    }
    return out;
  });
}

result<double> ledger::key_spend(const std::string& key, time_point from, time_point to) const {
  return impl_->query<double>([&](sql_connection& db) {
    auto s = db.prepare(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM hourly WHERE key = ? AND hour >= ? AND hour < ?");
    s->bind(1, key).bind(2, unix_seconds(from)).bind(3, unix_seconds(to));
    return s->step() ? s->real(0) : 0.0;
  });
}

}  // namespace meridian::stats
