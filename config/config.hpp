// Typed configuration: one struct per YAML section, parsed and validated by load_config().
// A Config is immutable once loaded; the gateway shares it as std::shared_ptr<const Config>.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::config {

using duration = std::chrono::milliseconds;

// An error in the configuration; what() names the YAML path and line, e.g.
// "providers.local.base_url (line 12): expected a URL starting with http:// or https://".
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

struct server_limits {
  std::uint64_t max_body_bytes = 8ull << 20;
  std::uint32_t max_header_bytes = 64u << 10;
  std::uint32_t max_connections = 10000;  // per listener: a flood on one never locks out another
  // Whole upstream answers held in memory at once, over every request: past it, an answer is
  // refused (502 upstream_too_large) rather than the process growing without bound.
  std::uint64_t max_buffered_bytes = 256ull << 20;
};

struct server_timeouts {
  duration header{std::chrono::seconds(10)};
  duration connect{std::chrono::seconds(5)};
  duration first_byte{std::chrono::seconds(60)};
  duration idle_chunk{std::chrono::seconds(60)};
  duration total{std::chrono::seconds(600)};
  duration drain{std::chrono::seconds(30)};  // graceful shutdown: wait for in-flight requests
};

struct server_config {
  endpoint listen{"0.0.0.0", 8080};
  std::optional<endpoint> admin_listen;
  unsigned threads = 0;  // 0 = one per core
  // CPUs the event-loop threads are pinned to (thread i on cpus[i % size]); the gateway's other
  // threads (ledger writer, control, exporters) then run on the CPUs the process may use that
  // are not listed, when there are any. Empty: no pinning.
  std::vector<unsigned> cpus;
  // The gateway always asks an OpenAI-family upstream for a stream's usage chunk (choices: [])
  // for its own accounting; a chat client that did not ask gets it only when this is true.
  bool always_stream_usage = false;
  // Access-log /healthz and /readyz answers that succeed (failures always are).
  bool log_probes = false;
  server_limits limits;
  server_timeouts timeouts;
};

// What a request may need from a model; a model lacking one is never sent such a request.
// `reasoning`: the model takes a reasoning control (OpenAI's `reasoning_effort`, Gemini's
// thinkingConfig); translated requests lose theirs on a model without it.
enum class capability { tools, images, json, reasoning };

// Facts about one model; prices are USD per million tokens. Unset fields come from the catalog.
struct model_config {
  std::optional<double> input, output, cache_read, cache_write;
  std::optional<int> quality;
  // `quality: {default: 80, code: 88, math: 70}`: the quality for requests of a task (see
  // k_task_names), used by quality floors and the quality and balanced policies.
  std::map<std::string, int> task_quality;
  std::optional<std::uint32_t> context;
  // The deployment's own rate limit (requests and tokens per sliding minute): past it the
  // candidate is skipped before the provider would answer 429. Unset: none.
  std::optional<std::uint64_t> rpm, tpm;
  std::optional<double> kwh_per_million_tokens;  // unset: the provider's, then energy's
  // The complete set the model supports; unset keeps the catalog's (tools and json by default).
  std::optional<std::vector<capability>> capabilities;
  int line = 0;
};

// The tasks the request classifier tells apart (policies/task.hpp), as `quality` keys name them.
inline constexpr std::string_view k_task_names[] = {"code",         "math",     "translation",
                                                    "long_context", "tool_use", "chat"};

struct tls_config {
  bool verify = true;
  std::string ca_file;  // empty: the system's trust store
};

enum class dialect_kind { openai, anthropic, gemini };

struct provider_config {
  std::string name;
  std::string preset;  // a catalog entry; empty = everything given here
  std::optional<dialect_kind> dialect;
  std::string base_url;
  std::string region;
  std::string api_key_env;   // the variable holding the key; the key itself never
  std::string api_key_file;  // appears in YAML
  tls_config tls;
  std::map<std::string, std::string> headers;    // extra headers sent upstream
  std::map<std::string, model_config> models;    // by the provider's own model name
  std::optional<double> kwh_per_million_tokens;  // unset: energy.kwh_per_million_tokens
  // `api: [chat, responses]`: the OpenAI APIs the provider serves; unset: its preset's (the
  // `openai` preset speaks both), else chat only. Responses clients pass through to it.
  std::optional<bool> responses_api;
  // The account's rate limit over all its models, as for a model's rpm/tpm. Unset: none.
  std::optional<std::uint64_t> rpm, tpm;
  // Anthropic dialect: mark the stable prefix of translated requests with cache_control, so
  // OpenAI-shaped clients get Anthropic's prompt cache (providers::add_cache_breakpoints).
  bool cache_prompts = false;
  int line = 0;
};

// How a route orders its candidates; see policies/strategy.hpp for each one's rule.
enum class route_policy { cost, latency, throughput, quality, balanced, weighted, ordered };

// Relative weights of the balanced policy; only their ratios matter.
struct route_weights {
  double cost = 0.5, latency = 0.2, quality = 0.3;
};

// One entry of a route's `candidates`: "provider/model", or globs such as "local/*".
struct route_candidate {
  std::string pattern;
  double weight = 1.0;     // the share under policy weighted
  std::uint32_t tier = 0;  // the index into route_config::tiers; 0 for a route without tiers
  int line = 0;
};

// One of a route's `tiers`: its candidates (route_candidate::tier) are ranked by its own policy,
// and a later tier's candidates come only after every candidate of the earlier ones.
struct route_tier {
  std::optional<route_policy> policy;  // unset: the route's
  std::optional<route_weights> weights;
  int line = 0;
};

// A route's `when`: besides the model name, what a request must carry for the route to match.
// Every condition given must hold; values may use '*' globs.
struct route_when {
  std::vector<std::pair<std::string, std::string>> headers;   // lowercase name, value
  std::vector<std::string> keys;                              // the caller's key name, any of
  std::vector<std::pair<std::string, std::string>> metadata;  // the request's `metadata` members
  bool empty() const { return headers.empty() && keys.empty() && metadata.empty(); }
};

// Hard constraints of a route: a candidate failing any of them is never tried.
struct route_require {
  std::optional<int> min_quality;
  std::vector<std::string> regions;    // empty = any region
  std::vector<std::string> providers;  // empty = any provider
  std::vector<std::string> exclude_providers;
  std::optional<double> max_prompt_price;  // USD per million tokens
  std::optional<double> max_completion_price;
  std::vector<capability> capabilities;
};

struct route_config {
  std::string match;                   // the model name a client sends; exact or with '*' globs
  std::optional<route_policy> policy;  // unset: OpenRouter's price-weighted default
  route_weights weights;
  std::vector<route_candidate> candidates;  // every tier's, in file order
  std::vector<route_tier> tiers;            // empty: one tier, ranked by `policy`
  route_when when;
  route_require require;
  unsigned retries = 2;  // attempts after the first
  bool fallback = true;  // false: only the first candidate is tried
  // The model name whose route is planned after this one's candidates, when they are all
  // excluded, open or failed; empty for none.
  std::string fallback_route;
  int line = 0;
};

struct region_config {
  double electricity_usd_per_kwh = 0;
  int line = 0;  // 0 = a built-in default
};

struct energy_config {
  double kwh_per_million_tokens = 1.0;
};

// Token accounting: where the ledger lives and how it is kept.
// Stored Responses (POST /v1/responses with store: true, the default), kept in the ledger's
// database for GET /v1/responses/{id} and previous_response_id.
struct responses_store_config {
  bool enabled = true;                              // false: nothing is stored (store: false)
  duration retention{std::chrono::hours(24 * 30)};  // OpenAI keeps stored responses 30 days
  std::uint64_t max_bytes = 256ull << 20;           // all stored responses; oldest go first
};

struct stats_config {
  std::string ledger = "sqlite:meridian-ledger.db";  // as written: "sqlite:PATH", "postgres://…"
                                                     // or "none"
  std::string ledger_path = "meridian-ledger.db";    // the SQLite file; empty = not SQLite
  std::string ledger_postgres;  // a libpq connection URL (password from PGPASSWORD, never YAML)
  duration flush_interval{std::chrono::seconds(1)};
  duration retention{std::chrono::hours(24 * 30)};  // per-request generation records
  std::string baseline;              // "provider/model" priced for the savings figure; empty = none
  std::uint64_t max_queue = 100000;  // events buffered before new ones are dropped
  responses_store_config responses;
};

// The health book's circuit breaker and averages; see policies/health.hpp.
struct health_config {
  unsigned failure_threshold = 3;                     // consecutive failures that open a circuit
  duration cooldown{std::chrono::seconds(30)};        // open -> a half-open probe
  duration recent_failure{std::chrono::seconds(30)};  // the default policy skips such providers
  double alpha = 0.2;                                 // EWMA weight of the newest sample, (0, 1]
};

// Client authentication and the admin API.
struct auth_config {
  bool required = false;          // true: a request without a known virtual key gets 401
  bool required_written = false;  // the file says `required:` itself (a reload that turns
                                  // authentication off must say so, not just lose the line)
  std::string admin_token_env = "MERIDIAN_ADMIN_TOKEN";  // /admin/* needs this bearer token
};

enum class budget_period { day, month };  // UTC calendar periods

struct key_budget {
  double usd = 0;
  budget_period period = budget_period::month;
};

// One virtual key. Its secret is never in the YAML: a SHA-256 (hex) of it, or an environment
// variable holding it.
struct key_config {
  std::string name;
  std::string key_sha256;  // 64 lowercase hex digits
  std::string key_env;
  std::optional<std::uint64_t> rpm, tpm;  // unset: no limit
  std::optional<key_budget> budget;
  std::vector<std::string> allow_regions;  // data residency; empty = any region
  std::vector<std::string> allow_models;   // provider/model globs; empty = any model
  std::vector<std::string> allow_routes;   // route matches; empty = any route (and no route)
  int line = 0;
};

// Where rate-limit and budget counters live: this process, or Redis shared by a fleet.
struct state_config {
  std::string url = "local";  // "local" or "redis://host:port[/db]"
  bool fail_open = false;     // Redis unreachable: admit (true) or refuse with 503 (false)
  duration timeout{std::chrono::milliseconds(250)};
  // Tokens reserved for the answer when a request sets no max_tokens.
  std::uint64_t reserve_tokens = 4096;
};

// OpenTelemetry tracing: a span per request and per attempt, exported as OTLP/HTTP JSON.
struct tracing_config {
  std::string endpoint;  // the collector's base URL (http://host:4318); empty: tracing is off
  std::string service_name = "meridian";
  std::uint64_t max_queue = 4096;  // spans held for export; past it new ones are dropped
  duration flush_interval{std::chrono::seconds(1)};
};

// Session affinity (policies/affinity.hpp): a conversation sticks to the deployment that holds
// its prompt cache while it stays planned in the same route and tier.
struct affinity_config {
  bool enabled = true;
  duration ttl{std::chrono::minutes(5)};  // providers keep a prompt cache about five minutes
  std::uint64_t max_sessions = 100000;
  std::string header;  // a request header naming the session, tried first; lowercase
};

struct config {
  server_config server;
  affinity_config affinity;
  std::vector<provider_config> providers;        // in file order
  std::map<std::string, model_config> models;    // "provider/model" overrides
  std::vector<route_config> routes;              // in file order; the first match wins
  std::map<std::string, region_config> regions;  // built-in cn, us, eu, local plus declared
  energy_config energy;
  stats_config stats;
  health_config health;
  auth_config auth;
  std::vector<key_config> keys;  // in file order
  state_config state;
  tracing_config tracing;
  std::string source;  // the file it came from
};

// The regions every config knows, with 2026 industrial electricity prices (USD per kWh).
std::map<std::string, region_config> default_regions();

// Parses YAML text; `source` names it in messages. Throws config_error on the first problem.
config parse_config(const std::string& yaml_text, const std::string& source = "<string>");
// Reads and parses a file.
config load_config(const std::string& path);

// "10s", "250ms", "2m", "1h", "30d" -> duration; throws std::invalid_argument.
duration parse_duration(const std::string& text);
// "8MiB", "512KiB", "1GB", "1000" -> bytes; throws std::invalid_argument.
std::uint64_t parse_size(const std::string& text);
// '*' matches any run of characters (including none); everything else matches itself. Route
// matches, candidates and key allow-lists use it.
bool glob_match(std::string_view pattern, std::string_view text);
// "host:port" or ":port" -> endpoint; throws std::invalid_argument.
endpoint parse_endpoint(const std::string& text);

// The name among `names` closest to a mistyped `word` (edit distance at most a third of its
// length, and at least 1), or empty: for "did you mean" in messages.
std::string closest_name(std::string_view word, const std::vector<std::string>& names);

std::string_view to_string(dialect_kind d);
std::string_view to_string(route_policy p);
std::optional<route_policy> parse_route_policy(std::string_view text);
std::string_view to_string(capability c);
std::string_view to_string(budget_period p);

}  // namespace meridian::config
