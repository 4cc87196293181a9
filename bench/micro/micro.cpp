// Micro-benchmarks of the per-request hot paths that do not wait on a socket: the router's plan
// over 20 candidates, the facts parser, the SSE parser, the dialect translators and the metrics
// update path. Run: build/bench/bench/meridian-micro (bench/run.sh micro).
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "policies/facts.hpp"
#include "policies/health.hpp"
#include "policies/router.hpp"
#include "policies/task.hpp"
#include "providers/anthropic_inbound.hpp"
#include "providers/catalog.hpp"
#include "providers/dialect.hpp"
#include "providers/openai.hpp"
#include "providers/sse.hpp"
#include "stats/metrics.hpp"

using namespace meridian;

namespace {

std::string read_file(const std::string& rel) {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 5 providers x 4 models = 20 deployments, every one a candidate of each route.
std::string router_yaml() {
  std::string y = "providers:\n";
  const char* regions[] = {"cn", "us", "eu", "local", "us"};
  for (int p = 0; p < 5; ++p) {
    y += "  p" + std::to_string(p) +
         ":\n    base_url: http://127.0.0.1:" + std::to_string(9000 + p) +
         "/v1\n    region: " + regions[p] + "\n    models:\n";
    for (int m = 0; m < 4; ++m)
      y += "      m" + std::to_string(m) + ": { input: " + std::to_string(0.1 + p * 0.3 + m * 0.7) +
           ", output: " + std::to_string(0.4 + p + m * 2) +
           ", quality: " + std::to_string(50 + p * 5 + m * 3) + ", context: 128000 }\n";
  }
  y += "routes:\n";
  const char* policies[] = {"", "balanced", "cost", "latency", "quality", "ordered"};
  const char* names[] = {"auto",         "auto-balanced", "auto-cost",
                         "auto-latency", "auto-quality",  "auto-ordered"};
  for (int r = 0; r < 6; ++r) {
    y += std::string("  - match: ") + names[r] + "\n";
    if (*policies[r]) y += std::string("    policy: ") + policies[r] + "\n";
    y += "    candidates: [";
    for (int p = 0; p < 5; ++p)
      for (int m = 0; m < 4; ++m)
        y += (p + m ? ", p" : "p") + std::to_string(p) + "/m" + std::to_string(m);
    y += "]\n    retries: 3\n";
  }
  return y;
}

struct router_world {
  config::config cfg = config::parse_config(router_yaml(), "bench.yaml");
  providers::catalog cat =
      providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
  policies::health_book book;
  policies::health_snapshot health;
  policies::constraints key;
  std::mt19937_64 rng{42};

  router_world() {
    // Every deployment observed once, so latency/throughput have numbers to rank by.
    auto t = policies::health_clock::now();
    for (const auto& p : cat.providers)
      for (const auto& m : p.models) {
        (void)book.try_acquire(p.name, m.id, t);
        policies::observation seen;
        seen.latency_ms = 200.0 + 7.0 * static_cast<double>(p.name.size() + m.id.size());
        seen.ttft_ms = 100.0;
        seen.tokens_per_s = 50.0;
        book.record_success(p.name, m.id, t, seen);
      }
    health = book.snapshot(t);
  }
};

void router_plan(benchmark::State& state, const char* model) {
  router_world w;
  policies::request_facts facts;
  facts.model = model;
  facts.est_prompt_tokens = 400;
  facts.max_tokens = 256;
  {
    auto r = policies::plan(facts, w.cat, w.health, w.cfg.routes, w.key, w.rng);
    if (!r.ok() || r.attempts.empty()) {
      state.SkipWithError(("plan failed: " + (r.error ? r.error->message : "no attempts")).c_str());
      return;
    }
  }
  for (auto _ : state) {
    auto r = policies::plan(facts, w.cat, w.health, w.cfg.routes, w.key, w.rng);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK_CAPTURE(router_plan, price_weighted_20, "auto");
BENCHMARK_CAPTURE(router_plan, balanced_20, "auto-balanced");
BENCHMARK_CAPTURE(router_plan, cost_20, "auto-cost");
BENCHMARK_CAPTURE(router_plan, latency_20, "auto-latency");
BENCHMARK_CAPTURE(router_plan, addressed, "p3/m2");

// A typical chat body: system prompt, a few turns, sampling parameters (~1.3 KB).
std::string chat_body(bool stream = false) {
  std::string b =
      R"({"model":"p1/m1","messages":[{"role":"system","content":"You are a helpful assistant. Answer concisely and cite sources when you can."},)";
  for (int i = 0; i < 4; ++i)
    b +=
        R"({"role":"user","content":"Question number )" + std::to_string(i) +
        R"(: explain how an HTTP/1.1 keep-alive connection pool avoids the TCP handshake cost."},{"role":"assistant","content":"A pool keeps idle connections open and reuses them for the next request to the same host, so only the first request pays for the handshake."},)";
  b += R"({"role":"user","content":"Thanks!"}],"temperature":0.7,"max_tokens":512,"top_p":0.95)";
  if (stream) b += R"(,"stream":true)";
  return b + "}";
}

void facts_from_openai_body(benchmark::State& state) {
  std::string body = chat_body();
  for (auto _ : state) {
    auto f = policies::facts_from_openai_body(body);
    benchmark::DoNotOptimize(f);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(facts_from_openai_body);

// The overload for a body parse_chat_request already validated and scanned.
void facts_from_scanned_body(benchmark::State& state) {
  std::string body = chat_body();
  auto req = std::get<providers::chat_request>(providers::parse_chat_request(body));
  for (auto _ : state) {
    auto f = policies::facts_from_openai_body(body, req.scan);
    benchmark::DoNotOptimize(f);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(facts_from_scanned_body);

// The task classifier on a prompt of `range(0)` bytes of code-flavoured English.
void classify_task(benchmark::State& state) {
  std::string text;
  while (text.size() < static_cast<std::size_t>(state.range(0)))
    text += "Why does this Python function return None when the list is empty? def f(xs): ";
  text.resize(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto g = policies::classify_task(text, false, text.size() / 4);
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK(classify_task)->Arg(100)->Arg(1024);

void facts_with_provider_prefs(benchmark::State& state) {
  std::string body = chat_body();
  body.pop_back();
  body +=
      R"(,"models":["p2/m1","p3/m0"],"provider":{"order":["p1","p2"],"sort":"price","max_price":{"prompt":3,"completion":15}}})";
  for (auto _ : state) {
    auto f = policies::facts_from_openai_body(body);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(facts_with_provider_prefs);

// nlohmann::json::accept, which the pass-through path runs on every request body and every
// upstream answer; compare with facts_from_openai_body minus facts_from_scanned_body, which is
// the cost of the facts parser's own validator on the same body.
void json_accept(benchmark::State& state, std::string body) {
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::accept(body));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK_CAPTURE(json_accept, request_1_3kb, chat_body());

// OpenAI passthrough: validate + scan, then rewrite `model`.
void openai_parse_encode(benchmark::State& state) {
  std::string body = chat_body();
  for (auto _ : state) {
    auto req = providers::parse_chat_request(body);
    auto up = providers::encode_chat_request(body, std::get<providers::chat_request>(req), "m1");
    benchmark::DoNotOptimize(up);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(openai_parse_encode);

const char* k_completion =
    R"({"id":"chatcmpl-123","object":"chat.completion","created":1700000000,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! A keep-alive pool keeps idle connections open and reuses them, so only the first request pays for the TCP and TLS handshakes."},"finish_reason":"stop"}],"usage":{"prompt_tokens":312,"completion_tokens":31,"total_tokens":343,"prompt_tokens_details":{"cached_tokens":128}}})";

BENCHMARK_CAPTURE(json_accept, response_0_4kb, std::string(k_completion));

void openai_read_annotate_response(benchmark::State& state) {
  std::string body = k_completion;
  for (auto _ : state) {
    auto info = providers::read_chat_response(body);
    auto out = providers::annotate_chat_body(body, "p1", 0.000123);
    benchmark::DoNotOptimize(info);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(openai_read_annotate_response);

void dialect_encode(benchmark::State& state, config::dialect_kind kind) {
  const auto& d = providers::dialect_for(kind);
  std::string body = chat_body();
  auto req = std::get<providers::chat_request>(providers::parse_chat_request(body));
  for (auto _ : state) {
    auto up = d.encode_chat(body, req, "m1");
    benchmark::DoNotOptimize(up);
  }
}
BENCHMARK_CAPTURE(dialect_encode, openai, config::dialect_kind::openai);
BENCHMARK_CAPTURE(dialect_encode, anthropic, config::dialect_kind::anthropic);
BENCHMARK_CAPTURE(dialect_encode, gemini, config::dialect_kind::gemini);

void dialect_decode(benchmark::State& state, config::dialect_kind kind, std::string body) {
  const auto& d = providers::dialect_for(kind);
  {
    auto r = d.decode_chat(body, "m1");
    if (!std::holds_alternative<providers::decoded_chat>(r)) {
      state.SkipWithError("fixture does not decode");
      return;
    }
  }
  for (auto _ : state) {
    auto r = d.decode_chat(body, "m1");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK_CAPTURE(dialect_decode, openai, config::dialect_kind::openai, std::string(k_completion));
BENCHMARK_CAPTURE(dialect_decode, anthropic, config::dialect_kind::anthropic,
                  read_file("tests/fixtures/anthropic/message_text_cache.json"));
BENCHMARK_CAPTURE(dialect_decode, gemini, config::dialect_kind::gemini,
                  read_file("tests/fixtures/gemini/generate_text_cached.json"));

// A recorded upstream stream through the dialect's decoder: SSE parse + translation.
void dialect_stream(benchmark::State& state, config::dialect_kind kind, std::string wire) {
  const auto& d = providers::dialect_for(kind);
  std::vector<std::string> out;
  std::int64_t events = 0;
  for (auto _ : state) {
    auto dec = d.stream("m1");
    providers::sse_parser parser;
    parser.feed(wire);
    providers::sse_event ev;
    out.clear();
    while (parser.next(ev)) {
      dec->on_event(ev, out);
      ++events;
    }
    benchmark::DoNotOptimize(out);
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
std::string openai_stream_wire(int tokens) {
  std::string w;
  for (int i = 0; i < tokens; ++i)
    w +=
        R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m1","choices":[{"index":0,"delta":{"content":"word )" +
        std::to_string(i) + R"( "},"finish_reason":null}]})" + "\n\n";
  w +=
      R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
      "\n\n";
  w +=
      R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":64,"total_tokens":74}})"
      "\n\n";
  return w + "data: [DONE]\n\n";
}
BENCHMARK_CAPTURE(dialect_stream, openai_66_events, config::dialect_kind::openai,
                  openai_stream_wire(64));
BENCHMARK_CAPTURE(dialect_stream, anthropic_fixture, config::dialect_kind::anthropic,
                  read_file("tests/fixtures/anthropic/stream_text_cache.sse"));
BENCHMARK_CAPTURE(dialect_stream, gemini_fixture, config::dialect_kind::gemini,
                  read_file("tests/fixtures/gemini/stream_text.sse"));

// The SSE parser alone, fed in network-sized pieces (one event per read, as a paced upstream
// delivers them) and in 4 KiB blocks.
void sse_parse(benchmark::State& state) {
  std::string wire = openai_stream_wire(64);
  const std::size_t piece = static_cast<std::size_t>(state.range(0));
  std::int64_t events = 0;
  for (auto _ : state) {
    providers::sse_parser parser;
    providers::sse_event ev;
    for (std::size_t off = 0; off < wire.size(); off += piece) {
      parser.feed(std::string_view(wire).substr(off, piece));
      while (parser.next(ev)) ++events;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(sse_parse)->Arg(200)->Arg(4096);

void anthropic_inbound_request(benchmark::State& state) {
  std::string body = read_file("tests/fixtures/anthropic_inbound/claude_code_request.json");
  for (auto _ : state) {
    auto r = providers::anthropic_request_to_openai(body);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(anthropic_inbound_request);

void anthropic_inbound_response(benchmark::State& state) {
  std::string body = k_completion;
  for (auto _ : state) {
    auto r = providers::openai_response_to_anthropic(body, "claude-sonnet");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(anthropic_inbound_response);

// Metrics: the label sets the accounting path uses per request.
stats::registry& metrics_registry() {
  static stats::registry reg;
  return reg;
}
stats::counter_family& requests_counter() {
  static auto& c = metrics_registry().counter("bench_requests_total", "requests",
                                              {"provider", "model", "route", "status"});
  return c;
}
stats::histogram_family& latency_histogram() {
  static auto& h = metrics_registry().histogram("bench_latency_seconds", "latency",
                                                {"provider", "model"}, stats::latency_buckets());
  return h;
}

void metrics_counter_inc(benchmark::State& state) {
  auto& c = requests_counter();
  const stats::label_values labels{"deepseek", "deepseek-chat", "auto", "200"};
  for (auto _ : state) c.inc(labels);
}
BENCHMARK(metrics_counter_inc)->Threads(1)->Threads(2);

void metrics_histogram_observe(benchmark::State& state) {
  auto& h = latency_histogram();
  const stats::label_values labels{"deepseek", "deepseek-chat"};
  double v = 0.0001;
  for (auto _ : state) {
    h.observe(labels, v);
    v = v > 10 ? 0.0001 : v * 1.7;
  }
}
BENCHMARK(metrics_histogram_observe)->Threads(1)->Threads(2);

void metrics_expose(benchmark::State& state) {
  auto& c = requests_counter();
  for (int p = 0; p < 10; ++p)
    for (int s = 0; s < 5; ++s)
      c.inc({"p" + std::to_string(p), "m", "auto", std::to_string(200 + s)});
  for (auto _ : state) {
    auto text = metrics_registry().expose();
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(metrics_expose);

}  // namespace

BENCHMARK_MAIN();
