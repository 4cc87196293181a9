// What a request is served with: the parsed config and the catalog resolved from it, built
// once per load and shared immutably; a reload swaps in a new one.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "gateway/keys.hpp"
#include "providers/catalog.hpp"
#include "stats/report.hpp"

namespace meridian::gateway {

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

// The savings baseline `stats.baseline` names, priced from the catalog; nullopt when unset or
// when that model is not available.
std::optional<stats::baseline> baseline_of(const snapshot& snap);

}  // namespace meridian::gateway
