// Internal to config/: the parser of Meridian's YAML, one member per section, each defined in
// the file named beside it, and the enum names that enums.cpp keeps in one table per enum.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace meridian::config::detail {

// The value a name stands for, for dialect_kind, route_policy, capability and budget_period.
template <typename E>
std::optional<E> parse_enum(std::string_view text);
// The enum's names in declaration order, joined by `separator`, as error messages list them.
template <typename E>
std::string enum_names(std::string_view separator = ", ");

class parser : public reader {
 public:
  using reader::reader;

  // config.cpp: the sections, then the checks that need the whole document. Every independent
  // part's first mistake is reported, all in one config_error, one line each.
  config document(const YAML::Node& root) const;

  // Runs one independent part (a section, a provider, a route, a key, a model override) and
  // keeps its error, so that one run reports every mistake of a file. True when it succeeded.
  template <class F>
  bool collect(F&& part) const {
    try {
      part();
      return true;
    } catch (const config_error& e) {
      errors_.push_back(e.what());
      return false;
    }
  }

  // parse_server.cpp
  server_config server(const located& at) const;
  void limits(const located& at, server_limits& out) const;
  void timeouts(const located& at, server_timeouts& out) const;

  // parse_providers.cpp
  void providers(const located& at, std::vector<provider_config>& out) const;
  provider_config provider(const std::string& name, const located& at, int line) const;
  dialect_kind dialect(const located& at) const;
  model_config model(const located& at, int line) const;
  // A list drawn from tools, images and json; repeating one is harmless.
  std::vector<capability> capabilities(const located& at) const;

  // parse_routes.cpp. Routes come last: their checks need the declared providers and regions.
  void parse_routes(const located& at, config& out) const;
  affinity_config affinity(const located& at) const;

  // parse_energy.cpp
  void regions(const located& at, std::map<std::string, region_config>& out) const;
  energy_config energy(const located& at) const;

  // parse_stats.cpp. The baseline's provider is checked later, once every provider is known.
  stats_config stats(const located& at, std::optional<located>& baseline_at) const;
  responses_store_config responses_store(const located& at) const;
  tracing_config tracing(const located& at) const;
  health_config health(const located& at) const;

  // parse_access.cpp: who may call (auth, keys) and where their counters live (state).
  auth_config auth(const located& at) const;
  // `references`: check the keys' allow.routes and allow.models against the routes and providers.
  void parse_keys(const located& at, config& out, bool references) const;
  state_config state(const located& at) const;

 private:
  mutable std::vector<std::string> errors_;
  // Names whose checks wait until the whole document is known.
  struct references {
    std::vector<located> regions, providers, routes;
  };

  route_config route(const located& at, references& refs) const;
  route_candidate candidate(const located& at) const;
  std::vector<located> candidate_items(const located& at) const;
  std::optional<route_policy> policy(const located& at) const;
  route_weights weights(const located& at) const;
  route_when when(const located& at) const;
  route_require require(const located& at, references& refs) const;
  std::string ledger_path(const located& at, const std::string& text) const;
  key_config virtual_key(const located& at) const;
};

}  // namespace meridian::config::detail
