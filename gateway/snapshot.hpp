// What a request is served with: the parsed config and the catalog resolved from it, built
// once per load and shared immutably; a reload swaps in a new one.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "access/keys.hpp"
#include "config/config.hpp"
#include "providers/catalog.hpp"
#include "stats/report.hpp"

namespace meridian::gateway {

// Virtual keys are the access library's (access/keys.hpp); the gateway serves them.
using access::digest_from_hex;
using access::key_from_spec;
using access::key_request_error;
using access::key_source;
using access::key_table;
using access::new_key;
using access::parse_new_key;
using access::presented_secret;
using access::sha256;
using access::sha256_digest;
using access::spec_json;
using access::to_hex;
using access::virtual_key;

struct snapshot {
  std::shared_ptr<const config::config> cfg;
  providers::catalog catalog;
  key_table keys;                         // the config's virtual keys, secrets resolved
  std::vector<std::string> key_problems;  // keys left out, e.g. an unset key_env variable
};

// Validates and resolves config text: YAML, catalog, routes against the catalog. `source`
// names the file in messages; the environment gives the keys. Throws config::config_error
// naming the file, YAML path and line of the first problem.
std::shared_ptr<const snapshot> make_snapshot(
    const std::string& yaml, const std::string& source,
    const providers::env_lookup& env = providers::process_env());

// What a reload from `now` to `next` would change in what protects the gateway, and whether
// it may be applied. Pure: the control thread logs and applies what it says.
struct reload_review {
  // Changes to authentication, keys, the admin token, listeners, or every provider gone:
  // each is logged at warn, so an operator sees a reload that opened or closed a door.
  std::vector<std::string> protective;
  // Settings read once at start-up that this reload changes: named in one warning.
  std::vector<std::string> restart_needed;
  bool health_changed = false;  // applied to the running health book
  // Set: the reload must not be applied. A file that lost its `auth:` section (cut short
  // while written) would otherwise switch authentication off without a word.
  std::optional<std::string> refusal;
};
reload_review review_reload(const snapshot& now, const snapshot& next);

// The savings baseline `stats.baseline` names, priced from the catalog; nullopt when unset or
// when that model is not available.
std::optional<stats::baseline> baseline_of(const snapshot& snap);

}  // namespace meridian::gateway
