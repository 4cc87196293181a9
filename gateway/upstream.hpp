// The upstream client: keep-alive HTTP/HTTPS connections to providers, pooled per event-loop
// thread so the hot path takes no lock. Every operation runs under a deadline.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "gateway/asio.hpp"
#include "providers/catalog.hpp"

namespace meridian::gateway {

// Why an upstream exchange failed; decides 502 vs 504 and the metric's `kind` label.
enum class upstream_fault { none, dns, connect, tls, timeout, reset, protocol, too_large };
std::string_view to_string(upstream_fault f);

class upstream_conn {
 public:
  using plain = beast::tcp_stream;
  using secure = beast::ssl_stream<beast::tcp_stream>;

  upstream_conn(std::string key, plain s) : key_(std::move(key)), s_(std::move(s)) {}
  upstream_conn(std::string key, secure s) : key_(std::move(key)), s_(std::move(s)) {}

  const std::string& key() const { return key_; }
  bool reused() const { return reused_; }
  void mark_reused() { reused_ = true; }
  beast::tcp_stream& lowest();
  beast::flat_buffer& buffer() { return buf_; }
  // No byte of a later response is held anywhere: not in the read buffer, not inside TLS.
  // A connection is pooled again only when this holds after its response was read to the end.
  bool nothing_buffered();
  // An idle connection on which nothing has arrived and that the peer has not closed: bytes
  // waiting on an idle connection belong to no request (an extra response sent after the
  // release), so such a connection is closed, never used.
  bool quiet();

  awaitable<error_code> write(http::request<http::string_body>& req, steady::duration limit);
  template <class Body>
  awaitable<error_code> read_header(http::response_parser<Body>& p, steady::duration limit);
  template <class Body>
  awaitable<std::pair<error_code, std::size_t>> read_some(http::response_parser<Body>& p,
                                                          steady::duration limit);
  void close();

 private:
  std::string key_;
  std::variant<plain, secure> s_;
  beast::flat_buffer buf_;
  bool reused_ = false;
};

class upstream_pool {
 public:
  // Idle connections kept per provider and thread: as many as busy clients can need at once, so
  // a burst of concurrent requests does not end in a reconnect for every one beyond the cap.
  explicit upstream_pool(net::any_io_executor ex, std::size_t max_idle_per_host = 1024)
      : ex_(std::move(ex)), max_idle_(max_idle_per_host) {}

  // A connection to `p`, reused if one is idle (fresh = never reuse). Sets `fault` on failure.
  awaitable<std::unique_ptr<upstream_conn>> acquire(const providers::provider& p,
                                                    const config::server_timeouts& t,
                                                    steady::time_point deadline, bool fresh,
                                                    upstream_fault& fault, std::string& detail);
  // Takes back a connection whose last response was read exactly to its end and allows
  // keep-alive; one with buffered bytes is closed instead (they belong to no request).
  void release(std::unique_ptr<upstream_conn> c);
  std::size_t idle_count() const;
  // The same number, safe to read from any thread (the metrics scrape runs on another worker).
  std::size_t idle_now() const { return idle_now_.load(std::memory_order_relaxed); }

 private:
  ssl::context& ssl_for(const providers::provider& p);

  net::any_io_executor ex_;
  std::size_t max_idle_;
  std::map<std::string, std::vector<std::unique_ptr<upstream_conn>>> idle_;
  std::map<std::string, std::unique_ptr<ssl::context>> ssl_;
  // Written only by the owning thread: a relaxed counter keeps the hot path free of locks.
  std::atomic<std::size_t> idle_now_{0};
};

// --- template definitions ---

template <class Body>
awaitable<error_code> upstream_conn::read_header(http::response_parser<Body>& p,
                                                 steady::duration limit) {
  lowest().expires_after(limit);
  auto [ec, n] = co_await std::visit(
      [&](auto& s) { return http::async_read_header(s, buf_, p, as_tuple); }, s_);
  co_return ec;
}

template <class Body>
awaitable<std::pair<error_code, std::size_t>> upstream_conn::read_some(
    http::response_parser<Body>& p, steady::duration limit) {
  lowest().expires_after(limit);
  auto [ec, n] =
      co_await std::visit([&](auto& s) { return http::async_read_some(s, buf_, p, as_tuple); }, s_);
  co_return std::pair{ec, n};
}

}  // namespace meridian::gateway
