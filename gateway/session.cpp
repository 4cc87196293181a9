// One client connection: the keep-alive loop with its header deadline and body limit, the
// framing check against request smuggling, the request's dispatch and its end (finish: the last
// attempt accounted, the key's reservation settled, the access log written).
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

// Before a route is known the API shape is not either: these answers are OpenAI-shaped.
awaitable<void> reject(beast::tcp_stream& stream, api_error e) {
  http::response<http::string_body> res{static_cast<http::status>(core::http_status(e.kind)), 11};
  res.set(http::field::content_type, "application/json");
  res.set("x-request-id", request_id_for({}));
  res.body() = core::render(e, core::api_shape::openai);
  res.keep_alive(false);
  res.prepare_payload();
  co_await http::async_write(stream, res, as_tuple);  // the session closes either way
  log(log_level::debug, "rejected request: " + e.message, {});
}

awaitable<void> server::session(worker& w, tcp::socket socket, bool admin) {
  struct connection_count {
    std::atomic<std::uint32_t>& all;
    std::atomic<std::uint32_t>& listener;
    ~connection_count() {
      --all;
      --listener;
    }
  } counted{connections_, admin ? admin_connections_ : public_connections_};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  const auto initial = snap_.load();
  const auto limits = initial->cfg->server.limits;
  const auto timeouts = initial->cfg->server.timeouts;
  bool refused = false;  // answered before the request was read whole: linger before closing
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(limits.max_header_bytes);
    parser.body_limit(limits.max_body_bytes);
    stream.expires_after(timeouts.header);
    w.idle.insert(&stream);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, as_tuple);
    w.idle.erase(&stream);
    if (hec) {
      // A peer that closes between requests, or idles past the header deadline, is not an error.
      // A declared Content-Length over the limit is caught here, before any body is read.
      if (hec == http::error::header_limit) {
        refused = true;
        const api_error failure{error_kind::headers_too_large,
                                {},
                                "Request headers are too large",
                                "headers_too_large"};
        co_await reject(stream, failure);
      } else if (hec == http::error::body_limit) {
        refused = true;
        const api_error failure{
            error_kind::too_large,
            {},
            "Request body exceeds the limit of " + std::to_string(limits.max_body_bytes) + " bytes",
            "request_too_large"};
        co_await reject(stream, failure);
      } else if (hec != http::error::end_of_stream && hec != beast::error::timeout &&
                 hec != net::error::operation_aborted && hec != net::error::connection_reset &&
                 hec != net::error::eof) {
        refused = true;
        const api_error failure{error_kind::invalid_request,
                                {},
                                "Malformed HTTP request: " + hec.message(),
                                "bad_http"};
        co_await reject(stream, failure);
      }
      break;
    }
    // Framing two parsers could read two ways is refused before any body is read (request
    // smuggling). Beast itself refuses Content-Length with Transfer-Encoding and unequal lengths,
    // but accepts repeated equal lengths ("5, 5" or two fields) and codings after "chunked".
    if (ambiguous_framing(parser.get())) {
      refused = true;
      const api_error failure{error_kind::invalid_request,
                              {},
                              "Ambiguous request framing: send one Content-Length or "
                              "Transfer-Encoding: chunked",
                              "bad_http"};
      co_await reject(stream, failure);
      break;
    }
    const auto start = steady::now();
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      co_await http::async_write(stream, cont, as_tuple);
    }
    auto [bec, bn] = co_await http::async_read(stream, buffer, parser, as_tuple);
    auto snap = snap_.load();  // the request keeps the snapshot it started with
    access_record record;
    record.request_id = request_id_for({});  // always Meridian's own: the ledger's key
    record.client_request_id = sane_request_id(parser.get()["x-request-id"]);
    record.session = sane_request_id(parser.get()["x-claude-code-session-id"]);
    {  // OpenRouter's attribution: X-Title, else HTTP-Referer (browsers send Referer)
      auto referer = parser.get()["http-referer"];
      if (referer.empty()) referer = parser.get()[http::field::referer];
      record.app = app_name(parser.get()["x-title"], referer);
    }
    exchange ex{w,
                stream,
                parser.get(),
                *snap,
                start,
                parser.get().keep_alive() && !draining_,
                std::move(record)};
    if (bec) {
      ex.keep_alive = false;
      ex.log.method = std::string(parser.get().method_string());
      ex.log.path = std::string(parser.get().target());
      if (bec == http::error::body_limit) {
        refused = true;
        const api_error failure{
            error_kind::too_large,
            {},
            "Request body exceeds the limit of " + std::to_string(limits.max_body_bytes) + " bytes",
            "request_too_large"};
        co_await send_error(ex, failure);
        write_access_log(ex.log);
      }
      break;
    }
    ++inflight_;
    metrics_.inflight.add({}, 1);
    try {
      co_await dispatch(ex, admin);
    } catch (const std::exception& e) {
      // Unexpected: log it, show the client nothing internal, end only this session.
      log(log_level::error, "unhandled exception in request",
          "\"request_id\":\"" + ex.log.request_id + "\"");
      log(log_level::debug, e.what());
      ex.keep_alive = false;
      ex.log.status = 500;
      ex.log.error = "internal_error";
    }
    finish(ex);
    --inflight_;
    metrics_.inflight.add({}, -1);
    if (!ex.keep_alive || draining_) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (refused) {
    // Lingering close: what is left of a refused request is read and dropped for a moment, or
    // the kernel answers those bytes with a reset that destroys the error reply just sent.
    stream.expires_after(std::chrono::seconds(1));
    char sink[16384];
    for (std::size_t dropped = 0; dropped < (1u << 20);) {
      auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), as_tuple);
      if (ec) break;
      dropped += n;
    }
  }
  stream.close();
}

// Accepts until the listener closes. Out of descriptors (EMFILE, ENFILE) or kernel memory, the
// loop backs off (50 ms, doubling to 1 s) instead of spinning on a connection it cannot take,
// and logs once per 5 s with a count; every failure is in meridian_accept_errors_total.
// max_connections counts each listener on its own, so a flood on the public port never locks
// the operator out of the admin listener.

// ---- sessions ----

void server::finish(exchange& ex) {
  buffered_.fetch_sub(ex.buffered);
  ex.buffered = 0;
  ex.log.latency_ms = seconds_since(ex.start) * 1000;
  if (ex.provider) {
    const auto& p = *ex.provider;
    const auto& m = *ex.model;
    metrics_.requests.inc({ex.log.route, p.name, m.id, p.region, std::to_string(ex.log.status)});
    if (ex.emitted <= ex.log.fallback_index) {
      const bool ok = ex.log.status == 200 && ex.log.error.empty();
      emit_attempt(ex, ok ? "ok" : ex.log.error.empty() ? "error" : ex.log.error, ex.log.status);
    }
    metrics_.duration.observe({p.name}, ex.log.latency_ms / 1000);
    metrics_.overhead.observe({}, std::max(0.0, ex.log.latency_ms / 1000 - ex.upstream_seconds));
  } else if (ex.log.path == "/v1/chat/completions") {
    metrics_.requests.inc({ex.log.route, "", "", "", std::to_string(ex.log.status)});
  }
  // After the last attempt was accounted: the log says the number the ledger bills.
  ex.log.input_tokens = ex.tokens.prompt_total();
  ex.log.output_tokens = ex.tokens.completion_total();
  ex.log.estimated = ex.estimated;
  if (ex.model && (ex.tokens.present || ex.estimated))
    ex.log.cost_usd = providers::cost_usd(ex.tokens, *ex.model);
  settle(ex);
  if (ex.trace && ex.trace->sampled && tracer_) trace_request(ex);
  // Probes every few seconds would drown the requests: logged only when asked or failing.
  const bool probe = ex.log.path == "/healthz" || ex.log.path == "/readyz";
  if (!probe || ex.log.status != 200 || ex.snap.cfg->server.log_probes) write_access_log(ex.log);
}

}  // namespace meridian::gateway::detail
