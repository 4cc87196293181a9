// The ledger on PostgreSQL (stats.ledger: postgres://...), against the real server that
// scripts/services.sh starts: the same answers as SQLite for the same events, several ledgers
// writing one database at once, three processes' worth of first-time migrations racing, an
// unreachable server, a database that appears later, a failed flush rolled back and retried,
// and the stored keys.
// MERIDIAN_TEST_POSTGRES names the server; each test works in its own fresh database.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stats/ledger.hpp"
#include "tests/stats/response_store_checks.hpp"

using namespace meridian;
using namespace std::chrono;

namespace {

std::string server_url() {
  const char* url = std::getenv("MERIDIAN_TEST_POSTGRES");
  if (!url || !*url)
    FAIL(
        "MERIDIAN_TEST_POSTGRES is not set, so there is no PostgreSQL to test against: run the "
        "tests via scripts/test.sh, or first eval \"$(scripts/services.sh start)\" in this "
        "shell");
  return url;
}

// The server URL with another database name.
std::string with_database(const std::string& url, const std::string& name) {
  auto authority = url.find("://");
  auto slash = url.find('/', authority == std::string::npos ? 0 : authority + 3);
  auto query = url.find('?');
  std::string tail = query == std::string::npos ? "" : url.substr(query);
  return url.substr(0, slash == std::string::npos ? url.find('?') : slash) + "/" + name + tail;
}

// Runs SQL on the maintenance database (the one the URL names); fails the test on an error.
void admin_sql(const std::string& sql, const std::string& url = server_url()) {
  PGconn* conn = PQconnectdb(url.c_str());
  REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, PQerrorMessage(conn));
  PGresult* r = PQexec(conn, sql.c_str());
  auto status = PQresultStatus(r);
  std::string message = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  REQUIRE_MESSAGE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK),
                  sql << ": " << message);
}

// One value from a query on `url`.
std::string scalar(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, PQerrorMessage(conn));
  PGresult* r = PQexec(conn, sql.c_str());
  std::string out =
      PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "<error>";
  PQclear(r);
  PQfinish(conn);
  return out;
}

std::string fresh_name() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return "test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(rd() % 1000000);
}

// A database of its own for one test, dropped at the end (ctest runs tests in parallel).
struct pg_db {
  std::string name = fresh_name();
  std::string url;
  explicit pg_db(bool create = true) : url(with_database(server_url(), name)) {
    if (create) this->create();
  }
  void create() const { admin_sql("CREATE DATABASE " + name + " TEMPLATE template0"); }
  ~pg_db() {
    PGconn* conn = PQconnectdb(server_url().c_str());
    PQclear(PQexec(conn, ("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").c_str()));
    PQfinish(conn);
  }
};

struct temp_file {
  std::string path =
      (std::filesystem::temp_directory_path() / ("meridian-ledger-pgcmp-" + fresh_name() + ".db"))
          .string();
  ~temp_file() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

stats::ledger_options on_postgres(const std::string& url) {
  stats::ledger_options o;
  o.postgres = url;
  o.background = false;
  return o;
}

// 2026-11-10T12:00:00Z
const stats::time_point k_noon = sys_days(year(2026) / 11 / 10) + hours(12);

stats::usage_event event(std::string id, std::string provider, std::string model,
                         std::string region, std::uint64_t input, std::uint64_t output,
                         stats::time_point t) {
  stats::usage_event e;
  e.request_id = std::move(id);
  e.route = "auto";
  e.provider = std::move(provider);
  e.model = std::move(model);
  e.author = e.provider;
  e.region = std::move(region);
  e.tokens.input = input;
  e.tokens.output = output;
  e.cost_usd = static_cast<double>(input + output) / 1e6;
  e.energy_kwh = static_cast<double>(input + output) / 3e6;
  e.electricity_usd = e.energy_kwh * 0.1;
  e.latency_ms = 120.25;
  e.time = t;
  return e;
}

template <class T>
T ok(const stats::result<T>& r) {
  if (auto* err = std::get_if<stats::query_error>(&r)) FAIL("query failed: " << err->message);
  return std::get<T>(r);
}

stats::time_window window_ending(stats::time_point now, hours length) {
  auto end = floor<hours>(now) + hours(1);
  return {"custom", end - length, end};
}

stats::stored_key key(std::string name, char digest, std::int64_t created_ms) {
  return {std::move(name), std::string(64, digest), R"({"rpm":60})", created_ms, std::nullopt};
}

// One scenario, every answer it gives as JSON: the share in each dimension over two windows,
// the daily series, some generations and key spends. Runs the same on either engine.
nlohmann::json scenario(stats::ledger& book) {
  for (int i = 0; i < 300; ++i) {
    auto t = k_noon - minutes(i * 17);
    bool cn = i % 3 != 0;
    auto e = event("r" + std::to_string(i), cn ? "deepseek" : "openai",
                   cn ? "deepseek-chat" : "gpt-4o", cn ? "cn" : "us", 100 + i, 7 * i, t);
    e.key = i % 4 == 0 ? "batch" : "web";
    e.tokens.cache_read = i % 5;
    e.tokens.cache_write = i % 3;
    e.tokens.reasoning = i % 7;
    if (i % 50 == 0) {
      e.outcome = "error";
      e.status = 502;
    }
    if (i % 9 == 0) e.ttft_ms = 10.5 + i;
    e.estimated = i % 11 == 0;
    e.app = i % 3 == 0 ? "Cline" : "";
    e.task = i % 2 == 0 ? "code" : "chat";
    e.language = i % 4 == 0 ? "zh" : "en";
    e.uncached_cost_usd = e.cost_usd * 2;
    book.record(e);
    if (i % 7 == 0) {  // a fallback attempt of the same request, arriving first
      auto retry = e;
      retry.provider = "local";
      retry.model = "llama";
      retry.fallback_index = 1;
      book.record(retry);
    }
  }
  book.flush(k_noon - hours(40));  // retention counts from here: everything is kept
  book.record(event("late", "openai", "gpt-4o", "us", 5, 5, k_noon));
  book.flush(k_noon);  // and now generations older than 30 days would go (none are)

  nlohmann::json out;
  for (auto by : {stats::dimension::region, stats::dimension::provider, stats::dimension::model,
                  stats::dimension::author, stats::dimension::key, stats::dimension::app,
                  stats::dimension::task, stats::dimension::language})
    for (auto length : {hours(1), hours(24), hours(24 * 7)})
      out["share"].push_back(stats::share_json(ok(book.share(window_ending(k_noon, length), by))));
  out["daily"] = stats::daily_json(ok(book.daily(7, 2, stats::dimension::model, k_noon)));
  out["daily_app"] = stats::daily_json(ok(book.daily(7, 2, stats::dimension::app, k_noon)));
  for (const char* id : {"r0", "r7", "r9", "r100", "late", "missing"}) {
    auto g = ok(book.generation(id));
    out["generation"][id] = g ? stats::generation_json(*g) : nlohmann::json(nullptr);
  }
  auto day = floor<days>(k_noon);
  for (const char* k : {"web", "batch", "nobody"})
    out["spend"][k] = ok(book.key_spend(k, day - days(1), day + days(1)));
  return out;
}

// Equal JSON, numbers within a relative 1e-9 (the engines may sum doubles in another order).
void check_same(const nlohmann::json& a, const nlohmann::json& b, const std::string& where) {
  if (a.is_number() && b.is_number() && (a.is_number_float() || b.is_number_float())) {
    double x = a.get<double>(), y = b.get<double>();
    CHECK_MESSAGE(std::fabs(x - y) <= 1e-9 * std::max({1.0, std::fabs(x), std::fabs(y)}),
                  where << ": " << x << " vs " << y);
  } else if (a.is_object() && b.is_object()) {
    CHECK_MESSAGE(a.size() == b.size(), where << ": " << a.dump() << " vs " << b.dump());
    for (auto it = a.begin(); it != a.end(); ++it) {
      REQUIRE_MESSAGE(b.contains(it.key()), where << "." << it.key() << " missing");
      check_same(it.value(), b[it.key()], where + "." + it.key());
    }
  } else if (a.is_array() && b.is_array()) {
    REQUIRE_MESSAGE(a.size() == b.size(), where << ": " << a.dump() << " vs " << b.dump());
    for (std::size_t i = 0; i < a.size(); ++i)
      check_same(a[i], b[i], where + "[" + std::to_string(i) + "]");
  } else {
    CHECK_MESSAGE(a == b, where << ": " << a.dump() << " vs " << b.dump());
  }
}

// A loopback port nothing listens on.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("ledger postgres: the same events give the same answers as SQLite") {
  pg_db db;
  temp_file file;
  stats::ledger_options sqlite_options;
  sqlite_options.path = file.path;
  sqlite_options.background = false;
  stats::ledger on_sqlite(sqlite_options);
  stats::ledger on_pg(on_postgres(db.url));
  REQUIRE_MESSAGE(on_pg.last_error().empty(), on_pg.last_error());
  CHECK(on_pg.schema_version() == on_sqlite.schema_version());
  auto expected = scenario(on_sqlite);
  auto got = scenario(on_pg);
  CHECK(on_pg.last_error().empty());
  CHECK(on_pg.queued() == 0);
  // The scenario is not trivially empty, and the fallback's last attempt is the record kept.
  CHECK(expected["share"][2]["total"]["tokens"].get<std::uint64_t>() > 10000);
  CHECK(expected["generation"]["r7"]["provider"] == "local");
  CHECK(expected["spend"]["web"].get<double>() > 0);
  check_same(expected, got, "answers");
}

TEST_CASE("ledger postgres: concurrent writers on one database add up") {
  pg_db db;
  constexpr int writers = 3, per_writer = 400;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      auto o = on_postgres(db.url);
      o.background = true;
      o.flush_interval = milliseconds(5);
      stats::ledger book(o);
      for (int i = 0; i < per_writer; ++i) {
        // The same few buckets for every writer, so their upserts collide.
        auto e = event("w" + std::to_string(w) + "-" + std::to_string(i), "deepseek",
                       i % 2 ? "deepseek-chat" : "deepseek-reasoner", "cn", 10, 1,
                       k_noon - hours(i % 3));
        e.key = "shared";
        e.cost_usd = 0.125;
        book.record(e);
        if (i % 50 == 0) std::this_thread::sleep_for(milliseconds(2));
      }
      book.stop();
      if (!book.last_error().empty() || book.queued() != 0) ++failures;
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  stats::ledger reader(on_postgres(db.url));
  auto data = ok(reader.share(window_ending(k_noon, hours(24)), stats::dimension::region));
  REQUIRE(data.rows.size() == 1);
  CHECK(data.rows[0].current.requests == writers * per_writer);
  CHECK(data.rows[0].current.tokens.total() == writers * per_writer * 11);
  CHECK(ok(reader.key_spend("shared", k_noon - hours(24), k_noon + hours(1))) ==
        doctest::Approx(writers * per_writer * 0.125));
  CHECK(scalar(db.url, "SELECT COUNT(*) FROM generations") == std::to_string(writers * per_writer));
}

TEST_CASE("ledger postgres: three ledgers migrating an empty database at once") {
  pg_db db;
  constexpr int n = 3;
  std::latch start(n);
  std::vector<std::string> errors(n);
  std::vector<int> versions(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      stats::ledger book(on_postgres(db.url));
      errors[static_cast<std::size_t>(i)] = book.last_error();
      versions[static_cast<std::size_t>(i)] = book.schema_version();
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    CHECK_MESSAGE(errors[static_cast<std::size_t>(i)].empty(), errors[static_cast<std::size_t>(i)]);
    CHECK(versions[static_cast<std::size_t>(i)] == 6);
  }
  CHECK(scalar(db.url, "SELECT COUNT(*) || ':' || MAX(version) FROM schema_version") == "1:6");
  CHECK(scalar(db.url, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'") == "5");  // hourly, generations, keys, responses, schema_version
}

TEST_CASE("ledger postgres: an unreachable server is reported, never blocks or throws") {
  auto url = "postgres://meridian@127.0.0.1:" + std::to_string(closed_port()) + "/meridian";
  auto o = on_postgres(url);
  o.background = true;
  o.flush_interval = milliseconds(5);
  auto before = steady_clock::now();
  stats::ledger book(o);
  CHECK(book.write_errors() >= 1);
  CHECK(book.schema_version() == 0);
  for (int i = 0; i < 100; ++i)
    CHECK(book.record(event(std::to_string(i), "p", "m", "cn", 1, 0, k_noon)));
  CHECK(steady_clock::now() - before < seconds(2));
  CHECK_NOTHROW(book.flush(k_noon));
  CHECK(book.write_errors() >= 2);
  CHECK(book.last_error().find("PostgreSQL") != std::string::npos);
  CHECK(book.queued() == 100);  // kept for the next attempt
  auto failed = book.share(window_ending(k_noon, hours(1)), stats::dimension::region);
  REQUIRE(std::holds_alternative<stats::query_error>(failed));
  CHECK(std::get<stats::query_error>(failed).param.empty());
  CHECK(std::holds_alternative<stats::query_error>(book.generation("1")));
  CHECK(std::holds_alternative<stats::query_error>(book.keys()));
  CHECK(std::holds_alternative<stats::query_error>(book.add_key(key("k", 'a', 1))));
  CHECK(std::holds_alternative<stats::query_error>(book.key_spend("k", k_noon, k_noon)));
  CHECK_NOTHROW(book.stop());
}

TEST_CASE("ledger postgres: events wait for a database that appears later") {
  pg_db db(false);  // not created yet: every connection fails
  stats::ledger book(on_postgres(db.url));
  CHECK_FALSE(book.last_error().empty());
  book.record(event("a", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon));
  book.flush(k_noon);
  CHECK(book.queued() == 1);
  CHECK(std::holds_alternative<stats::query_error>(book.generation("a")));
  db.create();
  book.flush(k_noon);
  CHECK(book.last_error().empty());
  CHECK(book.queued() == 0);
  CHECK(book.schema_version() == 6);
  CHECK(ok(book.generation("a")).has_value());  // the reader reconnects too
}

TEST_CASE("ledger postgres: a failed flush rolls back whole and is retried with its events") {
  pg_db db;
  stats::ledger book(on_postgres(db.url));
  REQUIRE(book.last_error().empty());
  // Make one row of the batch fail after the hourly upserts went out in the same transaction.
  admin_sql("ALTER TABLE generations ADD CONSTRAINT no_bad CHECK (request_id <> 'bad')", db.url);
  for (int i = 0; i < 600; ++i)
    book.record(event(i == 450 ? "bad" : std::to_string(i), "deepseek", "deepseek-chat", "cn", 10,
                      0, k_noon - minutes(i)));
  book.flush(k_noon);
  CHECK(book.write_errors() == 1);
  CHECK(book.last_error().find("no_bad") != std::string::npos);
  CHECK(book.queued() == 600);
  auto window = window_ending(k_noon, hours(24));
  CHECK(ok(book.share(window, stats::dimension::region)).rows.empty());
  CHECK(scalar(db.url, "SELECT COUNT(*) FROM generations") == "0");

  admin_sql("ALTER TABLE generations DROP CONSTRAINT no_bad", db.url);
  book.flush(k_noon);
  CHECK(book.last_error().empty());
  CHECK(book.queued() == 0);
  auto data = ok(book.share(window, stats::dimension::region));
  REQUIRE(data.rows.size() == 1);
  CHECK(data.rows[0].current.requests == 600);
  CHECK(data.rows[0].current.tokens.total() == 6000);
  CHECK(ok(book.generation("bad")).has_value());
  // The same connection goes on writing.
  book.record(event("after", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon));
  book.flush(k_noon);
  CHECK(book.last_error().empty());
  CHECK(ok(book.generation("after")).has_value());
}

TEST_CASE("ledger postgres: stored keys, shared by every ledger on the database") {
  pg_db db;
  stats::ledger a(on_postgres(db.url)), b(on_postgres(db.url));
  CHECK(ok(a.add_key(key("web", 'a', 2000))));
  CHECK(ok(b.add_key(key("batch", 'b', 1000))));
  CHECK_FALSE(ok(b.add_key(key("web", 'c', 3000))));
  auto listed = ok(b.keys());
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == "batch");
  CHECK(listed[1].key_sha256 == std::string(64, 'a'));
  CHECK(listed[1].spec == R"({"rpm":60})");
  CHECK(listed[1].created_ms == 2000);
  CHECK_FALSE(listed[1].revoked_ms.has_value());
  CHECK(ok(b.revoke_key("web", k_noon)));
  CHECK_FALSE(ok(a.revoke_key("web", k_noon)));
  CHECK(ok(a.add_key(key("web", 'd', 4000))));
  listed = ok(a.keys());
  REQUIRE(listed.size() == 3);
  CHECK(listed[1].revoked_ms == duration_cast<milliseconds>(k_noon.time_since_epoch()).count());
  CHECK_FALSE(listed[2].revoked_ms.has_value());

  // Three gateways adding the same name at once: exactly one wins.
  std::vector<std::unique_ptr<stats::ledger>> books;
  for (int i = 0; i < 3; ++i) books.push_back(std::make_unique<stats::ledger>(on_postgres(db.url)));
  std::latch start(3);
  std::atomic<int> won{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto r = books[static_cast<std::size_t>(i)]->add_key(key("race", 'e', 5000 + i));
      if (std::holds_alternative<stats::query_error>(r))
        ++failed;
      else if (std::get<bool>(r))
        ++won;
    });
  for (auto& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(won == 1);

  // key_spend from the hourly buckets.
  auto e = event("s", "openai", "gpt-4o", "us", 1, 0, k_noon);
  e.key = "web";
  e.cost_usd = 2.5;
  a.record(e);
  a.flush(k_noon);
  CHECK(ok(b.key_spend("web", floor<days>(k_noon), k_noon + minutes(1))) == 2.5);
  CHECK(ok(b.key_spend("web", k_noon + hours(1), k_noon + hours(2))) == 0.0);
}

TEST_CASE("ledger postgres: client ids and key visibility read as on SQLite") {
  pg_db db;
  stats::ledger book(on_postgres(db.url));
  auto a = event("req_own_a", "deepseek", "deepseek-chat", "cn", 10, 1, k_noon);
  a.client_request_id = "shared-id";
  a.key = "team-a";
  auto b = event("req_own_b", "openai", "gpt-4o", "us", 20, 2, k_noon + std::chrono::seconds(1));
  b.client_request_id = "shared-id";
  b.key = "team-b";
  book.record(a);
  book.record(b);
  book.flush(k_noon);
  CHECK(ok(book.generation("shared-id"))->request_id == "req_own_b");
  CHECK(ok(book.generation("shared-id", std::string("team-a")))->request_id == "req_own_a");
  CHECK(ok(book.generation("req_own_a"))->client_request_id == "shared-id");
  CHECK_FALSE(ok(book.generation("req_own_b", std::string("team-a"))).has_value());
}

TEST_CASE("postgres ledger: stored responses are owned, removed, expired and capped as on SQLite") {
  pg_db db;
  stats::ledger book(on_postgres(db.url));  // migrates the fresh database
  REQUIRE(book.last_error().empty());
  stats::response_store_options o;
  o.postgres = db.url;
  o.retention = hours(1);
  o.max_bytes = 4096;
  stats::response_store store(o);
  stats::testing::check_response_store(store);
}
