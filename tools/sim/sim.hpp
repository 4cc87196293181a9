// meridian-sim: simulated OpenAI-, Anthropic- and Gemini-dialect providers (config, pure reply
// logic, the server).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace meridian::sim {

// Thrown for any invalid SIM.yaml content; the message names the YAML path.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parsed from a fault string such as "status=503;retry_after=2" or "cut_after=3".
struct fault {
  std::optional<int> status;
  std::optional<int> retry_after;  // seconds, sent as Retry-After with `status`
  std::chrono::milliseconds delay{0};
  bool reset = false;
  std::optional<int> cut_after;    // content events before an abrupt close
  std::optional<int> stall_after;  // content events before a stall of `stall`
  std::chrono::milliseconds stall{0};
  bool malformed = false;
  std::optional<std::size_t> cut_body;  // whole answers: body bytes sent before a reset
  std::string content_type;             // overrides the Content-Type of a 200 answer
  std::optional<std::size_t> oversize;  // whole answers: bytes of JSON padding added to the body
  std::optional<int> sse_error;         // streams: content events before an error event
  std::optional<int> truncate_sse;      // streams: content events before a clean mid-event end
  bool no_usage = false;  // OpenAI dialect: no usage in whole answers, no usage chunk in streams
                          // (as some local servers): the gateway must estimate
  // fails=K/N: the rest of the fault applies to the first K of every N counted requests of the
  // provider, the others are served normally (a flaky server, in bursts a circuit breaker sees).
  std::optional<std::pair<int, int>> fails;
  // error=context_length|content_policy|quota: the dialect's documented error answer of that
  // kind (OpenAI's context_length_exceeded, Anthropic's "prompt is too long", ...).
  std::string error;

  // Whether the fault applies to the provider's `n`th counted request (from 1).
  bool applies_to(std::uint64_t n) const {
    return !fails || static_cast<int>((n - 1) % static_cast<std::uint64_t>(fails->second)) <
                         fails->first;
  }
};

struct tls_files {
  std::string cert;
  std::string key;
};

// The wire API a simulated provider speaks.
enum class dialect { openai, anthropic, gemini };

struct provider_config {
  std::string name;
  sim::dialect dialect = sim::dialect::openai;
  std::uint16_t port = 0;  // 0 = any free port
  std::vector<std::string> models;
  std::chrono::milliseconds ttft{0};
  double tokens_per_second = 0;  // 0 = as fast as possible
  int reply_tokens = 20;
  std::string api_key;  // empty = no authentication
  std::optional<tls_files> tls;
  std::string fault;  // default fault string, validated at load
  // OpenAI dialect: a prompt cache as providers keep one. A request whose leading messages
  // (with its tools) this provider has seen before reports them as cached_tokens.
  bool prompt_cache = false;
};

struct sim_config {
  std::vector<provider_config> providers;
};

struct run_options {
  std::string host = "127.0.0.1";
  int threads = 1;
};

// "200ms", "1s", "2m" or a bare number of milliseconds; throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);

// Parses a `;`-separated fault string; throws std::invalid_argument with a readable message.
fault parse_fault(std::string_view text);

// Parses SIM.yaml text; throws config_error.
sim_config parse_config(const std::string& yaml_text);
sim_config load_config(const std::string& path);

// The deterministic reply as tokens, each a word followed by one space.
std::vector<std::string> reply_tokens(std::string_view provider, std::string_view model,
                                      std::string_view last_user_text, int count);

// Text of a message's content: a string, or the "text" fields of an array of parts.
std::string content_text(const nlohmann::json& content);

// Sum over messages of 4 + ceil(utf8 bytes of text content / 4).
int count_prompt_tokens(const nlohmann::json& messages);

// "openai", "anthropic" or "gemini"; parse_dialect throws std::invalid_argument.
std::string_view dialect_name(dialect d);
dialect parse_dialect(std::string_view text);

// A body field is missing or malformed; the message is the one a real provider would send.
class request_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The tool call the simulated model makes when the request offers tools and the last user text
// mentions "weather": the first tool, asked about Paris. It costs k_tool_call_tokens.
struct tool_call {
  std::string id;
  std::string name;
  nlohmann::json input;
};
inline constexpr int k_tool_call_tokens = 10;

// The arguments the simulated model passes to a tool with JSON schema `schema`: a shell tool (a
// required string "command" or "cmd" and no "location": Claude Code's Bash, Codex's
// exec_command) gets {"command"|"cmd":"echo meridian-tool-ok"}, so an agent really runs
// something; any other tool {"location":"Paris"}.
nlohmann::json tool_arguments(const nlohmann::json& schema);

// True if `text` contains "weather" in any letter case.
bool mentions_weather(std::string_view text);

// A stream as written to the wire, one string per write. `content` holds one event per reply
// token: ttft comes before the first, tokens_per_second paces the rest, and the cut_after /
// stall_after faults count them. `prelude` goes out right before the first content event,
// `epilogue` after the last.
struct stream_script {
  std::vector<std::string> prelude;
  std::vector<std::string> content;
  std::vector<std::string> epilogue;
};

// --- OpenAI chat completions (POST /v1/chat/completions) ---

struct openai_reply {
  std::string model;
  std::vector<std::string> tokens;
  std::string finish_reason;  // stop, length or tool_calls
  int prompt_tokens = 0;
  int cached_tokens = 0;  // of prompt_tokens, served from the simulated prompt cache
  std::string id;  // chatcmpl-sim-N
  std::int64_t created = 0;
  std::optional<tool_call> tool;  // call_sim_N

  int completion_tokens() const;
};

// Plans the reply to a chat request whose `model` and `messages` the server checked. The reply
// echoes the last user turn (system and developer turns after it do not end it), or the tool
// results that end the conversation. With `function` tools offered, tool_choice not "none" and
// "weather" in that user turn, the first function is called after a short preamble.
// max_completion_tokens / max_tokens below `reply_tokens` cap the reply ("length").
openai_reply plan_openai_reply(const nlohmann::json& request, std::string_view provider,
                               int reply_tokens, std::uint64_t serial);

// `data: JSON` chunks of a streamed chat completion, then `data: [DONE]`; a tool call comes
// after the text, its arguments in two pieces.
stream_script openai_stream(const openai_reply& r, bool include_usage);

// The non-streamed chat completion, usage included.
nlohmann::json openai_completion(const openai_reply& r);

// --- OpenAI Responses (POST /v1/responses, on OpenAI-dialect providers) ---

// The chat request a Responses request stands for (instructions, input items, function tools,
// tool_choice, max_output_tokens), for plan_openai_reply.
nlohmann::json responses_as_chat(const nlohmann::json& request);

// The Response object of a planned reply: a message item, a function_call item for a tool call,
// usage; `request` gives what the Response echoes (previous_response_id, store).
nlohmann::json responses_response(const openai_reply& r, const nlohmann::json& request);

// The Responses event stream of a planned reply (`event:` and `data:` with sequence_number):
// response.created, .in_progress, the message's item and part events with one output_text
// delta per token, a function call's item and argument events, then response.completed (or
// .incomplete) with usage. No [DONE].
stream_script responses_stream(const openai_reply& r, const nlohmann::json& request);

// --- Anthropic Messages (POST /v1/messages) ---

struct anthropic_reply {
  std::string id;  // msg_sim_N
  std::string model;
  std::vector<std::string> tokens;  // the text block
  std::string stop_reason;          // end_turn, max_tokens or tool_use
  int input_tokens = 0;             // excludes cache reads, as Anthropic reports it
  int cache_read_input_tokens = 0;
  int cache_creation_input_tokens = 0;
  std::optional<tool_call> tool;

  int output_tokens() const;
};

// Prompt tokens of a Messages request: `system` counts as one more message.
int count_anthropic_prompt_tokens(const nlohmann::json& request);

// Plans the reply to a Messages request whose model the provider serves. Throws request_error
// for a missing max_tokens or messages. With cache_control anywhere in the request the system
// prompt's tokens are reported as cache reads.
anthropic_reply plan_anthropic_reply(const nlohmann::json& request, std::string_view provider,
                                     int reply_tokens, std::uint64_t serial);

// The non-streamed Messages response body.
nlohmann::json anthropic_message(const anthropic_reply& r);

// `event: NAME` + `data: JSON` SSE events of a streamed Messages response.
stream_script anthropic_stream(const anthropic_reply& r);

// {"type":"error","error":{"type":...,"message":...}} with the error type Anthropic uses for
// `status` (529 is overloaded_error).
std::string anthropic_error_body(int status, std::string_view message);

// --- Gemini (POST /v1beta/models/{model}:generateContent and :streamGenerateContent) ---

inline constexpr int k_thought_tokens = 5;

struct gemini_reply {
  std::string response_id;
  std::string model;
  std::vector<std::string> tokens;
  std::string finish_reason;  // STOP or MAX_TOKENS
  bool thought = false;       // a thought part comes first, costing k_thought_tokens
  int prompt_tokens = 0;
  int cached_tokens = 0;  // a subset of prompt_tokens, as Gemini reports it
  std::optional<tool_call> tool;

  int candidates_tokens() const;
  int thoughts_tokens() const;
};

// Prompt tokens of a generateContent request: contents plus systemInstruction, each counted
// like an OpenAI message.
int count_gemini_prompt_tokens(const nlohmann::json& request);

// Plans the reply; throws request_error when contents is missing. Thinking happens with a
// generationConfig.thinkingConfig (unless thinkingBudget is 0) or a model named *thinking* or
// *pro*; cachedContent makes the system instruction's tokens cached.
gemini_reply plan_gemini_reply(const nlohmann::json& request, std::string_view provider,
                               std::string_view model, int reply_tokens, std::uint64_t serial);

// The non-streamed GenerateContentResponse.
nlohmann::json gemini_response(const gemini_reply& r);

// One GenerateContentResponse per token, each carrying the usage so far; the last carries the
// finishReason. SSE events end in CRLF CRLF like Google's. A tool call is the last event.
stream_script gemini_stream(const gemini_reply& r);

// The same chunks as gemini_stream, as the JSON array Gemini streams without ?alt=sse.
nlohmann::json gemini_stream_array(const gemini_reply& r);

// {"error":{"code":N,"message":...,"status":"INVALID_ARGUMENT"|...}}
std::string gemini_error_body(int status, std::string_view message);

// --- OpenAI embeddings (POST /v1/embeddings) ---

inline constexpr int k_embedding_dimensions = 8;

// A unit-length vector derived from a hash of the text, identical on every call, each value
// rounded to 6 decimals.
std::vector<double> embedding_vector(std::string_view text);

// The response to an embeddings request for `model`. Throws request_error if `input` is not a
// string or a non-empty array of strings. encoding_format "base64" packs little-endian floats.
nlohmann::json embeddings_response(const nlohmann::json& request, std::string_view model);

// Binds every provider, prints one "listening" JSON line per provider and a "ready" line to
// `out`, then serves until SIGINT/SIGTERM. Throws std::runtime_error if a port cannot be bound.
void run(const sim_config& config, const run_options& options, std::ostream& out);

}  // namespace meridian::sim
