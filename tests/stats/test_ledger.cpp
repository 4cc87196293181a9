// The SQLite ledger: exact sums, growth, daily top-N, retention, migrations (and the upgrade of
// a version-1 file), durability across a reopen, a failing path, the bounded queue, the storage
// thread, the stored keys and key_spend. test_ledger_postgres.cpp runs the same against
// PostgreSQL.
#include <doctest/doctest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "stats/ledger.hpp"

using namespace meridian;
using namespace std::chrono;

namespace {

// A fresh database path, removed with its WAL files at the end of the test.
struct temp_db {
  std::string path;
  explicit temp_db(const std::string& name)
      : path((std::filesystem::temp_directory_path() /
              ("meridian-ledger-" + std::to_string(::getpid()) + "-" + name + ".db"))
                 .string()) {
    remove();
  }
  ~temp_db() { remove(); }
  void remove() const {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

stats::ledger_options manual(const std::string& path) {
  stats::ledger_options o;
  o.path = path;
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
  e.energy_kwh = static_cast<double>(input + output) / 1e6;
  e.electricity_usd = e.energy_kwh * 0.1;
  e.latency_ms = 120;
  e.time = t;
  return e;
}

template <class T>
const T& ok(const stats::result<T>& r) {
  if (auto* err = std::get_if<stats::query_error>(&r)) FAIL("query failed: " << err->message);
  return std::get<T>(r);
}

const stats::share_row* row(const stats::share_data& d, const std::string& key) {
  for (const auto& r : d.rows)
    if (r.key == key) return &r;
  return nullptr;
}

stats::time_window window_ending(stats::time_point now, hours length) {
  auto end = floor<hours>(now) + hours(1);
  return {"custom", end - length, end};
}

}  // namespace

TEST_CASE("ledger: sums are exact across hours and days") {
  temp_db db("sums");
  stats::ledger book(manual(db.path));
  CHECK(book.last_error().empty());
  std::uint64_t cn_tokens = 0, us_tokens = 0, cn_requests = 0;
  double cn_cost = 0;
  for (int i = 0; i < 300; ++i) {
    // Spread over the last three days, several events per hour bucket.
    auto t = k_noon - minutes(i * 13);
    bool cn = i % 3 != 0;
    std::uint64_t input = 100 + i, output = 7 * i;
    auto e = event("r" + std::to_string(i), cn ? "deepseek" : "openai",
                   cn ? "deepseek-chat" : "gpt-4o", cn ? "cn" : "us", input, output, t);
    e.tokens.cache_read = i % 5;
    e.tokens.reasoning = i % 7;
    std::uint64_t all = input + output + i % 5 + i % 7;
    (cn ? cn_tokens : us_tokens) += all;
    cn_requests += cn ? 1 : 0;
    cn_cost += cn ? e.cost_usd : 0;
    if (i % 50 == 0) e.outcome = "error";
    CHECK(book.record(e));
  }
  book.flush(k_noon);
  CHECK(book.queued() == 0);

  auto data = ok(book.share(window_ending(k_noon, hours(24 * 7)), stats::dimension::region));
  REQUIRE(data.rows.size() == 2);
  CHECK(row(data, "cn")->current.tokens.total() == cn_tokens);
  CHECK(row(data, "us")->current.tokens.total() == us_tokens);
  CHECK(row(data, "cn")->current.requests == cn_requests);
  CHECK(row(data, "cn")->current.errors + row(data, "us")->current.errors == 6);
  CHECK(row(data, "cn")->current.cost_usd == doctest::Approx(cn_cost));

  auto by_model = ok(book.share(window_ending(k_noon, hours(24 * 7)), stats::dimension::model));
  REQUIRE(row(by_model, "deepseek/deepseek-chat") != nullptr);
  CHECK(row(by_model, "deepseek/deepseek-chat")->current.tokens.total() == cn_tokens);

  // One hour holds exactly the events whose time falls in it.
  auto hour = ok(book.share(window_ending(k_noon, hours(1)), stats::dimension::provider));
  std::uint64_t in_hour = 0;
  for (int i = 0; i < 300; ++i)
    if (floor<hours>(k_noon - minutes(i * 13)) == floor<hours>(k_noon))
      in_hour += 100 + i + 7 * i + i % 5 + i % 7;
  std::uint64_t got = 0;
  for (const auto& r : hour.rows) got += r.current.tokens.total();
  CHECK(got == in_hour);
}

TEST_CASE("ledger: growth compares with the window just before") {
  temp_db db("growth");
  stats::ledger book(manual(db.path));
  book.record(event("a", "deepseek", "deepseek-chat", "cn", 1000, 0, k_noon - hours(30)));
  book.record(event("b", "deepseek", "deepseek-chat", "cn", 1500, 0, k_noon - hours(2)));
  book.record(event("c", "openai", "gpt-4o", "us", 10, 0, k_noon - hours(1)));
  book.flush(k_noon);
  auto data = ok(book.share(window_ending(k_noon, hours(24)), stats::dimension::region));
  CHECK(row(data, "cn")->previous_tokens == 1000);
  CHECK(row(data, "cn")->current.tokens.total() == 1500);
  CHECK(row(data, "us")->previous_tokens == 0);
  auto json = stats::share_json(data);
  CHECK(json["rows"][0]["growth"].get<double>() == doctest::Approx(0.5));
  CHECK(json["rows"][1]["growth"].is_null());
}

TEST_CASE("ledger: daily top-N with other, and days without traffic") {
  temp_db db("daily");
  stats::ledger book(manual(db.path));
  auto day = [](int back) { return k_noon - hours(24 * back); };
  book.record(event("1", "deepseek", "deepseek-chat", "cn", 500, 0, day(0)));
  book.record(event("2", "deepseek", "deepseek-chat", "cn", 500, 0, day(2)));
  book.record(event("3", "openai", "gpt-4o", "us", 300, 0, day(0)));
  book.record(event("4", "local", "llama", "local", 5, 0, day(0)));
  book.record(event("5", "local", "llama", "local", 7, 0, day(2) - hours(11)));
  book.record(event("6", "local", "llama", "local", 9, 0, day(9)));  // outside 5 days
  book.flush(k_noon);
  auto d = ok(book.daily(5, 2, stats::dimension::model, k_noon));
  REQUIRE(d.series.size() == 5);
  CHECK(d.series.front().day == "2026-11-06");
  CHECK(d.series.back().day == "2026-11-10");
  CHECK(d.series[1].rows.empty());
  auto json = stats::daily_json(d);
  CHECK(json["series"][4]["rows"] ==
        nlohmann::json::parse(R"([{"key":"deepseek/deepseek-chat","tokens":500},
                                  {"key":"openai/gpt-4o","tokens":300},
                                  {"key":"other","tokens":5}])"));
  CHECK(json["series"][2]["rows"] ==
        nlohmann::json::parse(
            R"([{"key":"deepseek/deepseek-chat","tokens":500},{"key":"other","tokens":7}])"));
}

TEST_CASE("ledger: series buckets any window by the hour, labelled by time") {
  temp_db db("series");
  stats::ledger book(manual(db.path));
  book.record(event("1", "deepseek", "deepseek-chat", "cn", 500, 0, k_noon - hours(2)));
  book.record(event("2", "openai", "gpt-4o", "us", 300, 0, k_noon - hours(2)));
  book.record(event("3", "openai", "gpt-4o", "us", 40, 0, k_noon));
  book.record(event("4", "openai", "gpt-4o", "us", 9, 0, k_noon - hours(30)));  // outside
  book.flush(k_noon);
  auto window = window_ending(k_noon, hours(24));
  auto s = ok(book.series(window, hours(1), 8, stats::dimension::model));
  REQUIRE(s.series.size() == 24);
  CHECK(s.series.back().day == stats::format_iso8601(k_noon));
  CHECK(s.series[21].day == stats::format_iso8601(k_noon - hours(2)));
  REQUIRE(s.series[21].rows.size() == 2);
  CHECK(s.series[21].rows[0].key == "deepseek/deepseek-chat");
  CHECK(s.series[21].rows[0].tokens == 500);
  CHECK(s.series.back().rows.at(0).tokens == 40);
  std::uint64_t total = 0;
  for (const auto& b : s.series)
    for (const auto& r : b.rows) total += r.tokens;
  CHECK(total == 840);
  // Daily buckets carry the day.
  auto days = ok(book.series(window_ending(k_noon, hours(24 * 7)), hours(24), 8,
                             stats::dimension::region));
  CHECK(days.series.size() == 7);
  CHECK(days.series.back().day == "2026-11-10");  // the day the window ends in
  CHECK(days.series.back().rows.at(0).tokens + days.series.back().rows.at(1).tokens == 840);
}

TEST_CASE("ledger: retention deletes old generations and keeps hourly totals") {
  temp_db db("retention");
  auto o = manual(db.path);
  o.retention = hours(24);
  stats::ledger book(o);
  book.record(event("old", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon - hours(30)));
  book.record(event("new", "deepseek", "deepseek-chat", "cn", 20, 0, k_noon - hours(2)));
  book.flush(k_noon - hours(20));  // both are within a day then
  CHECK(ok(book.generation("old")).has_value());
  book.flush(k_noon);
  CHECK_FALSE(ok(book.generation("old")).has_value());
  CHECK(ok(book.generation("new")).has_value());
  auto data = ok(book.share(window_ending(k_noon, hours(48)), stats::dimension::region));
  CHECK(row(data, "cn")->current.tokens.total() == 30);
}

TEST_CASE("ledger: a generation keeps every field and its last attempt") {
  temp_db db("generation");
  stats::ledger book(manual(db.path));
  auto first = event("req-1", "openai", "gpt-4o", "us", 0, 0, k_noon);
  first.outcome = "error";
  first.status = 503;
  auto second = event("req-1", "deepseek", "deepseek-chat", "cn", 11, 22, k_noon + seconds(1));
  second.fallback_index = 1;
  second.key = "team-web";
  second.tokens.cache_write = 3;
  second.tokens.reasoning = 4;
  second.ttft_ms = 35.5;
  second.estimated = true;
  book.record(second);
  book.record(first);  // an earlier attempt arriving later must not win
  book.flush(k_noon);
  auto g = ok(book.generation("req-1"));
  REQUIRE(g.has_value());
  CHECK(g->provider == "deepseek");
  CHECK(g->key == "team-web");
  CHECK(g->route == "auto");
  CHECK(g->tokens.total() == 11 + 22 + 3 + 4);
  CHECK(g->fallback_index == 1);
  CHECK(g->ttft_ms == 35.5);
  CHECK(g->estimated);
  CHECK(g->status == 200);
  CHECK(g->time == second.time);
  CHECK_FALSE(ok(book.generation("missing")).has_value());
}

TEST_CASE("ledger: a reused client id never overwrites a record, and keys see only their own") {
  temp_db db("client_ids");
  stats::ledger book(manual(db.path));
  auto a = event("req_own_a", "deepseek", "deepseek-chat", "cn", 10, 1, k_noon);
  a.client_request_id = "shared-id";
  a.key = "team-a";
  auto b = event("req_own_b", "openai", "gpt-4o", "us", 20, 2, k_noon + seconds(1));
  b.client_request_id = "shared-id";  // another tenant (or a retry) sends the same id
  b.key = "team-b";
  book.record(a);
  book.record(b);
  book.flush(k_noon);
  // Both records exist; each is found by Meridian's id.
  CHECK(ok(book.generation("req_own_a"))->provider == "deepseek");
  CHECK(ok(book.generation("req_own_b"))->provider == "openai");
  // By the client's id: the newest, or the newest a given key may see.
  CHECK(ok(book.generation("shared-id"))->request_id == "req_own_b");
  CHECK(ok(book.generation("shared-id", std::string("team-a")))->request_id == "req_own_a");
  CHECK(ok(book.generation("shared-id", std::string("team-a")))->client_request_id == "shared-id");
  CHECK_FALSE(ok(book.generation("req_own_b", std::string("team-a"))).has_value());
  CHECK_FALSE(ok(book.generation("req_own_a", std::string(""))).has_value());
}

TEST_CASE("ledger: a generation keeps the client's session") {
  temp_db db("sessions");
  stats::ledger book(manual(db.path));
  auto a = event("req_s1", "deepseek", "deepseek-chat", "cn", 10, 1, k_noon);
  a.session = "3f2c9a1e-claude-code";
  book.record(a);
  book.record(event("req_s2", "openai", "gpt-4o", "us", 20, 2, k_noon));
  book.flush(k_noon);
  CHECK(ok(book.generation("req_s1"))->session == "3f2c9a1e-claude-code");
  CHECK(ok(book.generation("req_s2"))->session.empty());
  CHECK(stats::generation_json(*ok(book.generation("req_s1")))["session"] ==
        "3f2c9a1e-claude-code");
  CHECK(stats::generation_json(*ok(book.generation("req_s2")))["session"].is_null());
}

TEST_CASE("ledger: every aggregate says how much of it was estimated") {
  temp_db db("estimated");
  stats::ledger book(manual(db.path));
  book.record(event("measured", "deepseek", "deepseek-chat", "cn", 600, 200, k_noon));
  auto guessed = event("guessed", "deepseek", "deepseek-chat", "cn", 150, 50, k_noon);
  guessed.estimated = true;
  book.record(guessed);
  book.record(event("other", "openai", "gpt-4o", "us", 100, 0, k_noon));
  book.flush(k_noon);
  auto data = ok(book.share(window_ending(k_noon, hours(1)), stats::dimension::provider));
  REQUIRE(row(data, "deepseek"));
  CHECK(row(data, "deepseek")->current.estimated_tokens == 200);
  CHECK(row(data, "openai")->current.estimated_tokens == 0);
  auto j = stats::share_json(data);
  CHECK(j["total"]["estimated_tokens"] == 200);
  CHECK(j["total"]["estimated_share"].get<double>() == doctest::Approx(200.0 / 1100));
  CHECK(j["rows"][0]["key"] == "deepseek");
  CHECK(j["rows"][0]["estimated_share"].get<double>() == doctest::Approx(0.2));
  auto daily = stats::daily_json(ok(book.daily(1, 5, stats::dimension::provider, k_noon)));
  CHECK(daily["series"][0]["estimated_tokens"] == 200);
}

TEST_CASE("ledger: restart keeps the shares and runs migrations once") {
  temp_db db("restart");
  auto window = window_ending(k_noon, hours(24));
  nlohmann::json before;
  {
    stats::ledger book(manual(db.path));
    CHECK(book.schema_version() == 6);
    book.record(event("a", "deepseek", "deepseek-chat", "cn", 610, 0, k_noon));
    book.record(event("b", "openai", "gpt-4o", "us", 310, 0, k_noon));
    book.record(event("c", "local", "llama", "local", 80, 0, k_noon));
    before = stats::share_json(ok(book.share(window, stats::dimension::region)));
  }  // the destructor writes what is queued
  stats::ledger again(manual(db.path));
  CHECK(again.last_error().empty());
  CHECK(again.schema_version() == 6);
  auto after = stats::share_json(ok(again.share(window, stats::dimension::region)));
  CHECK(after["rows"][0]["share"].get<double>() == 0.61);
  CHECK(after["total"]["tokens"] == 1000);
  CHECK(before["rows"].empty());  // nothing was flushed before the restart
}

TEST_CASE("ledger: record after stop does nothing") {
  temp_db db("stop");
  stats::ledger book(manual(db.path));
  book.record(event("a", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon));
  book.stop();
  CHECK_FALSE(book.record(event("b", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon)));
  CHECK(book.queued() == 0);
  CHECK(book.dropped() == 0);
  CHECK(ok(book.generation("a")).has_value());
  CHECK_FALSE(ok(book.generation("b")).has_value());
}

TEST_CASE("ledger: an unwritable path is reported, never thrown, and retried") {
  auto dir = std::filesystem::temp_directory_path() /
             ("meridian-ledger-dir-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto path = (dir / "ledger.db").string();
  stats::ledger book(manual(path));
  CHECK_FALSE(book.last_error().empty());
  CHECK(book.write_errors() == 1);
  CHECK(book.record(event("a", "deepseek", "deepseek-chat", "cn", 10, 0, k_noon)));
  CHECK_NOTHROW(book.flush(k_noon));
  CHECK(book.write_errors() == 2);
  CHECK(book.queued() == 1);
  auto failed = book.share(window_ending(k_noon, hours(1)), stats::dimension::region);
  REQUIRE(std::holds_alternative<stats::query_error>(failed));
  CHECK(std::get<stats::query_error>(failed).param.empty());

  // Once the directory exists the same events are written.
  std::filesystem::create_directories(dir);
  book.flush(k_noon);
  CHECK(book.last_error().empty());
  CHECK(book.queued() == 0);
  CHECK(ok(book.generation("a")).has_value());
  book.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("ledger: a full queue drops and counts") {
  temp_db db("full");
  auto o = manual(db.path);
  o.max_queue = 3;
  stats::ledger book(o);
  int accepted = 0;
  for (int i = 0; i < 5; ++i)
    accepted += book.record(event(std::to_string(i), "p", "m", "cn", 1, 0, k_noon)) ? 1 : 0;
  CHECK(accepted == 3);
  CHECK(book.dropped() == 2);
  book.flush(k_noon);
  CHECK(book.record(event("5", "p", "m", "cn", 1, 0, k_noon)));
}

TEST_CASE("ledger: the storage thread flushes on its own") {
  temp_db db("thread");
  stats::ledger_options o;
  o.path = db.path;
  o.flush_interval = milliseconds(2);
  stats::ledger book(o);
  auto now = system_clock::now();
  book.record(event("t", "deepseek", "deepseek-chat", "cn", 10, 0, now));
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
    seen = ok(book.generation("t")).has_value();
  }
  CHECK(seen);
}

namespace {

std::string sha(char c) {
  return std::string(64, c);
}

stats::stored_key key(std::string name, char digest, std::int64_t created_ms,
                      std::string spec = R"({"rpm":60})") {
  return {std::move(name), sha(digest), std::move(spec), created_ms, std::nullopt};
}

// Version 1 of the schema exactly as its migration created it: a file from the previous build.
constexpr const char* k_schema_v1 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE hourly (
  hour INTEGER NOT NULL, key TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
  author TEXT NOT NULL, region TEXT NOT NULL, requests INTEGER NOT NULL,
  errors INTEGER NOT NULL, input INTEGER NOT NULL, cache_read INTEGER NOT NULL,
  cache_write INTEGER NOT NULL, output INTEGER NOT NULL, reasoning INTEGER NOT NULL,
  cost_usd REAL NOT NULL, energy_kwh REAL NOT NULL, electricity_usd REAL NOT NULL,
  PRIMARY KEY (hour, key, provider, model, author, region)
) WITHOUT ROWID;
CREATE TABLE generations (
  request_id TEXT PRIMARY KEY, key TEXT NOT NULL, route TEXT NOT NULL, provider TEXT NOT NULL,
  model TEXT NOT NULL, author TEXT NOT NULL, region TEXT NOT NULL, input INTEGER NOT NULL,
  cache_read INTEGER NOT NULL, cache_write INTEGER NOT NULL, output INTEGER NOT NULL,
  reasoning INTEGER NOT NULL, cost_usd REAL NOT NULL, energy_kwh REAL NOT NULL,
  electricity_usd REAL NOT NULL, latency_ms REAL NOT NULL, ttft_ms REAL, outcome TEXT NOT NULL,
  status INTEGER NOT NULL, fallback_index INTEGER NOT NULL, estimated INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX generations_created ON generations (created_ms);
)sql";

}  // namespace

TEST_CASE("ledger: stored keys are added, listed oldest first and revoked") {
  temp_db db("keys");
  stats::ledger book(manual(db.path));
  CHECK(ok(book.add_key(key("web", 'a', 2000))));
  CHECK(ok(book.add_key(key("batch", 'b', 1000, R"({"budget":{"usd":5,"period":"day"}})"))));
  CHECK_FALSE(ok(book.add_key(key("web", 'c', 3000))));  // an active key has the name
  auto listed = ok(book.keys());
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == "batch");
  CHECK(listed[0].spec == R"({"budget":{"usd":5,"period":"day"}})");
  CHECK(listed[0].created_ms == 1000);
  CHECK(listed[1].name == "web");
  CHECK(listed[1].key_sha256 == sha('a'));
  CHECK_FALSE(listed[1].revoked_ms.has_value());

  CHECK(ok(book.revoke_key("web", k_noon)));
  CHECK_FALSE(ok(book.revoke_key("web", k_noon)));  // already revoked
  CHECK_FALSE(ok(book.revoke_key("nobody", k_noon)));
  CHECK(ok(book.add_key(key("web", 'd', 4000))));  // the name is free again
  listed = ok(book.keys());
  REQUIRE(listed.size() == 3);
  CHECK(listed[1].name == "web");
  CHECK(listed[1].revoked_ms == duration_cast<milliseconds>(k_noon.time_since_epoch()).count());
  CHECK(listed[2].key_sha256 == sha('d'));
  CHECK_FALSE(listed[2].revoked_ms.has_value());

  // Bad input is a query_error naming the field, not a row.
  auto bad = book.add_key(key("x", 'A', 1));
  REQUIRE(std::holds_alternative<stats::query_error>(bad));
  CHECK(std::get<stats::query_error>(bad).param == "key_sha256");
  CHECK(std::holds_alternative<stats::query_error>(book.add_key(key("", 'a', 1))));

  // Another ledger on the same file sees them (as another gateway on a shared database would).
  stats::ledger other(manual(db.path));
  CHECK(ok(other.keys()).size() == 3);
  CHECK_FALSE(ok(other.add_key(key("batch", 'e', 5000))));
}

TEST_CASE("ledger: key_spend sums a key's hourly costs from one time up to another") {
  temp_db db("spend");
  stats::ledger book(manual(db.path));
  auto day = floor<days>(k_noon);
  auto keyed = [&](std::string id, std::string k, double usd, stats::time_point t) {
    auto e = event(std::move(id), "openai", "gpt-4o", "us", 10, 0, t);
    e.key = std::move(k);
    e.cost_usd = usd;
    return e;
  };
  book.record(keyed("1", "web", 0.25, day + minutes(5)));
  book.record(keyed("2", "web", 0.5, k_noon + minutes(30)));
  book.record(keyed("3", "batch", 4.0, k_noon));
  book.record(keyed("4", "web", 8.0, day - minutes(1)));        // the day before
  book.record(keyed("5", "web", 16.0, day + days(1)));          // the day after
  CHECK(ok(book.key_spend("web", day, day + days(1))) == 0.0);  // not flushed yet
  book.flush(k_noon);
  CHECK(ok(book.key_spend("web", day, day + days(1))) == 0.75);
  CHECK(ok(book.key_spend("web", day, k_noon + minutes(31))) == 0.75);  // includes this hour
  CHECK(ok(book.key_spend("web", day, k_noon)) == 0.25);
  CHECK(ok(book.key_spend("web", day - days(1), day + days(2))) == 24.75);
  CHECK(ok(book.key_spend("batch", day, day + days(1))) == 4.0);
  CHECK(ok(book.key_spend("nobody", day, day + days(1))) == 0.0);
}

TEST_CASE("ledger: a version-1 file is upgraded and keeps its data") {
  temp_db db("upgrade");
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.path.c_str(), &raw) == SQLITE_OK);
    std::string sql = std::string(k_schema_v1) + "INSERT INTO hourly VALUES (" +
                      std::to_string(duration_cast<seconds>(k_noon.time_since_epoch()).count()) +
                      ", 'web', 'openai', 'gpt-4o', 'openai', 'us', 2, 0, 100, 0, 0, 50, 0, "
                      "1.5, 0.001, 0.0001);";
    char* message = nullptr;
    int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &message);
    INFO((message ? message : ""));
    sqlite3_free(message);
    sqlite3_close(raw);
    REQUIRE(rc == SQLITE_OK);
  }
  stats::ledger book(manual(db.path));
  CHECK(book.last_error().empty());
  CHECK(book.schema_version() == 6);
  auto data = ok(book.share(window_ending(k_noon, hours(1)), stats::dimension::key));
  REQUIRE(row(data, "web") != nullptr);
  CHECK(row(data, "web")->current.tokens.total() == 150);
  CHECK(ok(book.key_spend("web", floor<days>(k_noon), k_noon + hours(1))) == 1.5);
  CHECK(ok(book.keys()).empty());
  CHECK(ok(book.add_key(key("web", 'a', 1))));
  book.record(event("new", "openai", "gpt-4o", "us", 10, 0, k_noon));
  book.flush(k_noon);
  CHECK(book.last_error().empty());
  data = ok(book.share(window_ending(k_noon, hours(1)), stats::dimension::region));
  CHECK(row(data, "us")->current.tokens.total() == 160);
}

TEST_CASE("ledger: a file from a newer build is refused, not changed") {
  temp_db db("newer");
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.path.c_str(), &raw) == SQLITE_OK);
    sqlite3_exec(raw,
                 "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                 "INSERT INTO schema_version VALUES (99);",
                 nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  stats::ledger book(manual(db.path));
  CHECK(book.last_error().find("newer than this build") != std::string::npos);
  CHECK(book.schema_version() == 0);
}

TEST_CASE("ledger: shares by app, task and language come from the generation records") {
  temp_db db("apps");
  stats::ledger book(manual(db.path));
  auto a = event("req_a1", "deepseek", "deepseek-chat", "cn", 100, 10, k_noon);
  a.app = "Cline";
  a.task = "code";
  a.language = "zh";
  a.uncached_cost_usd = 0.5;  // its cache took 0.5 - 0.00011 off
  auto b = event("req_a2", "openai", "gpt-4o", "us", 300, 30, k_noon);
  b.app = "Cline";
  b.task = "chat";
  b.language = "en";
  b.estimated = true;
  auto c = event("req_a3", "openai", "gpt-4o", "us", 50, 5, k_noon - hours(1));
  c.task = "code";
  c.language = "en";
  c.outcome = "timeout";
  for (const auto& e : {a, b, c}) book.record(e);
  book.flush(k_noon);
  const auto window = window_ending(k_noon, hours(2));
  auto apps = ok(book.share(window, stats::dimension::app));
  REQUIRE(row(apps, "Cline"));
  CHECK(row(apps, "Cline")->current.requests == 2);
  CHECK(row(apps, "Cline")->current.tokens.total() == 440);
  CHECK(row(apps, "Cline")->current.estimated_tokens == 330);
  CHECK(row(apps, "Cline")->current.uncached_cost_usd == doctest::Approx(0.5 + 0.0));
  auto regions = ok(book.share(window, stats::dimension::region));
  REQUIRE(row(regions, "cn"));
  CHECK(row(regions, "cn")->current.uncached_cost_usd == doctest::Approx(0.5));
  REQUIRE(row(apps, "(unnamed)"));
  CHECK(row(apps, "(unnamed)")->current.errors == 1);
  auto tasks = ok(book.share(window, stats::dimension::task));
  REQUIRE(row(tasks, "code"));
  CHECK(row(tasks, "code")->current.tokens.total() == 165);
  auto languages = ok(book.share(window, stats::dimension::language));
  REQUIRE(row(languages, "en"));
  CHECK(row(languages, "en")->current.requests == 2);
  CHECK(row(languages, "zh")->current.requests == 1);
  auto g = ok(book.generation("req_a1"));
  REQUIRE(g);
  CHECK(g->app == "Cline");
  CHECK(g->task == "code");
  CHECK(g->language == "zh");
  // The hourly series by app reads the same records.
  auto series = stats::daily_json(ok(book.daily(1, 5, stats::dimension::app, k_noon)));
  CHECK(series.dump().find("Cline") != std::string::npos);
}
