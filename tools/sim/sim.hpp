// meridian-sim: simulated OpenAI-dialect providers (config, pure reply logic, the server).
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
};

struct tls_files {
  std::string cert;
  std::string key;
};

struct provider_config {
  std::string name;
  std::uint16_t port = 0;  // 0 = any free port
  std::vector<std::string> models;
  std::chrono::milliseconds ttft{0};
  double tokens_per_second = 0;  // 0 = as fast as possible
  int reply_tokens = 20;
  std::string api_key;  // empty = no authentication
  std::optional<tls_files> tls;
  std::string fault;  // default fault string, validated at load
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

// Binds every provider, prints one "listening" JSON line per provider and a "ready" line to
// `out`, then serves until SIGINT/SIGTERM. Throws std::runtime_error if a port cannot be bound.
void run(const sim_config& config, const run_options& options, std::ostream& out);

}  // namespace meridian::sim
