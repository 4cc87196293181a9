// The resolved catalog: every configured provider with its preset filled in, its key read
// from the environment, and its models priced. Built once per config snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "providers/usage.hpp"

namespace meridian::providers {

struct model_info {
  std::string id;                                                 // the provider's own name for it
  double input = 0, output = 0, cache_read = 0, cache_write = 0;  // USD per million tokens
  int quality = 50;
  std::uint32_t context = 0;  // 0 = unknown
  std::string author;         // the model's vendor ("deepseek", "openai", "meta", ...)
  // Where the facts came from, so `meridian check` can show which prices are built-in defaults:
  // "catalog" (preset only), "file" (declared in YAML only) or "catalog+file" (preset, then
  // overridden in YAML).
  std::string source = "catalog";
  // What requests it accepts: tool calls, image inputs, JSON mode. Hard routing constraints.
  bool tools = true, images = false, json = true;
  // Whether it takes a reasoning control (`reasoning_effort`, Gemini's thinkingConfig): a
  // translated request's (an Anthropic client's `thinking`) is dropped and listed without it.
  bool reasoning = false;
  std::map<std::string, int, std::less<>> task_quality;  // by task name; else `quality`
  std::uint64_t rpm = 0, tpm = 0;  // the deployment's own rate limit; 0 = none
};

// Whether a built-in preset's model takes image input, judged by its id.
bool preset_model_sees_images(std::string_view model_id);
// Whether a model takes a reasoning control, judged by its id (OpenAI's o-series and gpt-5,
// Gemini 2.5 and later): the default for preset and declared models alike.
bool model_takes_reasoning_effort(std::string_view model_id);

// USD for `u` at `m`'s prices (per million tokens); reasoning is billed as output.
double cost_usd(const usage& u, const model_info& m);

// The vendor of a model, guessed from its name; "unknown" when nothing matches.
std::string guess_author(std::string_view model_id);

struct base_url {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string path;  // without a trailing '/', e.g. "/v1"
};

// Parses "https://host[:port][/path]"; nullopt if it is not an http(s) URL.
std::optional<base_url> parse_base_url(const std::string& url);

enum class auth_style { bearer, x_api_key, x_goog_api_key, none };

struct provider {
  std::string name;
  config::dialect_kind dialect = config::dialect_kind::openai;
  std::string url_text;  // base URL as configured, for display
  base_url url;
  std::string region;
  // "catalog" or "file" for each of the two, so `meridian check` can show which one YAML set;
  // a region neither sets is "default" ("any").
  std::string url_source, region_source;
  std::string as_of;  // date of the preset's facts ("2026-11"); empty without a preset
  auth_style auth = auth_style::bearer;
  // A preset's key variable is unset but YAML points it at a loopback server (a simulator or a
  // local proxy), so it runs without a key instead of being skipped.
  bool keyless_loopback = false;
  std::string api_key;  // secret: never logged, never returned
  config::tls_config tls;
  std::map<std::string, std::string> headers;
  std::vector<model_info> models;
  // It serves OpenAI's Responses API (/responses) too: Responses clients pass through.
  bool responses_api = false;
  std::uint64_t rpm = 0, tpm = 0;  // the account's rate limit over all its models; 0 = none
  bool cache_prompts = false;      // mark translated Anthropic requests for the prompt cache

  const model_info* find_model(std::string_view id) const;
};

struct skipped_provider {
  std::string name;
  std::string reason;               // e.g. "DEEPSEEK_API_KEY is not set"
  std::vector<std::string> models;  // the ids it would serve, so routes are checked all the same
};

struct catalog {
  std::vector<provider> providers;
  std::vector<skipped_provider> skipped;

  const provider* find(std::string_view name) const;
};

// Reads an environment variable; injectable so tests need no real environment.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
env_lookup process_env();

// Resolves presets, keys and model facts. Throws config::config_error for configuration
// mistakes (unknown preset, a dialect this build cannot speak); a provider whose key is
// missing is listed in `skipped`, not fatal.
catalog build_catalog(const config::config& cfg, const env_lookup& env = process_env());

// Names of the built-in presets.
std::vector<std::string> preset_names();

// A preset's own facts, for listings (README, `check`); nullopt for an unknown name.
struct preset_summary {
  std::string name, base_url, region, as_of;
  config::dialect_kind dialect = config::dialect_kind::openai;
};
std::optional<preset_summary> describe_preset(std::string_view name);

// True for 127.0.0.0/8, ::1 and "localhost": hosts that never leave this machine.
bool is_loopback_host(std::string_view host);

}  // namespace meridian::providers
