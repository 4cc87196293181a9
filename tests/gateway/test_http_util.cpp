// Small pure pieces of the gateway: what an upstream's Retry-After may become for a client.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "gateway/http_util.hpp"

using namespace meridian::gateway;
using std::chrono::system_clock;

TEST_CASE("http_util: only a valid Retry-After is forwarded; anything else becomes 1 s") {
  // 2026-12-02 00:00:00 UTC
  const auto now = system_clock::from_time_t(1796169600);
  CHECK_FALSE(retry_after_seconds("", now));
  CHECK_FALSE(retry_after_seconds("  ", now));
  CHECK(retry_after_seconds("7", now) == 7u);
  CHECK(retry_after_seconds(" 30 ", now) == 30u);
  CHECK(retry_after_seconds("999999999", now) == 86400u);  // capped at a day
  // HTTP-dates in all three formats RFC 9110 allows, as seconds from now.
  CHECK(retry_after_seconds("Wed, 02 Dec 2026 00:00:10 GMT", now) == 10u);
  CHECK(retry_after_seconds("Wednesday, 02-Dec-26 00:01:00 GMT", now) == 60u);
  CHECK(retry_after_seconds("Wed Dec  2 00:00:05 2026", now) == 5u);
  CHECK(retry_after_seconds("Tue, 01 Dec 2026 00:00:00 GMT", now) == 0u);  // already past
  // What an upstream may echo there is never forwarded.
  CHECK(retry_after_seconds("Bearer sk-live-0123456789abcdef", now) == 1u);
  CHECK(retry_after_seconds("-5", now) == 1u);
  CHECK(retry_after_seconds("1.5", now) == 1u);
  CHECK(retry_after_seconds("7, 8", now) == 1u);
  CHECK(retry_after_seconds("Wed, 02 Dec 2026 00:00:10 GMT sk-x", now) == 1u);
}

TEST_CASE("http_util: a client's request id is kept only when it is sane") {
  CHECK(sane_request_id("client-chosen-id") == "client-chosen-id");
  CHECK(sane_request_id("").empty());
  CHECK(sane_request_id("a b").empty());
  CHECK(sane_request_id(std::string(129, 'a')).empty());
  CHECK(request_id_for({}).rfind("req_", 0) == 0);
  access_record r;
  r.request_id = "req_own";
  CHECK(r.echoed_id() == "req_own");
  r.client_request_id = "theirs";
  CHECK(r.echoed_id() == "theirs");
}

// The ledger's unique index on request ids stays append-mostly only if ids grow with time.
TEST_CASE(
    "http_util: Meridian's request ids are 24 hex digits that sort by the time they were made") {
  const auto before =
      std::chrono::duration_cast<std::chrono::milliseconds>(system_clock::now().time_since_epoch())
          .count();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(request_id_for({}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (const auto& id : ids) {
    REQUIRE(id.size() == 28);
    CHECK(id.find_first_not_of("0123456789abcdef", 4) == std::string::npos);
  }
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(ids[0] != ids[1]);
  // The first 12 digits are the milliseconds it was made at.
  const auto made = std::stoll(ids[0].substr(4, 12), nullptr, 16);
  CHECK(made >= before);
  CHECK(made - before < 60'000);
  // Made in the same millisecond, two ids still differ (48 random bits).
  std::set<std::string> same_ms;
  for (int i = 0; i < 1000; ++i) same_ms.insert(request_id_for({}));
  CHECK(same_ms.size() == 1000);
}

namespace {

struct field {
  std::string name, val;
  std::string_view name_string() const { return name; }
  std::string_view value() const { return val; }
};

bool ambiguous(std::vector<field> fields) {
  return ambiguous_framing(fields);
}

}  // namespace

TEST_CASE("http_util: framing that two parsers could read two ways is ambiguous") {
  CHECK_FALSE(ambiguous({}));
  CHECK_FALSE(ambiguous({{"Content-Length", "5"}, {"Host", "x"}}));
  CHECK_FALSE(ambiguous({{"transfer-encoding", "Chunked"}}));
  CHECK(ambiguous({{"Content-Length", "5"}, {"Content-Length", "5"}}));  // repeated, equal
  CHECK(ambiguous({{"Content-Length", "5, 5"}}));
  CHECK(ambiguous({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}));
  CHECK(ambiguous({{"Transfer-Encoding", "gzip, chunked"}}));
  CHECK(ambiguous({{"Transfer-Encoding", "chunked, identity"}}));
  CHECK(ambiguous({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}));
}

TEST_CASE("app_name: X-Title first, else the Referer's host, bounded and clean") {
  using meridian::gateway::app_name;
  CHECK(app_name("  Cline ", "https://cline.bot") == "Cline");
  CHECK(app_name("", "https://user@WWW.Example.com:8443/path?q#f") == "example.com");
  CHECK(app_name("", "example.org/x") == "example.org");
  CHECK(app_name("", "") == "");
  CHECK(app_name(std::string("a\x01") + "b", "") == "");
  const std::string long_title = std::string(63, 'x') + "é";  // the é straddles byte 64
  CHECK(app_name(long_title, "") == std::string(63, 'x'));
  CHECK(app_name(std::string(100, 'y'), "").size() == 64);
}
