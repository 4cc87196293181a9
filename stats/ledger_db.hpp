// Internal to the ledger: the small database interface its writer and queries are written
// against once, with a SQLite implementation (ledger.cpp) and a libpq one (ledger_postgres.cpp).
// SQL uses `?` placeholders numbered by position; the libpq backend rewrites them to `$n`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace meridian::stats::detail {

// Internal only: caught at the flush and query boundaries and turned into reported errors.
struct sql_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class engine { sqlite, postgres };

// One prepared statement. step() runs it on the first call and then walks its rows; reset()
// makes it runnable again (bindings are replaced by the next binds).
class sql_statement {
 public:
  virtual ~sql_statement() = default;

  virtual void bind_int64(int i, std::int64_t v) = 0;
  virtual void bind_double(int i, double v) = 0;
  virtual void bind_text(int i, const std::string& v) = 0;
  virtual void bind_null(int i) = 0;
  // Text the caller keeps alive and unchanged until the statement is finalized or the parameter
  // bound again: SQLite then reads it in place instead of copying it (the ledger binds a dozen
  // strings per request). A backend that must copy does.
  virtual void bind_text_kept(int i, std::string_view v) { bind_text(i, std::string(v)); }
  // True while a row is available.
  virtual bool step() = 0;
  virtual void reset() = 0;

  virtual std::int64_t int64(int col) const = 0;
  virtual double real(int col) const = 0;
  virtual bool is_null(int col) const = 0;
  virtual std::string text(int col) const = 0;

  // Chainable binds by C++ type; an empty optional binds NULL.
  sql_statement& bind(int i, std::int64_t v) {
    bind_int64(i, v);
    return *this;
  }
  sql_statement& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
  sql_statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  sql_statement& bind(int i, double v) {
    bind_double(i, v);
    return *this;
  }
  sql_statement& bind(int i, const std::string& v) {
    bind_text(i, v);
    return *this;
  }
  // Binds `values` to parameters 1, 2, … in order, as bind() does, except that strings are
  // bound by bind_text_kept: read in place, so a temporary string (which would be gone by the
  // step) does not compile.
  template <class... T>
  sql_statement& bind_row(T&&... values) {
    static_assert(((!std::is_same_v<std::remove_cvref_t<T>, std::string> ||
                    std::is_lvalue_reference_v<T>)&&...),
                  "bind_row keeps strings: pass ones that outlive the statement's step");
    int i = 0;
    auto one = [&](const auto& v) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(v)>, std::string>)
        bind_text_kept(++i, v);
      else
        bind(++i, v);
    };
    (one(values), ...);
    return *this;
  }
  template <class T>
  sql_statement& bind(int i, const std::optional<T>& v) {
    if (v) return bind(i, *v);
    bind_null(i);
    return *this;
  }
  std::uint64_t uint64(int col) const { return static_cast<std::uint64_t>(int64(col)); }
  // Runs a statement that returns no rows (or whose rows are not wanted), ready for the next.
  // Inside a write transaction a backend may send it without waiting for its answer (libpq's
  // pipeline mode); its error, if any, is then thrown by a later call, at the latest commit().
  virtual void run() {
    step();
    reset();
  }
};

class sql_connection {
 public:
  virtual ~sql_connection() = default;
  virtual engine kind() const = 0;
  // One or more statements without parameters or results.
  virtual void exec(const std::string& sql) = 0;
  virtual std::unique_ptr<sql_statement> prepare(const std::string& sql) = 0;
  // A write transaction: SQLite takes the write lock at once (BEGIN IMMEDIATE).
  virtual void begin_write() = 0;
  // A read-only transaction seeing one snapshot.
  virtual void begin_read() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // False once the connection is broken or stuck in a transaction: drop it and reconnect.
  virtual bool healthy() const = 0;
  // Serializes schema migrations between processes inside the current write transaction
  // (SQLite's write lock already does; PostgreSQL takes a transaction-level advisory lock).
  virtual void lock_migrations() = 0;
};

// SQLite: `writer` opens (creating the file) in WAL mode; otherwise an existing file,
// query_only unless `admin` (the keys connection).
enum class sqlite_role { writer, reader, admin };
std::unique_ptr<sql_connection> open_sqlite(const std::string& path, sqlite_role role);
// PostgreSQL from a libpq URL or conninfo; the password comes from PGPASSWORD or ~/.pgpass.
std::unique_ptr<sql_connection> open_postgres(const std::string& url);

}  // namespace meridian::stats::detail
