// The streaming relay: the upstream's events through the dialect's decoder, framed for the
// client's API (OpenAI chunks or Anthropic events), each written as it arrives; the stops the
// gateway imposes (timeouts.total, the output ceiling) and the upstream's failures end it with
// an in-band error event.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

class client_framer {
 public:
  explicit client_framer(const exchange& ex) {
    if (ex.shape == core::api_shape::anthropic) anthropic_.emplace(ex.log.model);
  }
  // The bytes for one canonical chunk; empty when the client's API has nothing to say yet.
  const std::string& chunk(std::string_view c) {
    if (!anthropic_) return wire_.assign("data: ").append(c).append("\n\n");
    events_.clear();
    anthropic_->on_chunk(c, events_);
    return flatten();
  }
  const std::string& end(const providers::usage& tokens, const providers::answer_notes& notes) {
    if (!anthropic_) return wire_.assign("data: [DONE]\n\n");
    events_.clear();
    anthropic_->finish(tokens, events_, &notes);
    return flatten();
  }
  const std::string& fail(const std::string& message, std::string_view code) {
    if (!anthropic_)
      return wire_.assign("data: ")
          .append(core::openai_error_body(message, "upstream_error", {}, code))
          .append("\n\n");
    events_.clear();
    anthropic_->fail(message, events_);
    return flatten();
  }

 private:
  const std::string& flatten() {
    wire_.clear();
    for (const auto& e : events_) wire_ += providers::to_wire(e);
    return wire_;
  }
  std::optional<providers::anthropic_stream_encoder> anthropic_;
  std::vector<providers::sse_event> events_;
  std::string wire_;
};

// Relays an upstream stream event by event, each in its own write, through the dialect's
// decoder; the usage chunk gains its cost on the way. A client that goes away ends the
// upstream request too; an upstream that fails mid-stream ends it with an error event.
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

  auto decoder = d.stream(ex.model->id);
  ex.streamed = true;
  providers::sse_parser sse;
  providers::sse_event ev;
  std::vector<std::string> chunks;
  client_framer framer(ex);
  bool client_gone = false, upstream_failed = false;
  // The gateway's own stops: timeouts.total passed, or more output than the request allows.
  bool past_total = false, over_output = false;
  error_code upstream_ec;
  auto& parser = *x.parser;
  char buf[k_read_chunk];
  while (!parser.is_done() && !client_gone && !upstream_failed && !decoder->complete() &&
         !over_output) {
    if (steady::now() >= deadline) {
      past_total = true;
      break;
    }
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    auto [rec, n] = co_await x.conn->read_some(parser, phase_limit(t.idle_chunk, deadline));
    if (rec == http::error::need_buffer) rec = {};
    std::size_t got = sizeof buf - parser.get().body().size;
    if (got && !sse.feed(std::string_view(buf, got))) {
      upstream_ec = http::error::body_limit;
      break;
    }
    while (!client_gone && sse.next(ev)) {
      chunks.clear();
      if (!decoder->on_event(ev, chunks)) upstream_failed = true;
      for (auto& chunk : chunks) {
        if (!ex.log.ttft_ms) {
          double s = seconds_since(ex.start);
          ex.log.ttft_ms = s * 1000;
          metrics_.ttft.observe({ex.provider->name}, s);
        }
        if (auto tokens = decoder->tokens();
            tokens && chunk.find("\"usage\":{") != std::string::npos) {
          ex.tokens = *tokens;
          chunk = providers::annotate_usage_chunk(chunk, providers::cost_usd(*tokens, *ex.model));
        }
        ++ex.relayed_chunks;
        providers::for_each_generated_text(
            chunk, [&](std::string_view raw) { stats::tally_json_string(raw, ex.relayed); });
        // Past the ceiling, this chunk is the last one relayed (and billed).
        over_output = ex.output_ceiling && stats::estimate_tokens(ex.relayed) > *ex.output_ceiling;
        const std::string& wire = framer.chunk(chunk);
        if (!wire.empty()) {
          ex.client.expires_after(t.idle_chunk);
          auto [wec, wn] =
              co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
          client_gone = static_cast<bool>(wec);
        }
        if (client_gone || over_output) break;
      }
      if (upstream_failed || over_output) break;
    }
    if (rec) {
      upstream_ec = rec;
      break;
    }
  }
  if (auto tokens = decoder->tokens()) ex.tokens = *tokens;
  ex.stream_complete = decoder->complete();
  // A read cut short by the total deadline is the deadline's doing, not a stall.
  if (upstream_ec == beast::error::timeout && steady::now() >= deadline) past_total = true;
  if (client_gone) {
    // Closing the upstream connection is how a provider learns to stop generating.
    ex.keep_alive = false;
    ex.log.error = "client_closed";
    ex.log.status = 499;
    co_return;
  }
  if ((past_total || over_output) && !decoder->complete()) {
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
        framer.fail("Provider '" + ex.provider->name + "' " + what,
                    over_output ? "output_limit_exceeded" : "total_deadline_exceeded");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else if (!decoder->complete()) {
    bool timeout = upstream_ec == beast::error::timeout;
    const char* kind = upstream_failed ? "stream_error" : timeout ? "timeout" : "reset";
    metrics_.upstream_errors.inc({ex.provider->name, kind});
    ex.log.error = upstream_failed ? "upstream_stream_error"
                   : timeout       ? "upstream_stream_timeout"
                                   : "upstream_stream_cut";
    std::string what = upstream_failed ? redact(decoder->error(), ex.provider->api_key)
                       : timeout       ? "stalled mid-stream"
                                       : "cut the stream";
    const std::string& wire = framer.fail("Provider '" + ex.provider->name + "' " + what,
                                          timeout ? "upstream_timeout" : "upstream_error");
    ex.client.expires_after(t.idle_chunk);
    co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    ex.keep_alive = false;
  } else {
    if (!decoder->tokens()) estimate_tokens(ex);  // told to an Anthropic client as estimated
    const providers::answer_notes notes{ex.provider->name,
                                        providers::cost_usd(ex.tokens, *ex.model), ex.estimated};
    const std::string& wire = framer.end(ex.tokens, notes);
    ex.client.expires_after(t.idle_chunk);
    auto [wec, wn] =
        co_await net::async_write(ex.client, http::make_chunk(net::buffer(wire)), as_tuple);
    if (wec) ex.keep_alive = false;
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
