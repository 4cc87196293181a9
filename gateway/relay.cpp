// The streaming relay moves bytes: the upstream's body into providers::stream_pipeline (which
// decodes, annotates, tallies and frames; see stream_pipeline.hpp) and each chunk it hands out to
// the client as its own write. What is left here is what waits: the read and write deadlines,
// timeouts.total, the client going away, and the in-band error event that ends a stream the
// gateway or the upstream cut.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

// Relays an upstream stream chunk by chunk. A client that goes away ends the upstream request
// too; an upstream that fails mid-stream ends it with an error event.
awaitable<void> server::relay_stream(exchange& ex, const providers::dialect& d,
                                     upstream_exchange& x, steady::time_point deadline,
                                     bool& reusable) {
  const auto& t = ex.snap.cfg->server.timeouts;
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("x-request-id", ex.log.echoed_id());
  set_routed_headers(ex, res.base());
  res.keep_alive(ex.keep_alive);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  ex.log.status = 200;
  ex.client.expires_after(t.idle_chunk);
  if (auto [ec, n] = co_await http::async_write_header(ex.client, sr, as_tuple); ec) {
    ex.keep_alive = false;
    ex.log.error = "client_closed";
    co_return;
  }

  ex.streamed = true;
  providers::stream_pipeline pipe(d, *ex.model, ex.shape, ex.log.model, ex.output_ceiling,
                                  ex.responses ? &*ex.responses : nullptr, ex.provider->name);
  pipe.expect_input(ex.est_prompt);
  if (ex.shape == core::api_shape::responses && !ex.translated) pipe.pass_responses_through();
  if (ex.shape == core::api_shape::openai && !ex.usage_asked &&
      !ex.snap.cfg->server.always_stream_usage)
    pipe.hide_usage_chunk();
  bool client_gone = false;
  bool past_total = false;  // the gateway's own stop: timeouts.total passed
  error_code upstream_ec;
  auto& parser = *x.parser;
  char buf[k_read_chunk];
  while (!parser.is_done() && !client_gone && pipe.running()) {
    if (steady::now() >= deadline) {
      past_total = true;
      break;
    }
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    auto [rec, n] = co_await x.conn->read_some(parser, phase_limit(t.idle_chunk, deadline));
    if (rec == http::error::need_buffer) rec = {};
    if (!pipe.feed(std::string_view(buf, sizeof buf - parser.get().body().size))) {
      upstream_ec = http::error::body_limit;
      break;
    }
    while (auto wire = pipe.next()) {
      if (!ex.log.ttft_ms) {
        double s = seconds_since(ex.start);
        ex.log.ttft_ms = s * 1000;
        metrics_.ttft.observe({ex.provider->name}, s);
      }
      if (wire->empty()) continue;
      ex.client.expires_after(t.idle_chunk);
      auto [wec, wn] =
          co_await net::async_write(ex.client, http::make_chunk(net::buffer(*wire)), as_tuple);
      client_gone = static_cast<bool>(wec);
      if (client_gone) break;
    }
    if (rec) {
      upstream_ec = rec;
      break;
    }
  }
  ex.relayed = pipe.relayed();
  ex.relayed_chunks = pipe.relayed_chunks();
  if (auto tokens = pipe.tokens()) ex.tokens = *tokens;
  ex.stream_complete = pipe.complete();
  const bool upstream_failed = pipe.stopped() == providers::stream_pipeline::stop::upstream_error;
  const bool over_output = pipe.stopped() == providers::stream_pipeline::stop::output_limit;
  // A read cut short by the total deadline is the deadline's doing, not a stall.
  if (upstream_ec == beast::error::timeout && steady::now() >= deadline) past_total = true;
  if (client_gone) {
    // Closing the upstream connection is how a provider learns to stop generating.
    ex.keep_alive = false;
    ex.log.error = "client_closed";
    ex.log.status = 499;
    co_return;
  }
  if ((past_total || over_output) && !pipe.complete()) {
    // The upstream connection is closed (finish_exchange: not reusable), which is how a
    // provider learns to stop generating.
    metrics_.upstream_errors.inc({ex.provider->name, over_output ? "output_limit" : "timeout"});
    ex.log.error = over_output ? "output_limit" : "total_deadline";
    const std::string what =
        over_output ? "sent more output than the request allows (about " +
                          std::to_string(stats::estimate_tokens(ex.relayed)) +
                          " tokens relayed; the limit is " + std::to_string(*ex.output_ceiling) +
                          ", twice max_tokens or the reserved output, plus 256)"
                    : "was still streaming when the request's total deadline (timeouts.total, " +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                             ex.snap.cfg->server.timeouts.total)
                                             .count()) +
                          " s) passed";
    const std::string& wire =
        pipe.fail("Provider '" + ex.provider->name + "' " + what,
                  over_output ? "output_limit_exceeded" : "total_deadline_exceeded");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else if (!pipe.complete()) {
    bool timeout = upstream_ec == beast::error::timeout;
    const char* kind = upstream_failed ? "stream_error" : timeout ? "timeout" : "reset";
    metrics_.upstream_errors.inc({ex.provider->name, kind});
    ex.log.error = upstream_failed ? "upstream_stream_error"
                   : timeout       ? "upstream_stream_timeout"
                                   : "upstream_stream_cut";
    std::string what = upstream_failed ? redact(pipe.decoder_error(), ex.provider->api_key)
                       : timeout       ? "stalled mid-stream"
                                       : "cut the stream";
    const std::string& wire = pipe.fail("Provider '" + ex.provider->name + "' " + what,
                                        timeout ? "upstream_timeout" : "upstream_error");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else {
    if (!pipe.tokens()) estimate_tokens(ex);  // told to an Anthropic client as estimated
    const providers::answer_notes notes{ex.provider->name,
                                        providers::cost_usd(ex.tokens, *ex.model), ex.estimated};
    const std::string& wire = pipe.finish(ex.tokens, notes);
    // Stored before the client sees the end, so the next turn's previous_response_id finds it.
    if (!pipe.final_response().empty()) co_await keep_response(ex, pipe.final_response());
    if (!wire.empty()) {  // an empty chunk would be the last-chunk marker
      ex.client.expires_after(t.idle_chunk);
      auto [wec, wn] =
          co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
      if (wec) ex.keep_alive = false;
    }
    // The decoder may have finished before the HTTP body did (e.g. "[DONE]" then the last
    // chunk): the connection is reused only when the response was read to its end.
    if (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      co_await x.conn->read_some(parser, phase_limit(t.idle_chunk, deadline));
    }
    reusable = true;
  }
  ex.client.expires_after(t.idle_chunk);
  auto [ec, n] = co_await net::async_write(ex.client, http::make_chunk_last(), as_tuple);
  if (ec) ex.keep_alive = false;
}

}  // namespace meridian::gateway::detail
