// Upstream connections: resolve, connect, TLS handshake with peer and host-name
// verification, keep-alive reuse. Each phase runs under its own deadline.
#include "gateway/upstream.hpp"

#include <poll.h>

#include <array>

#include "gateway/http_util.hpp"

namespace meridian::gateway {

std::string_view to_string(upstream_fault f) {
  switch (f) {
    case upstream_fault::none:
      return "none";
    case upstream_fault::dns:
      return "dns";
    case upstream_fault::connect:
      return "connect";
    case upstream_fault::tls:
      return "tls";
    case upstream_fault::timeout:
      return "timeout";
    case upstream_fault::reset:
      return "reset";
    case upstream_fault::protocol:
      return "protocol";
    case upstream_fault::too_large:
      return "too_large";
  }
  return "unknown";
}

beast::tcp_stream& upstream_conn::lowest() {
  return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); }, s_);
}

awaitable<error_code> upstream_conn::write(http::request<http::string_body>& req,
                                           steady::duration limit) {
  lowest().expires_after(limit);
  const std::string head = request_head(req);  // one gather write (gateway/http_util.hpp)
  const std::array<net::const_buffer, 2> wire{net::buffer(head), net::buffer(req.body())};
  auto [ec, n] =
      co_await std::visit([&](auto& s) { return net::async_write(s, wire, as_tuple); }, s_);
  co_return ec;
}

bool upstream_conn::nothing_buffered() {
  if (buf_.size() != 0) return false;
  if (auto* s = std::get_if<secure>(&s_)) return SSL_pending(s->native_handle()) == 0;
  return true;
}

bool upstream_conn::quiet() {
  if (!nothing_buffered()) return false;
  pollfd pfd{lowest().socket().native_handle(), POLLIN | POLLRDHUP, 0};
  // Any event (data, EOF, reset, error) on an idle connection means it cannot be used.
  return ::poll(&pfd, 1, 0) == 0;
}

void upstream_conn::close() {
  error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest().close();
}

namespace {

std::string pool_key(const providers::provider& p) {
  return p.name + '|' + (p.url.tls ? "s|" : "p|") + p.url.host + ':' + std::to_string(p.url.port);
}

}  // namespace

ssl::context& upstream_pool::ssl_for(const providers::provider& p) {
  std::string key = p.name + '|' + p.tls.ca_file + (p.tls.verify ? "|v" : "|n");
  auto& slot = ssl_[key];
  if (!slot) {
    slot = std::make_unique<ssl::context>(ssl::context::tls_client);
    slot->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    error_code ec;
    if (!p.tls.ca_file.empty()) {
      slot->load_verify_file(p.tls.ca_file, ec);
    } else {
      slot->set_default_verify_paths(ec);
    }
    if (ec)
      log(log_level::error, "cannot load trust store for provider " + p.name + ": " + ec.message());
    slot->set_verify_mode(p.tls.verify ? ssl::verify_peer : ssl::verify_none);
  }
  return *slot;
}

awaitable<std::unique_ptr<upstream_conn>> upstream_pool::acquire(const providers::provider& p,
                                                                 const config::server_timeouts& t,
                                                                 steady::time_point deadline,
                                                                 bool fresh, upstream_fault& fault,
                                                                 std::string& detail) {
  const std::string key = pool_key(p);
  if (!fresh) {
    auto it = idle_.find(key);
    while (it != idle_.end() && !it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      idle_now_.fetch_sub(1, std::memory_order_relaxed);
      if (!c->quiet()) {
        c->close();  // bytes nobody asked for, or closed by the provider while idle
        continue;
      }
      c->mark_reused();
      co_return c;
    }
  }
  beast::tcp_stream tcp_stream(ex_);
  error_code cec;
  error_code literal_ec;
  const auto literal = net::ip::make_address(p.url.host, literal_ec);
  if (!literal_ec) {
    // An IP address needs no resolver (whose lookups run on a thread of their own).
    tcp_stream.expires_after(phase_limit(t.connect, deadline));
    auto [e] = co_await tcp_stream.async_connect(tcp::endpoint(literal, p.url.port), as_tuple);
    cec = e;
  } else {
    tcp::resolver resolver(ex_);
    // The resolver has no deadline of its own: race it against a timer.
    net::steady_timer timer(ex_);
    timer.expires_after(phase_limit(t.connect, deadline));
    using namespace net::experimental::awaitable_operators;
    auto raced =
        co_await (resolver.async_resolve(p.url.host, std::to_string(p.url.port), as_tuple) ||
                  timer.async_wait(as_tuple));
    if (raced.index() == 1) {
      fault = upstream_fault::timeout;
      detail = "resolving " + p.url.host + " timed out";
      co_return nullptr;
    }
    auto [rec, endpoints] = std::get<0>(raced);
    if (rec) {
      fault = upstream_fault::dns;
      detail = "cannot resolve " + p.url.host + ": " + rec.message();
      co_return nullptr;
    }
    tcp_stream.expires_after(phase_limit(t.connect, deadline));
    auto [e, ep] = co_await tcp_stream.async_connect(endpoints, as_tuple);
    cec = e;
  }
  if (cec) {
    fault = cec == beast::error::timeout ? upstream_fault::timeout : upstream_fault::connect;
    detail = "cannot connect to " + p.url.host + ':' + std::to_string(p.url.port) + ": " +
             (cec == beast::error::timeout ? std::string("connect timed out") : cec.message());
    co_return nullptr;
  }
  tcp_stream.socket().set_option(tcp::no_delay(true));
  if (!p.url.tls) co_return std::make_unique<upstream_conn>(key, std::move(tcp_stream));

  upstream_conn::secure s(std::move(tcp_stream), ssl_for(p));
  if (!SSL_set_tlsext_host_name(s.native_handle(), p.url.host.c_str())) {
    fault = upstream_fault::tls;
    detail = "cannot set TLS server name";
    co_return nullptr;
  }
  if (p.tls.verify) s.set_verify_callback(ssl::host_name_verification(p.url.host));
  beast::get_lowest_layer(s).expires_after(phase_limit(t.connect, deadline));
  auto [hec] = co_await s.async_handshake(ssl::stream_base::client, as_tuple);
  if (hec) {
    fault = hec == beast::error::timeout ? upstream_fault::timeout : upstream_fault::tls;
    detail = "TLS handshake with " + p.url.host + " failed: " + hec.message();
    co_return nullptr;
  }
  co_return std::make_unique<upstream_conn>(key, std::move(s));
}

void upstream_pool::release(std::unique_ptr<upstream_conn> c) {
  if (!c->nothing_buffered()) {
    c->close();
    return;
  }
  auto& list = idle_[c->key()];
  if (list.size() >= max_idle_) return;  // dropping closes it
  list.push_back(std::move(c));
  idle_now_.fetch_add(1, std::memory_order_relaxed);
}

std::size_t upstream_pool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [k, v] : idle_) n += v.size();
  return n;
}

}  // namespace meridian::gateway
