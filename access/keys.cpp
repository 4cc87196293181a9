// Virtual keys: digests, the key table, and the admin API's key specs.
#include "access/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace meridian::access {

sha256_digest sha256(std::string_view data) {
  sha256_digest out{};
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha256(), nullptr) != 1 ||
      n != out.size())
    throw std::runtime_error("SHA-256 failed");
  return out;
}

std::string to_hex(const sha256_digest& d) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(d.size() * 2);
  for (unsigned char c : d) {
    out += k_digits[c >> 4];
    out += k_digits[c & 15];
  }
  return out;
}

std::optional<sha256_digest> digest_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  sha256_digest out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return out;
}

std::string_view presented_secret(std::string_view authorization, std::string_view x_api_key) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  authorization = trim(authorization);
  if (authorization.size() > 7) {
    std::string scheme(authorization.substr(0, 7));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme == "bearer ") return trim(authorization.substr(7));
  }
  return trim(x_api_key);
}

key_table key_table::from_config(const config::config& cfg, const providers::env_lookup& env,
                                 std::vector<std::string>& problems) {
  key_table out;
  for (const auto& k : cfg.keys) {
    // Initialised whole: assigning into a default optional trips GCC 12's -Wmaybe-uninitialized.
    virtual_key v{.name = k.name,
                  .hash = {},
                  .rpm = k.rpm,
                  .tpm = k.tpm,
                  .budget = k.budget,
                  .allow_regions = k.allow_regions,
                  .allow_models = k.allow_models,
                  .allow_routes = k.allow_routes};
    if (!k.key_sha256.empty()) {
      v.hash = *digest_from_hex(k.key_sha256);  // the config checked 64 hex digits
    } else {
      auto secret = env(k.key_env);
      if (!secret || secret->empty()) {
        problems.push_back("key '" + k.name + "': " + k.key_env +
                           " is not set; this key cannot authenticate");
        continue;
      }
      v.hash = sha256(*secret);
    }
    if (!out.add(std::move(v)))
      problems.push_back("key '" + k.name + "': the same secret as another key; left out");
  }
  return out;
}

bool key_table::add(virtual_key key) {
  std::string digest(key.hash.begin(), key.hash.end());
  if (by_digest_.count(digest) || by_name(key.name)) return false;
  by_digest_.emplace(std::move(digest), keys_.size());
  keys_.push_back(std::move(key));
  return true;
}

const virtual_key* key_table::authenticate(std::string_view secret) const {
  if (secret.empty()) return nullptr;
  const sha256_digest d = sha256(secret);
  auto it = by_digest_.find(std::string(d.begin(), d.end()));
  if (it == by_digest_.end()) return nullptr;
  const virtual_key& k = keys_[it->second];
  // The map found it by equality already; the constant-time check keeps the final comparison
  // independent of where the digests differ, whatever the map's implementation does.
  return CRYPTO_memcmp(k.hash.data(), d.data(), d.size()) == 0 ? &k : nullptr;
}

const virtual_key* key_table::by_digest(const sha256_digest& d) const {
  auto it = by_digest_.find(std::string(d.begin(), d.end()));
  return it == by_digest_.end() ? nullptr : &keys_[it->second];
}

const virtual_key* key_table::by_name(std::string_view name) const {
  for (const auto& k : keys_)
    if (k.name == name) return &k;
  return nullptr;
}

std::string spec_json(const virtual_key& key) {
  nlohmann::json j = nlohmann::json::object();
  if (key.rpm) j["rpm"] = *key.rpm;
  if (key.tpm) j["tpm"] = *key.tpm;
  if (key.budget)
    j["budget"] = {{"usd", key.budget->usd}, {"period", to_string(key.budget->period)}};
  if (!key.allow_regions.empty()) j["allow"]["regions"] = key.allow_regions;
  if (!key.allow_models.empty()) j["allow"]["models"] = key.allow_models;
  if (!key.allow_routes.empty()) j["allow"]["routes"] = key.allow_routes;
  return j.dump();
}

namespace {

struct spec_error {
  std::string message, param;
};

// Reads the limit members of a spec or of an admin request into `key`; throws spec_error.
void read_limits(const nlohmann::json& j, virtual_key& key, const config::config* cfg) {
  auto count = [&](const char* name) -> std::optional<std::uint64_t> {
    if (!j.contains(name) || j[name].is_null()) return std::nullopt;
    const auto& v = j[name];
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() == 0 ||
        v.get<std::uint64_t>() > 0xffffffffu)
      throw spec_error{std::string(name) + " must be a whole number from 1 to 4294967295", name};
    return v.get<std::uint64_t>();
  };
  key.rpm = count("rpm");
  key.tpm = count("tpm");
  if (j.contains("budget") && !j["budget"].is_null()) {
    const auto& b = j["budget"];
    if (!b.is_object() || !b.contains("usd") || !b["usd"].is_number() ||
        !std::isfinite(b["usd"].get<double>()) || b["usd"].get<double>() < 0)
      throw spec_error{"budget must be {\"usd\": a number >= 0, \"period\": \"day\"|\"month\"}",
                       "budget"};
    config::key_budget out;
    out.usd = b["usd"].get<double>();
    if (b.contains("period")) {
      const auto& p = b["period"];
      if (p == "day")
        out.period = config::budget_period::day;
      else if (p != "month")
        throw spec_error{"budget.period must be \"day\" or \"month\"", "budget.period"};
    }
    key.budget = out;
  }
  if (j.contains("allow") && !j["allow"].is_null()) {
    const auto& a = j["allow"];
    const char* shape =
        "allow must be {\"regions\", \"models\" or \"routes\": [at least one name]}";
    if (!a.is_object() || a.empty()) throw spec_error{shape, "allow"};
    for (const auto& [member, list] : a.items()) {
      const std::string param = "allow." + member;
      auto* out = member == "regions"  ? &key.allow_regions
                  : member == "models" ? &key.allow_models
                  : member == "routes" ? &key.allow_routes
                                       : nullptr;
      if (!out || !list.is_array() || list.empty()) throw spec_error{shape, param};
      for (const auto& r : list) {
        if (!r.is_string() || r.get<std::string>().empty())
          throw spec_error{param + " must hold names", param};
        const std::string name = r.get<std::string>();
        if (member == "regions" && cfg && !cfg->regions.count(name))
          throw spec_error{"unknown region '" + name +
                               "'; use cn, us, eu, local or a region the config declares",
                           param};
        if (member == "models" && (name.find('/') == std::string::npos || name.front() == '/'))
          throw spec_error{"allow.models holds provider/model globs, got '" + name + "'", param};
        out->push_back(name);
      }
    }
  }
}

}  // namespace

std::optional<virtual_key> key_from_spec(std::string name, const sha256_digest& hash,
                                         std::string_view spec) {
  virtual_key key;
  key.name = std::move(name);
  key.hash = hash;
  key.source = key_source::admin;
  auto j = nlohmann::json::parse(spec, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    read_limits(j, key, nullptr);
  } catch (const spec_error&) {
    return std::nullopt;
  }
  return key;
}

std::string generate_secret() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes");
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out = "sk-mer-";
  for (unsigned char c : bytes) {
    out += k_digits[c >> 4];
    out += k_digits[c & 15];
  }
  return out;
}

std::variant<new_key, key_request_error> parse_new_key(std::string_view body,
                                                       const config::config& cfg) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return key_request_error{"The body must be a JSON object", ""};
  static constexpr std::string_view k_members[] = {"name",   "rpm",   "tpm",
                                                   "budget", "allow", "key_sha256"};
  for (const auto& [member, value] : j.items())
    if (std::find(std::begin(k_members), std::end(k_members), member) == std::end(k_members))
      return key_request_error{
          "Unknown member '" + member + "'; expected name, rpm, tpm, budget, allow or key_sha256",
          member};
  if (!j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>().empty() ||
      j["name"].get<std::string>().size() > 128)
    return key_request_error{"name must be a non-empty string of at most 128 characters", "name"};
  new_key out;
  out.key.name = j["name"].get<std::string>();
  out.key.source = key_source::admin;
  try {
    read_limits(j, out.key, &cfg);
  } catch (const spec_error& e) {
    return key_request_error{e.message, e.param};
  }
  if (j.contains("key_sha256")) {
    auto d = j["key_sha256"].is_string() ? digest_from_hex(j["key_sha256"].get<std::string>())
                                         : std::nullopt;
    if (!d) return key_request_error{"key_sha256 must be 64 hex digits", "key_sha256"};
    out.key.hash = *d;
  } else {
    out.secret = generate_secret();
    out.key.hash = sha256(out.secret);
  }
  return out;
}

}  // namespace meridian::access
