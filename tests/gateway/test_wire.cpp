// The gateway writes message heads itself (gateway/http_util.hpp) instead of through Beast's
// serializer: the bytes on the wire must be exactly the ones Beast would have written.
#include <doctest/doctest.h>

#include <boost/beast/http.hpp>
#include <sstream>

#include "gateway/http_util.hpp"

namespace http = boost::beast::http;
using namespace meridian::gateway;

namespace {

template <class Message>
std::string beast_bytes(Message& m) {
  std::ostringstream out;
  out << m;  // Beast's serializer
  return out.str();
}

}  // namespace

TEST_CASE("wire: a response head and body are the bytes Beast's serializer writes") {
  for (unsigned status : {200u, 201u, 400u, 404u, 429u, 500u, 502u, 503u, 599u}) {
    for (bool keep_alive : {true, false}) {
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.set(http::field::content_type, "application/json");
      res.set("x-request-id", "req_0123456789abcdef01234567");
      res.set("x-meridian-route", "route=default; provider=mock; tier=1");
      res.insert("x-repeated", "one");
      res.insert("x-repeated", "two");
      res.set(http::field::retry_after, "7");
      res.keep_alive(keep_alive);
      res.body() = R"({"id":"x","choices":[]})";
      res.prepare_payload();
      CAPTURE(status);
      CAPTURE(keep_alive);
      CHECK(response_head(res) + res.body() == beast_bytes(res));
    }
  }
  http::response<http::string_body> custom{http::status::ok, 11};
  custom.reason("Fine");  // a reason phrase of its own
  custom.body() = "";
  custom.prepare_payload();
  CHECK(response_head(custom) == beast_bytes(custom));
  http::response<http::string_body> old{http::status::ok, 10};  // HTTP/1.0
  old.body() = "x";
  old.prepare_payload();
  CHECK(response_head(old) + old.body() == beast_bytes(old));
}

TEST_CASE("wire: an upstream request head and body are the bytes Beast's serializer writes") {
  http::request<http::string_body> up{http::verb::post, "/v1/chat/completions?x=1", 11};
  up.set(http::field::host, "api.example.com:8443");
  up.set(http::field::content_type, "application/json");
  up.set(http::field::accept, "text/event-stream");
  up.set(http::field::user_agent, "meridian/0.1.0");
  up.set(http::field::authorization, "Bearer sk-test");
  up.set("anthropic-version", "2023-06-01");
  up.body() = R"({"model":"m","messages":[]})";
  up.keep_alive(true);
  up.prepare_payload();
  CHECK(request_head(up) + up.body() == beast_bytes(up));
  up.keep_alive(false);
  up.method(http::verb::get);
  up.body().clear();
  up.prepare_payload();
  CHECK(request_head(up) == beast_bytes(up));
}
