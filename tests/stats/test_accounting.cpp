// Accounting: the CONTRACT.md metric families after events, and the hand-off to the ledger.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "stats/accounting.hpp"

using namespace meridian;
using namespace std::chrono_literals;

namespace {

std::string temp_db(const std::string& name) {
  auto path = std::filesystem::temp_directory_path() /
              ("meridian-accounting-" + std::to_string(::getpid()) + "-" + name + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  return path.string();
}

stats::usage_event event(std::string id, std::uint64_t input, std::uint64_t output) {
  stats::usage_event e;
  e.request_id = std::move(id);
  e.provider = "deepseek";
  e.model = "deepseek-chat";
  e.author = "deepseek";
  e.region = "cn";
  e.tokens.input = input;
  e.tokens.output = output;
  e.tokens.cache_read = 10;
  e.cost_usd = 0.25;
  e.energy_kwh = 0.5;
  e.electricity_usd = 0.038;
  e.time = std::chrono::system_clock::now();
  return e;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("accounting: metrics sum the events and the ledger receives them") {
  stats::registry r;
  stats::ledger_options o;
  o.path = temp_db("metrics");
  o.background = false;
  stats::ledger book(o);
  stats::accounting acc(r, &book);
  acc.on_event(event("a", 100, 40));
  acc.on_event(event("b", 200, 60));

  std::string text = r.expose();
  const std::string labels =
      R"(provider="deepseek",model="deepseek-chat",author="deepseek",region="cn")";
  CHECK(has_line(text, "meridian_tokens_total{" + labels + R"(,type="input"} 300)"));
  CHECK(has_line(text, "meridian_tokens_total{" + labels + R"(,type="output"} 100)"));
  CHECK(has_line(text, "meridian_tokens_total{" + labels + R"(,type="cache_read"} 20)"));
  CHECK(text.find(R"(type="reasoning")") == std::string::npos);
  CHECK(has_line(
      text,
      R"(meridian_cost_usd_total{provider="deepseek",model="deepseek-chat",region="cn"} 0.5)"));
  CHECK(has_line(text, R"(meridian_energy_kwh_total{region="cn"} 1)"));
  CHECK(has_line(text, R"(meridian_electricity_usd_total{region="cn"} 0.076)"));
  CHECK(has_line(text, "meridian_ledger_dropped_events_total 0"));
  CHECK(has_line(text, "meridian_ledger_write_errors_total 0"));
  CHECK(text.find("# TYPE meridian_tokens_total counter") != std::string::npos);

  book.flush();
  auto g = book.generation("b");
  REQUIRE(std::holds_alternative<std::optional<stats::usage_event>>(g));
  REQUIRE(std::get<0>(g).has_value());
  CHECK(std::get<0>(g)->tokens.input == 200);
}

TEST_CASE("accounting: ledger drops and write errors reach the metrics") {
  stats::registry r;
  stats::ledger_options o;
  o.path = "/nonexistent-meridian-dir/ledger.db";
  o.background = false;
  o.max_queue = 1;
  stats::ledger book(o);  // the open fails: one write error
  stats::accounting acc(r, &book);
  acc.on_event(event("a", 1, 1));
  acc.on_event(event("b", 1, 1));  // the queue holds one: dropped
  book.flush();                    // fails again
  acc.sync_ledger_counters();
  std::string text = r.expose();
  CHECK(has_line(text, "meridian_ledger_dropped_events_total 1"));
  CHECK(has_line(text, "meridian_ledger_write_errors_total 2"));
}

TEST_CASE("accounting: works without a ledger") {
  stats::registry r;
  stats::accounting acc(r, nullptr);
  acc.on_event(event("a", 5, 5));
  acc.sync_ledger_counters();
  CHECK(has_line(r.expose(), R"(meridian_energy_kwh_total{region="cn"} 0.5)"));
}

TEST_CASE("accounting: estimated tokens are counted apart, by provider and bucket") {
  stats::registry r;
  stats::accounting a(r, nullptr);
  a.on_event(event("counted", 100, 20));
  auto guessed = event("guessed", 30, 7);
  guessed.estimated = true;
  a.on_event(guessed);
  const std::string text = r.expose();
  CHECK(has_line(text, "meridian_estimated_tokens_total{provider=\"deepseek\",type=\"input\"} 30"));
  CHECK(has_line(text, "meridian_estimated_tokens_total{provider=\"deepseek\",type=\"output\"} 7"));
  CHECK(has_line(text,
                 "meridian_tokens_total{provider=\"deepseek\",model=\"deepseek-chat\","
                 "author=\"deepseek\",region=\"cn\",type=\"input\"} 130"));
}
