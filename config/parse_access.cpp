// Client access: the auth section, the virtual keys with their limits, budgets and regions, and
// the state section saying where the counters live.
#include "config/detail.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>
#include <string>

namespace meridian::config::detail {

auth_config parser::auth(const located& at) const {
  auth_config out;
  for (const auto& [key, value] : entries(at, {"required", "admin_token_env"})) {
    if (key == "required") {
      out.required = boolean(value);
      out.required_written = true;
    }
    if (key == "admin_token_env") out.admin_token_env = non_empty(value);
  }
  return out;
}

key_config parser::virtual_key(const located& at) const {
  key_config out;
  out.line = line_of(at);
  for (const auto& [key, value] :
       entries(at, {"name", "key_sha256", "key_env", "rpm", "tpm", "budget", "allow"})) {
    if (key == "name") {
      out.name = non_empty(value);
    } else if (key == "key_sha256") {
      out.key_sha256 = non_empty(value);
      std::transform(out.key_sha256.begin(), out.key_sha256.end(), out.key_sha256.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (out.key_sha256.size() != 64 ||
          out.key_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
        fail(value, "expected 64 hex digits (the SHA-256 of the key)");
    } else if (key == "key_env") {
      out.key_env = non_empty(value);
    } else if (key == "rpm" || key == "tpm") {
      std::uint64_t n = unsigned_int(value, std::numeric_limits<std::uint32_t>::max());
      if (n == 0) fail(value, "must be greater than zero; omit it for no limit");
      (key == "rpm" ? out.rpm : out.tpm) = n;
    } else if (key == "budget") {
      key_budget b;
      bool has_usd = false;
      for (const auto& [bkey, bvalue] : entries(value, {"usd", "period"})) {
        if (bkey == "usd") {
          b.usd = non_negative(bvalue, "USD");
          has_usd = true;
        } else {
          std::string text = scalar(bvalue);
          auto period = parse_enum<budget_period>(text);
          if (!period)
            fail(bvalue, "expected " + enum_names<budget_period>(" or ") + ", got '" + text + "'");
          b.period = *period;
        }
      }
      if (!has_usd) fail(value, "a budget needs usd");
      out.budget = b;
    } else if (key == "allow") {
      for (const auto& [akey, avalue] : entries(value, {"regions", "models", "routes"})) {
        auto& list = akey == "regions"  ? out.allow_regions
                     : akey == "models" ? out.allow_models
                                        : out.allow_routes;
        list = names(avalue);
        if (list.empty()) fail(avalue, "must name at least one; omit it for no limit");
        if (akey == "models")
          for (const auto& m : list)
            if (m.find('/') == std::string::npos || m.front() == '/')
              fail(avalue, "expected provider/model globs (deepseek/*, */gpt-4o), got '" + m + "'");
      }
      if (out.allow_regions.empty() && out.allow_models.empty() && out.allow_routes.empty())
        fail(value, "allow needs regions, models or routes");
    }
  }
  if (out.name.empty()) fail_entry(at, "a key needs a name");
  if (out.key_sha256.empty() == out.key_env.empty())
    fail_entry(at, "give either key_sha256 or key_env (exactly one)");
  return out;
}

void parser::parse_keys(const located& at, config& out, bool references) const {
  std::set<std::string> names_seen;
  for (const auto& item : items(at)) {
    collect([&] {
      out.keys.push_back(virtual_key(item));
      const key_config& k = out.keys.back();
      if (!names_seen.insert(k.name).second)
        fail_entry(item, "duplicate key name '" + k.name + "'");
      for (const auto& region : k.allow_regions)
        if (!out.regions.count(region))
          fail_entry(item, "unknown region '" + region +
                               "' in allow.regions; use cn, us, eu, local or a name declared "
                               "under regions");
      if (!references) return;
      for (const auto& route : k.allow_routes)
        if (std::none_of(out.routes.begin(), out.routes.end(),
                         [&](const route_config& r) { return glob_match(route, r.match); }))
          fail_entry(item, "allow.routes: no route matches '" + route + "'");
      for (const auto& model : k.allow_models) {
        const std::string provider = model.substr(0, model.find('/'));
        if (std::none_of(out.providers.begin(), out.providers.end(),
                         [&](const provider_config& p) { return glob_match(provider, p.name); }))
          fail_entry(item, "allow.models: no declared provider matches '" + provider + "'");
      }
    });
  }
}

// `state: local`, `state: redis://host:port`, or a map with url, on_error, timeout and
// reserve_tokens.
state_config parser::state(const located& at) const {
  state_config out;
  auto url = [&](const located& v) {
    std::string text = non_empty(v);
    if (text != "local" && !(text.rfind("redis://", 0) == 0 && text.size() > 8))
      fail(v, "expected local or redis://host:port, got '" + text + "'");
    if (text.find('@') != std::string::npos)
      fail(v, "credentials do not go in YAML; Redis authentication is not supported yet");
    return text;
  };
  if (at.node.IsScalar()) {
    out.url = url(at);
    return out;
  }
  for (const auto& [key, value] : entries(at, {"url", "on_error", "timeout", "reserve_tokens"})) {
    if (key == "url") {
      out.url = url(value);
    } else if (key == "on_error") {
      std::string text = scalar(value);
      if (text != "open" && text != "closed")
        fail(value, "expected open (admit) or closed (refuse), got '" + text + "'");
      out.fail_open = text == "open";
    } else if (key == "timeout") {
      out.timeout = convert(value, parse_duration);
      if (out.timeout.count() == 0) fail(value, "must be greater than zero");
    } else {
      out.reserve_tokens = unsigned_int(value, 10'000'000);
      if (out.reserve_tokens == 0) fail(value, "must be greater than zero");
    }
  }
  return out;
}

}  // namespace meridian::config::detail
