// The ledger's PostgreSQL backend over libpq: text-format parameters and results, `?`
// placeholders rewritten to `$n`, pipelined writes, and a transaction-level advisory lock for
// migrations so that several gateways starting at once on an empty database migrate it once.
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stats/ledger_db.hpp"

namespace meridian::stats::detail {
namespace {

// Built-in type OIDs (pg_type.h is a server header).
constexpr Oid k_int8 = 20, k_text = 25, k_float8 = 701;
// pg_advisory_xact_lock key for migrations: "Meridian" in ASCII.
constexpr const char* k_migration_lock = "SELECT pg_advisory_xact_lock(5576447673158574446)";

std::string trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "unknown PostgreSQL error" : s;
}

// `?` -> `$1`, `$2`, ... outside quoted strings and identifiers.
std::string numbered_placeholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  char quote = 0;
  for (char c : sql) {
    if (quote) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += '$' + std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

struct result_closer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_closer>;

// Runs a parameterless command and throws unless it succeeded.
result_ptr checked(PGconn* conn, PGresult* raw) {
  result_ptr r(raw);
  auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw sql_error(trimmed(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn)));
  return r;
}

// Statements sent by run() inside a write transaction go out in libpq's pipeline mode, so a
// flush of thousands of rows costs a few round trips rather than one per row. Any other call on
// the connection first drains the pipeline (sync, read every result, leave pipeline mode) and
// throws the first error it carried.
class pg_connection final : public sql_connection {
 public:
  explicit pg_connection(const std::string& url) {
    // Keywords are applied in order and the URL's own settings come last, so they win.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {"5", "meridian", url.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_) throw sql_error("cannot allocate a PostgreSQL connection");
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = "cannot connect to PostgreSQL: " + trimmed(PQerrorMessage(conn_));
      PQfinish(conn_);
      throw sql_error(message);
    }
    // NOTICEs such as "relation already exists, skipping" are not for the gateway's stderr.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~pg_connection() override { PQfinish(conn_); }
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  engine kind() const override { return engine::postgres; }
  void exec(const std::string& sql) override {
    drain();
    checked(conn_, PQexec(conn_, sql.c_str()));
  }
  std::unique_ptr<sql_statement> prepare(const std::string& sql) override;
  void begin_write() override {
    exec("BEGIN");
    writing_ = true;
  }
  void begin_read() override { exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); }
  void commit() override {
    writing_ = false;
    exec("COMMIT");
  }
  void rollback() noexcept override {
    writing_ = false;
    try {
      drain();
    } catch (const std::exception&) {
      // the transaction is being abandoned anyway
    }
    PQclear(PQexec(conn_, "ROLLBACK"));
    // A failed pipeline may have skipped some of the prepares: start again from none.
    if (!prepared_.empty()) {
      prepared_.clear();
      PQclear(PQexec(conn_, "DEALLOCATE ALL"));
    }
  }
  bool healthy() const override {
    return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE &&
           PQpipelineStatus(conn_) == PQ_PIPELINE_OFF;
  }
  void lock_migrations() override { exec(k_migration_lock); }

  // Runs a statement now, with its result.
  result_ptr execute(const char* sql, int n, const Oid* types, const char* const* values) {
    drain();
    return checked(conn_, PQexecParams(conn_, sql, n, types, values, nullptr, nullptr, 0));
  }
  // Sends a statement whose result is not wanted: pipelined in a write transaction.
  void send(const char* sql, int n, const Oid* types, const char* const* values) {
    if (!writing_) {
      execute(sql, n, types, values);
      return;
    }
    if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF && PQenterPipelineMode(conn_) != 1)
      throw sql_error(trimmed(PQerrorMessage(conn_)));
    // Prepared once per connection: the server then parses and plans each text once.
    auto [it, added] = prepared_.try_emplace(sql, "meridian_" + std::to_string(prepared_.size()));
    if (added && PQsendPrepare(conn_, it->second.c_str(), sql, n, types) != 1) {
      prepared_.erase(it);
      throw sql_error(trimmed(PQerrorMessage(conn_)));
    }
    if (PQsendQueryPrepared(conn_, it->second.c_str(), n, values, nullptr, nullptr, 0) != 1)
      throw sql_error(trimmed(PQerrorMessage(conn_)));
    // Bounded, so neither side's socket buffer fills while the other is not reading.
    if (++in_flight_ >= 256) drain();
  }

 private:
  // Ends pipeline mode, if on, having read every result; throws the first error among them.
  void drain() {
    if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF) return;
    in_flight_ = 0;
    if (PQpipelineSync(conn_) != 1) throw sql_error(trimmed(PQerrorMessage(conn_)));
    std::string error;
    for (;;) {
      result_ptr r(PQgetResult(conn_));
      if (!r) {
        // NULL ends each statement's results; a broken connection gives nothing more.
        if (PQstatus(conn_) != CONNECTION_OK) {
          if (error.empty()) error = trimmed(PQerrorMessage(conn_));
          break;
        }
        continue;
      }
      auto status = PQresultStatus(r.get());
      if (status == PGRES_PIPELINE_SYNC) break;
      if (status == PGRES_FATAL_ERROR && error.empty())
        error = trimmed(PQresultErrorMessage(r.get()));
    }
    if (PQexitPipelineMode(conn_) != 1 && error.empty()) error = trimmed(PQerrorMessage(conn_));
    if (!error.empty()) throw sql_error(error);
  }

  PGconn* conn_ = nullptr;
  bool writing_ = false;  // inside begin_write(): run() may pipeline
  std::map<std::string, std::string, std::less<>> prepared_;  // SQL -> statement name
  int in_flight_ = 0;  // statements sent since the last drain
};

class pg_statement final : public sql_statement {
 public:
  pg_statement(pg_connection& conn, const std::string& sql)
      : conn_(conn), sql_(numbered_placeholders(sql)) {}

  void bind_int64(int i, std::int64_t v) override { set(i, std::to_string(v), k_int8); }
  void bind_double(int i, double v) override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    set(i, buf, k_float8);
  }
  void bind_text(int i, const std::string& v) override { set(i, v, k_text); }
  void bind_null(int i) override {
    slot(i);
    values_[static_cast<std::size_t>(i - 1)].reset();
  }

  bool step() override {
    if (!result_) {
      auto values = pointers();
      result_ = conn_.execute(sql_.c_str(), static_cast<int>(values.size()), types_.data(),
                              values.data());
      row_ = -1;
    }
    return ++row_ < PQntuples(result_.get());
  }
  void reset() override { result_.reset(); }
  void run() override {
    auto values = pointers();
    conn_.send(sql_.c_str(), static_cast<int>(values.size()), types_.data(), values.data());
  }

  std::int64_t int64(int col) const override {
    return std::strtoll(PQgetvalue(result_.get(), row_, col), nullptr, 10);
  }
  double real(int col) const override {
    return std::strtod(PQgetvalue(result_.get(), row_, col), nullptr);
  }
  bool is_null(int col) const override { return PQgetisnull(result_.get(), row_, col) != 0; }
  std::string text(int col) const override {
    return std::string(PQgetvalue(result_.get(), row_, col),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row_, col)));
  }

 private:
  std::vector<const char*> pointers() const {
    std::vector<const char*> values;
    values.reserve(values_.size());
    for (const auto& v : values_) values.push_back(v ? v->c_str() : nullptr);
    return values;
  }
  void slot(int i) {
    auto n = static_cast<std::size_t>(i);
    if (values_.size() < n) {
      values_.resize(n);
      types_.resize(n, 0);
    }
  }
  void set(int i, std::string v, Oid type) {
    slot(i);
    values_[static_cast<std::size_t>(i - 1)] = std::move(v);
    types_[static_cast<std::size_t>(i - 1)] = type;
  }

  pg_connection& conn_;
  std::string sql_;
  std::vector<std::optional<std::string>> values_;
  std::vector<Oid> types_;  // 0 (inferred) for a parameter only ever bound to NULL
  result_ptr result_;
  int row_ = -1;
};

std::unique_ptr<sql_statement> pg_connection::prepare(const std::string& sql) {
  return std::make_unique<pg_statement>(*this, sql);
}

}  // namespace

std::unique_ptr<sql_connection> open_postgres(const std::string& url) {
  return std::make_unique<pg_connection>(url);
}

}  // namespace meridian::stats::detail
