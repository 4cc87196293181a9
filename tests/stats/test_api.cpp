// The statistics endpoints' logic: query parameters to JSON or to an error naming the parameter.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include "stats/api.hpp"

using namespace meridian;
using namespace std::chrono;

namespace {

struct api_db {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("meridian-api-" + std::to_string(::getpid()) + ".db"))
                         .string();
  std::unique_ptr<stats::ledger> book;
  api_db() {
    clean();
    stats::ledger_options o;
    o.path = path;
    o.background = false;
    book = std::make_unique<stats::ledger>(o);
  }
  ~api_db() {
    book.reset();
    clean();
  }
  void clean() const {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

stats::usage_event event(const std::string& id, const std::string& region, std::uint64_t in,
                         std::uint64_t out, stats::time_point t) {
  stats::usage_event e;
  e.request_id = id;
  e.provider = region == "cn" ? "deepseek" : "openai";
  e.model = "m";
  e.author = e.provider;
  e.region = region;
  e.tokens.input = in;
  e.tokens.output = out;
  e.cost_usd = static_cast<double>(in + out) / 1e6;
  e.time = t;
  return e;
}

}  // namespace

TEST_CASE("stats api: share, daily and generation answers from the ledger") {
  api_db db;
  const auto now = system_clock::now();
  db.book->record(event("r1", "cn", 600, 0, now));
  db.book->record(event("r2", "us", 300, 100, now));
  db.book->flush(now);
  auto share = stats::share_answer(db.book.get(), {{"window", "24h"}, {"by", "region"}}, now,
                                   stats::baseline{"openai/m", {10, 10, 0, 0}});
  REQUIRE(std::holds_alternative<nlohmann::json>(share));
  const auto& j = std::get<nlohmann::json>(share);
  CHECK(j["total"]["tokens"] == 1000);
  CHECK(j["rows"][0]["key"] == "cn");
  CHECK(j["rows"][0]["share"].get<double>() == doctest::Approx(0.6));
  CHECK(j["savings"]["baseline_cost_usd"].get<double>() == doctest::Approx(0.01));

  auto daily = stats::daily_answer(db.book.get(), {{"days", "1"}, {"by", "region"}}, now);
  REQUIRE(std::holds_alternative<nlohmann::json>(daily));
  CHECK(std::get<nlohmann::json>(daily)["series"].size() == 1);

  auto gen = stats::generation_answer(db.book.get(), {{"id", "r2"}});
  REQUIRE(std::holds_alternative<nlohmann::json>(gen));
  CHECK(std::get<nlohmann::json>(gen)["tokens"]["output"] == 100);

  auto page = stats::dashboard_answer(db.book.get(), {{"window", "24h"}}, now, std::nullopt);
  REQUIRE(std::holds_alternative<std::string>(page));
  CHECK(std::get<std::string>(page).find("data-testid=\"share-region-cn\"") != std::string::npos);
}

TEST_CASE("stats api: bad parameters name themselves and a missing ledger is not a client error") {
  api_db db;
  const auto now = system_clock::now();
  auto bad = stats::share_answer(db.book.get(), {{"window", "5y"}}, now, std::nullopt);
  REQUIRE(std::holds_alternative<stats::query_error>(bad));
  CHECK(std::get<stats::query_error>(bad).param == "window");
  auto no_id = stats::generation_answer(db.book.get(), {});
  CHECK(std::get<stats::query_error>(no_id).param == "id");
  auto unknown = stats::generation_answer(db.book.get(), {{"id", "nope"}});
  CHECK(std::get<stats::query_error>(unknown).message.rfind("no generation", 0) == 0);
  auto off = stats::share_answer(nullptr, {}, now, std::nullopt);
  CHECK(std::get<stats::query_error>(off).param.empty());
}
