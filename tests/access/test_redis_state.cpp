// The Redis limit store against a real redis-server (MERIDIAN_TEST_REDIS, from
// scripts/services.sh): the local store's scenarios, atomicity across connections, key expiry and
// an unreachable Redis.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "access/limits.hpp"

using namespace meridian;
using namespace std::chrono_literals;
using access::limit_state;
using access::wall_clock;

namespace meridian::access::testing {  // defined in test_limits.cpp
wall_clock::time_point window_start();
void check_rpm_sequence(limit_state& s, const std::string& key);
void check_tpm_sequence(limit_state& s, const std::string& key);
void check_budget_arithmetic(limit_state& s, const std::string& key, wall_clock::time_point now);
void check_reservation_lapse(limit_state& s, const std::string& key, wall_clock::time_point now);
}  // namespace meridian::access::testing

using namespace meridian::access::testing;

namespace {

std::string redis_url() {
  const char* url = std::getenv("MERIDIAN_TEST_REDIS");
  if (!url || !*url)
    FAIL(
        "MERIDIAN_TEST_REDIS is not set: start the services with "
        "eval \"$(scripts/services.sh start)\" (scripts/test.sh does) and run the tests again");
  return url;
}

std::unique_ptr<limit_state> redis_state(std::chrono::milliseconds timeout = 2s) {
  config::state_config options;
  options.url = redis_url();
  options.timeout = timeout;
  return access::make_redis_state(options);
}

// Virtual-key names unique to this run, so parallel runs never share counters.
const std::string& run_id() {
  static const std::string id = [] {
    std::random_device rd;
    return "test-" + std::to_string(rd()) + std::to_string(rd());
  }();
  return id;
}
std::string key(std::string_view name) {
  return run_id() + "-" + std::string(name);
}

// A plain hiredis connection, to look at what the store wrote.
struct raw_redis {
  redisContext* c = nullptr;
  raw_redis() {
    const std::string full = redis_url();
    std::string_view url = full;
    url.remove_prefix(std::string_view("redis://").size());
    const auto colon = url.rfind(':');
    const std::string host(url.substr(0, colon));
    c = redisConnect(host.c_str(), std::atoi(std::string(url.substr(colon + 1)).c_str()));
    REQUIRE(c);
    REQUIRE(c->err == 0);
  }
  ~raw_redis() { redisFree(c); }
  template <class... A>
  redisReply* command(const char* format, A... args) {
    auto* r = static_cast<redisReply*>(redisCommand(c, format, args...));
    REQUIRE(r);
    return r;
  }
};

// A loopback port that nothing listens on.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("redis state: MERIDIAN_TEST_REDIS names a reachable Redis") {
  auto s = redis_state();
  CHECK(s->kind() == "redis");
  auto r = s->admit(key("ping"), {.rpm = 1}, wall_clock::now());
  if (auto* failed = std::get_if<access::state_unavailable>(&r)) FAIL(failed->message);
}

TEST_CASE("redis state: malformed URLs are rejected") {
  for (const char* url : {"local", "http://h:1", "redis://", "redis://h:port", "redis://h:70000",
                          "redis://h:1/x", "redis://u:p@h:1"}) {
    config::state_config options;
    options.url = url;
    CHECK_THROWS_AS(access::make_redis_state(options), std::invalid_argument);
  }
  config::state_config options;
  options.url = "redis://127.0.0.1:6379/3";
  CHECK_NOTHROW(access::make_redis_state(options));  // connects lazily
}

TEST_CASE("redis state: rpm admission sequence") {
  check_rpm_sequence(*redis_state(), key("rpm"));
}

TEST_CASE("redis state: tpm admission sequence") {
  check_tpm_sequence(*redis_state(), key("tpm"));
}

TEST_CASE("redis state: reservation arithmetic") {
  check_budget_arithmetic(*redis_state(), key("budget"), wall_clock::now());
}

TEST_CASE("redis state: a reservation lapses after its ttl") {
  check_reservation_lapse(*redis_state(), key("lapse"), wall_clock::now());
}

TEST_CASE("redis state: three states hammering admit with rpm 50 admit exactly 50") {
  std::vector<std::unique_ptr<limit_state>> states;
  for (int i = 0; i < 3; ++i) states.push_back(redis_state());
  const auto now = window_start() + 5s;
  const auto k = key("fleet-rpm");
  std::atomic<int> admitted{0}, refused{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = states[t % 3]->admit(k, {.rpm = 50}, now);
        if (auto* a = std::get_if<access::admission>(&r))
          ++(a->allowed ? admitted : refused);
        else
          ++failed;
      }
    });
  for (auto& t : threads) t.join();
  MESSAGE("admitted " << admitted.load() << ", refused " << refused.load() << ", failed "
                      << failed.load());
  CHECK(failed == 0);
  CHECK(admitted == 50);
  CHECK(refused == 250);
}

TEST_CASE("redis state: 200 concurrent reserves against a budget for 50 grant exactly 50") {
  std::vector<std::unique_ptr<limit_state>> states;
  for (int i = 0; i < 3; ++i) states.push_back(redis_state());
  const auto now = wall_clock::now();
  const auto w = access::budget_window_for(config::budget_period::month, now);
  const auto k = key("fleet-budget");
  std::atomic<int> granted{0}, refused{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 20; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto r = states[t % 3]->reserve(k, w, 50'000, 1'000, 60s, now);
        if (auto* g = std::get_if<access::reservation>(&r))
          ++(g->granted ? granted : refused);
        else
          ++failed;
      }
    });
  for (auto& t : threads) t.join();
  MESSAGE("granted " << granted.load() << ", refused " << refused.load() << ", failed "
                     << failed.load());
  CHECK(failed == 0);
  CHECK(granted == 50);
  auto st = std::get<access::budget_state>(states[0]->budget(k, w, now));
  CHECK(st.reserved == 50'000);
  CHECK(st.spent == 0);
}

TEST_CASE("redis state: every key written has an expiry") {
  auto s = redis_state();
  const auto now = wall_clock::now();
  const auto k = key("ttl");
  const auto w = access::budget_window_for(config::budget_period::day, now);
  REQUIRE(std::holds_alternative<access::admission>(s->admit(k, {.rpm = 5, .tpm = 5}, now)));
  s->add_tokens(k, 10, now);
  auto r = std::get<access::reservation>(s->reserve(k, w, 100, 10, 60s, now));
  REQUIRE(r.granted);
  s->reserve(k, w, 100, 20, 60s, now);  // stays held
  s->settle(k, w, r, 5);
  const auto other = access::budget_window_for(config::budget_period::month, now);
  s->seed_spent(k, other, 7);
  raw_redis raw;
  const std::string pattern = "meridian:{" + k + "}:*";
  redisReply* keys = raw.command("KEYS %s", pattern.c_str());
  REQUIRE(keys->type == REDIS_REPLY_ARRAY);
  CHECK(keys->elements == 5);  // rpm, tpm, spent and held of the day, spent of the month
  for (std::size_t i = 0; i < keys->elements; ++i) {
    const std::string name = keys->element[i]->str;
    redisReply* ttl = raw.command("PTTL %s", name.c_str());
    INFO(name);
    CHECK(ttl->integer > 0);
    if (name.find(":rpm:") != std::string::npos || name.find(":tpm:") != std::string::npos)
      CHECK(ttl->integer <= 120'000);
    freeReplyObject(ttl);
  }
  freeReplyObject(keys);
}

TEST_CASE("redis state: scripts flushed from Redis are sent again") {
  auto s = redis_state();
  const auto k = key("flush");
  CHECK(std::get<access::admission>(s->admit(k, {.rpm = 2}, wall_clock::now())).allowed);
  raw_redis raw;
  freeReplyObject(raw.command("SCRIPT FLUSH"));
  auto a = std::get<access::admission>(s->admit(k, {.rpm = 2}, wall_clock::now()));
  CHECK(a.allowed);
  CHECK(a.remaining_requests == 0);
}

TEST_CASE("redis state: a closed port is state_unavailable at once") {
  config::state_config options;
  options.url = "redis://127.0.0.1:" + std::to_string(closed_port());
  options.timeout = 300ms;
  auto s = access::make_redis_state(options);
  const auto t0 = std::chrono::steady_clock::now();
  auto a = s->admit("k", {.rpm = 1}, wall_clock::now());
  const auto w = access::budget_window_for(config::budget_period::day, wall_clock::now());
  auto r = s->reserve("k", w, 10, 1, 1s, wall_clock::now());
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(std::holds_alternative<access::state_unavailable>(a));
  CHECK(std::holds_alternative<access::state_unavailable>(r));
  MESSAGE(std::get<access::state_unavailable>(a).message);
  CHECK_FALSE(std::get<access::state_unavailable>(a).message.empty());
  CHECK(took < 1s);
}

TEST_CASE("redis state: a server that never answers is state_unavailable after the timeout") {
  // Connections complete in the listen backlog, but nothing ever reads or replies.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  config::state_config options;
  options.url = "redis://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  options.timeout = 300ms;
  auto s = access::make_redis_state(options);
  auto timed_admit = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = s->admit("k", {.rpm = 1}, wall_clock::now());
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(std::holds_alternative<access::state_unavailable>(r));
    MESSAGE(std::get<access::state_unavailable>(r).message
            << " after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms");
    return took;
  };
  auto first = timed_admit();
  CHECK(first >= 250ms);
  CHECK(first < 1s);
  // Within the back-off every call answers at once instead of stalling its thread again.
  CHECK(timed_admit() < 50ms);
  // After it, the next call tries Redis again (and waits out the timeout once more).
  std::this_thread::sleep_for(1100ms);
  auto again = timed_admit();
  CHECK(again >= 250ms);
  CHECK(again < 1s);
  ::close(fd);
}
