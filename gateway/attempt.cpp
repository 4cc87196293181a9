// One upstream attempt's exchange: the request built from the dialect's encoding and the
// provider's auth, sent on a pooled connection and read up to the header (interim responses
// skipped), the whole body read under the deadlines and the global buffer cap, and the
// connection returned to the pool only when nothing of it is left unread.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

http::request<http::string_body> server::make_upstream_request(const exchange& ex,
                                                               const providers::provider& p,
                                                               providers::upstream_request&& r,
                                                               bool stream) const {
  http::request<http::string_body> up{http::verb::post, p.url.path + r.path, 11};
  up.set(http::field::host, (p.url.port == (p.url.tls ? 443 : 80))
                                ? p.url.host
                                : p.url.host + ':' + std::to_string(p.url.port));
  up.set(http::field::content_type, "application/json");
  up.set(http::field::accept, stream ? "text/event-stream" : "application/json");
  up.set(http::field::user_agent, "meridian/" + std::string(k_version));
  up.set("x-request-id", ex.log.request_id);
  if (ex.trace && !ex.attempt_span.empty())  // W3C trace context: this attempt is the parent
    up.set("traceparent",
           stats::format_traceparent({ex.trace->trace_id, ex.attempt_span, ex.trace->sampled}));
  switch (p.auth) {
    case providers::auth_style::bearer:
      up.set(http::field::authorization, "Bearer " + p.api_key);
      break;
    case providers::auth_style::x_api_key:
      up.set("x-api-key", p.api_key);
      break;
    case providers::auth_style::x_goog_api_key:
      up.set("x-goog-api-key", p.api_key);
      break;
    case providers::auth_style::none:
      break;
  }
  for (const auto& [k, v] : r.headers) up.set(k, v);
  for (const auto& [k, v] : p.headers) up.set(k, v);
  up.body() = std::move(r.body);
  up.keep_alive(true);
  up.prepare_payload();
  return up;
}

// Sends one request and reads the response header, under the connect and first-byte
// deadlines. A pooled connection the provider closed while idle is retried once, fresh.
awaitable<server::upstream_exchange> server::open_exchange(exchange& ex,
                                                           const providers::provider& p,
                                                           http::request<http::string_body>& up,
                                                           steady::time_point deadline) {
  const auto& t = ex.snap.cfg->server.timeouts;
  upstream_exchange x;
  for (int attempt = 0; attempt < 2 && !x.conn; ++attempt) {
    x.conn = co_await ex.w.pool.acquire(p, t, deadline, attempt > 0, x.fault, x.detail);
    if (!x.conn) break;
    error_code ec = co_await x.conn->write(up, phase_limit(t.first_byte, deadline));
    // Interim responses (100 Continue, 103 Early Hints) are skipped: the final one follows on
    // the same connection, and reading it is what keeps its bytes from the next request.
    for (int interim = 0; !ec; ++interim) {
      x.parser = std::make_unique<http::response_parser<http::buffer_body>>();
      x.parser->body_limit(boost::none);
      x.parser->header_limit(64u << 10);
      ec = co_await x.conn->read_header(*x.parser, phase_limit(t.first_byte, deadline));
      const unsigned code = ec ? 0 : x.parser->get().result_int();
      if (ec || code < 100 || code > 199) break;
      if (code == 101 || interim == k_max_interim) ec = http::error::bad_status;
    }
    if (!ec) break;
    const bool closed = ec == net::error::connection_reset || ec == http::error::end_of_stream ||
                        ec == net::error::eof || ec == net::error::broken_pipe;
    const bool stale = x.conn->reused() && attempt == 0 && closed;
    x.conn->close();
    x.conn.reset();
    if (stale) continue;
    if (ec == beast::error::timeout) {
      x.fault = upstream_fault::timeout;
      x.detail = "no answer within the first_byte deadline";
    } else if (ec == http::error::bad_status) {
      x.fault = upstream_fault::protocol;
      x.detail = "sent HTTP 101 or more than " + std::to_string(k_max_interim) +
                 " interim responses instead of an answer";
    } else {
      x.fault = closed ? upstream_fault::reset : upstream_fault::protocol;
      x.detail = ec.message();
    }
    // Only a stale pooled connection earns a second try: a fresh one that failed reached the
    // provider, and trying again would send the request twice and double the deadline.
    break;
  }
  if (!x.conn) {
    metrics_.upstream_errors.inc({p.name, std::string(to_string(x.fault))});
    log(log_level::warn, "upstream exchange failed",
        "\"request_id\":\"" + ex.log.request_id + "\",\"provider\":\"" + p.name + "\",\"kind\":\"" +
            std::string(to_string(x.fault)) + "\"");
  }
  co_return x;
}

// Reads a whole response body under the idle-chunk and total deadlines, bounded in size.
awaitable<error_code> server::read_body(exchange& ex, upstream_exchange& x, std::string& body,
                                        steady::time_point deadline) {
  const auto& t = ex.snap.cfg->server.timeouts;
  const std::uint64_t cap = ex.snap.cfg->server.limits.max_buffered_bytes;
  char buf[k_read_chunk];
  while (!x.parser->is_done()) {
    if (steady::now() >= deadline) co_return beast::error::timeout;  // timeouts.total
    x.parser->get().body().data = buf;
    x.parser->get().body().size = sizeof buf;
    auto [ec, n] = co_await x.conn->read_some(*x.parser, phase_limit(t.idle_chunk, deadline));
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = sizeof buf - x.parser->get().body().size;
    // Every request's buffered answer counts against one cap, so many large answers at once
    // cannot grow the process without bound; what this request holds is released by finish().
    if (buffered_.fetch_add(got) + got > cap) {
      buffered_.fetch_sub(got);
      co_return net::error::no_buffer_space;
    }
    ex.buffered += got;
    body.append(buf, got);
    if (ec) co_return ec;
    if (body.size() > k_max_upstream_body) co_return http::error::body_limit;
  }
  co_return error_code{};
}

// A connection goes back to the pool only when its response was read exactly to its end, the
// provider did not say `Connection: close`, and no byte beyond the response is buffered (the
// pool checks that last part itself); anything else is closed.
void server::finish_exchange(exchange& ex, upstream_exchange& x, bool reusable) {
  if (reusable && x.conn && x.parser && x.parser->is_done() && x.parser->keep_alive()) {
    ex.w.pool.release(std::move(x.conn));
  } else if (x.conn) {
    x.conn->close();
  }
}

// 503 when the whole answers held in memory reach server.limits.max_buffered_bytes.

}  // namespace meridian::gateway::detail
