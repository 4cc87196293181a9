// Stored Responses (stats/response_store.hpp) on the ledger's SQLite database: found only by the
// key that made them, removed, expired past retention, the oldest evicted over the size cap, a
// response larger than the cap refused, and a store before its ledger created the table.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "stats/ledger.hpp"
#include "tests/stats/response_store_checks.hpp"

using namespace meridian;
using namespace std::chrono;

namespace meridian::stats::testing {
namespace {

template <class T>
T ok(result<T> r) {
  if (auto* e = std::get_if<query_error>(&r)) FAIL(e->message);
  return std::get<T>(std::move(r));
}

const time_point k_noon = sys_days(year(2026) / 11 / 10) + hours(12);

stored_response made(std::string id, std::string owner, time_point t, std::size_t size = 100) {
  return {std::move(id), std::move(owner), duration_cast<milliseconds>(t.time_since_epoch()).count(),
          "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"hi\"}]",
          "{\"id\":\"x\",\"pad\":\"" + std::string(size, 'p') + "\"}"};
}

}  // namespace

void check_response_store(response_store& store) {
  // Owned: the key that made it finds it, another key and the anonymous caller do not.
  CHECK(ok(store.put(made("resp_a", "team-a", k_noon), k_noon)));
  auto found = ok(store.get("resp_a", std::string("team-a"), k_noon));
  REQUIRE(found);
  CHECK(found->owner == "team-a");
  CHECK(found->input.find("\"hi\"") != std::string::npos);
  CHECK(found->response.find("\"pad\"") != std::string::npos);
  CHECK_FALSE(ok(store.get("resp_a", std::string("team-b"), k_noon)));
  CHECK_FALSE(ok(store.get("resp_a", std::string(), k_noon)));
  CHECK(ok(store.get("resp_a", std::nullopt, k_noon)));  // the admin token sees every owner's
  CHECK_FALSE(ok(store.get("resp_missing", std::string("team-a"), k_noon)));

  // Removed only by its owner.
  CHECK_FALSE(ok(store.remove("resp_a", std::string("team-b"))));
  CHECK(ok(store.get("resp_a", std::string("team-a"), k_noon)));
  CHECK(ok(store.remove("resp_a", std::string("team-a"))));
  CHECK_FALSE(ok(store.get("resp_a", std::string("team-a"), k_noon)));
  CHECK_FALSE(ok(store.remove("resp_a", std::string("team-a"))));

  // Past retention (1 h) it is not found, and the next put deletes it.
  CHECK(ok(store.put(made("resp_old", "k", k_noon), k_noon)));
  CHECK(ok(store.get("resp_old", std::string("k"), k_noon + minutes(59))));
  CHECK_FALSE(ok(store.get("resp_old", std::string("k"), k_noon + minutes(61))));
  CHECK(ok(store.put(made("resp_new", "k", k_noon + minutes(61)), k_noon + minutes(61))));
  CHECK(ok(store.totals()).second == 1);

  // The cap (4 KiB): the oldest others go until the newest fits; one larger than the cap alone
  // is refused and changes nothing.
  for (int i = 0; i < 6; ++i)
    CHECK(ok(store.put(made("resp_" + std::to_string(i), "k", k_noon + minutes(62 + i), 900),
                       k_noon + minutes(62 + i))));
  auto [bytes, count] = ok(store.totals());
  CHECK(bytes <= 4096);
  CHECK(count == 4);
  CHECK_FALSE(ok(store.get("resp_new", std::string("k"), k_noon + minutes(70))));
  CHECK_FALSE(ok(store.get("resp_1", std::string("k"), k_noon + minutes(70))));
  CHECK(ok(store.get("resp_2", std::string("k"), k_noon + minutes(70))));
  CHECK(ok(store.get("resp_5", std::string("k"), k_noon + minutes(70))));
  CHECK_FALSE(ok(store.put(made("resp_huge", "k", k_noon + minutes(70), 5000), k_noon + minutes(70))));
  CHECK(ok(store.totals()).second == 4);
  CHECK_FALSE(ok(store.get("resp_huge", std::nullopt, k_noon + minutes(70))));
}

}  // namespace meridian::stats::testing

namespace {

struct temp_db {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("meridian-responses-" + std::to_string(::getpid()) + ".db"))
                         .string();
  temp_db() { remove(); }
  ~temp_db() { remove(); }
  void remove() const {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

stats::response_store_options small(const std::string& path) {
  stats::response_store_options o;
  o.path = path;
  o.retention = hours(1);
  o.max_bytes = 4096;
  return o;
}

}  // namespace

TEST_CASE("response store: owned, removed, expired and capped on SQLite") {
  temp_db db;
  stats::ledger_options lo;
  lo.path = db.path;
  lo.background = false;
  stats::ledger book(lo);  // creates the file and its tables
  REQUIRE(book.last_error().empty());
  stats::response_store store(small(db.path));
  stats::testing::check_response_store(store);
}

TEST_CASE("response store: without a ledger's database every call says unavailable") {
  temp_db db;
  stats::response_store store(small(db.path));  // no file yet: nothing is created
  auto r = store.get("resp_a", std::string("k"), std::chrono::system_clock::now());
  auto* e = std::get_if<stats::query_error>(&r);
  REQUIRE(e);
  CHECK(e->what == stats::query_error::kind::unavailable);
  CHECK_FALSE(std::filesystem::exists(db.path));
  stats::response_store none(stats::response_store_options{});
  CHECK(std::holds_alternative<stats::query_error>(none.totals()));
}
