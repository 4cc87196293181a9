// Virtual keys: who a request is, and what it may do (rate limits, budget, regions). Keys come
// from the config (a SHA-256 or an environment variable) and from the admin API (stored in the
// ledger's database). Only SHA-256 digests are kept; a presented secret is hashed and the
// digests compared in constant time. No Beast/Asio here.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "providers/catalog.hpp"

namespace meridian::access {

using sha256_digest = std::array<unsigned char, 32>;
sha256_digest sha256(std::string_view data);
std::string to_hex(const sha256_digest& d);
std::optional<sha256_digest> digest_from_hex(std::string_view hex);

enum class key_source { config, admin };

struct virtual_key {
  std::string name;
  sha256_digest hash{};
  std::optional<std::uint64_t> rpm, tpm;
  std::optional<config::key_budget> budget;
  std::vector<std::string> allow_regions;  // empty = any region
  std::vector<std::string> allow_models;   // provider/model globs; empty = any model
  std::vector<std::string> allow_routes;   // route-match globs; empty = any route, or none
  key_source source = key_source::config;
  std::int64_t created_ms = 0;  // admin keys only
};

// The secret a client presented: "Authorization: Bearer X" (OpenAI SDKs) or "x-api-key: X"
// (Anthropic SDKs); empty when neither is given.
std::string_view presented_secret(std::string_view authorization, std::string_view x_api_key);

// An immutable set of keys by digest and by name.
class key_table {
 public:
  // The config's keys; a key whose key_env variable is unset is left out and named in
  // `problems` (it cannot authenticate anyone).
  static key_table from_config(const config::config& cfg, const providers::env_lookup& env,
                               std::vector<std::string>& problems);

  // false (and nothing added) when the name or the digest is already present.
  bool add(virtual_key key);
  // The key whose digest equals sha256(secret), compared in constant time; null when none.
  const virtual_key* authenticate(std::string_view secret) const;
  const virtual_key* by_name(std::string_view name) const;
  const virtual_key* by_digest(const sha256_digest& d) const;
  const std::vector<virtual_key>& all() const { return keys_; }
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<virtual_key> keys_;
  std::unordered_map<std::string, std::size_t> by_digest_;  // raw 32-byte digest -> index
};

// An admin key's limits as the JSON the ledger stores ({"rpm","tpm","budget","allow"}), and
// back. Both ignore name, hash and source. nullopt when the stored spec cannot be read whole
// (a key is never served with fewer limits than it was given).
std::string spec_json(const virtual_key& key);
std::optional<virtual_key> key_from_spec(std::string name, const sha256_digest& hash,
                                         std::string_view spec);

// A POST /admin/keys body, validated: {"name", "rpm"?, "tpm"?, "budget"?: {"usd","period"?},
// "allow"?: {"regions": [...]}, "key_sha256"?}. Without key_sha256 a secret is generated and
// returned once. Regions must be known to `cfg`.
struct new_key {
  virtual_key key;
  std::string secret;  // empty when the caller supplied key_sha256
};
struct key_request_error {
  std::string message;
  std::string param;
};
std::variant<new_key, key_request_error> parse_new_key(std::string_view body,
                                                       const config::config& cfg);

// "sk-mer-" + 48 hex digits from the OS's random source.
std::string generate_secret();

}  // namespace meridian::access
