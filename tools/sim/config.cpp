// SIM.yaml: the providers to simulate, read into sim_config with messages that name the YAML path,
// and the durations and dialect names it uses.
#include "tools/sim/detail.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

namespace meridian::sim {

namespace {

[[noreturn]] void config_fail(const std::string& path, const std::string& message) {
  throw config_error(path + ": " + message);
}

std::string scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) config_fail(path, "expected a scalar");
  return n.Scalar();
}

template <class T>
T number(const YAML::Node& n, const std::string& path) {
  try {
    if (!n.IsScalar()) config_fail(path, "expected a number");
    return n.as<T>();
  } catch (const YAML::Exception&) {
    config_fail(path, "expected a number, got '" + n.Scalar() + "'");
  }
}

provider_config parse_provider(const std::string& name, const YAML::Node& node) {
  const std::string base = "providers." + name;
  if (!node.IsMap()) config_fail(base, "expected a mapping");
  provider_config p;
  p.name = name;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string path = base + "." + key;
    const YAML::Node& v = kv.second;
    if (key == "port") {
      auto port = number<int>(v, path);
      if (port < 0 || port > 65535) config_fail(path, "port out of range");
      p.port = static_cast<std::uint16_t>(port);
    } else if (key == "models") {
      if (!v.IsSequence() || v.size() == 0) config_fail(path, "expected a non-empty list");
      for (std::size_t i = 0; i < v.size(); ++i) {
        p.models.push_back(scalar(v[i], path + "[" + std::to_string(i) + "]"));
      }
    } else if (key == "ttft") {
      try {
        p.ttft = parse_duration(scalar(v, path));
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
    } else if (key == "tokens_per_second") {
      p.tokens_per_second = number<double>(v, path);
      if (p.tokens_per_second < 0) config_fail(path, "must not be negative");
    } else if (key == "reply_tokens") {
      p.reply_tokens = number<int>(v, path);
      if (p.reply_tokens < 0) config_fail(path, "must not be negative");
    } else if (key == "dialect") {
      try {
        p.dialect = parse_dialect(scalar(v, path));
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
    } else if (key == "prompt_cache") {
      p.prompt_cache = v.as<bool>();
    } else if (key == "api_key") {
      p.api_key = scalar(v, path);
    } else if (key == "tls") {
      if (!v.IsMap()) config_fail(path, "expected a mapping with cert and key");
      tls_files t;
      for (const auto& tkv : v) {
        const std::string tkey = tkv.first.as<std::string>();
        if (tkey == "cert") {
          t.cert = scalar(tkv.second, path + ".cert");
        } else if (tkey == "key") {
          t.key = scalar(tkv.second, path + ".key");
        } else {
          config_fail(path + "." + tkey, "unknown key");
        }
      }
      if (t.cert.empty() || t.key.empty()) config_fail(path, "needs both cert and key");
      p.tls = std::move(t);
    } else if (key == "fault") {
      p.fault = scalar(v, path);
      try {
        parse_fault(p.fault);
      } catch (const std::invalid_argument& e) {
        config_fail(path, e.what());
      }
    } else {
      config_fail(path, "unknown key");
    }
  }
  if (p.models.empty()) config_fail(base + ".models", "at least one model is required");
  return p;
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  std::string_view s = detail::trim(text);
  double value = 0;
  std::size_t i = 0;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
  if (i == 0) throw std::invalid_argument("invalid duration '" + std::string(text) + "'");
  try {
    value = std::stod(std::string(s.substr(0, i)));
  } catch (const std::exception&) {
    throw std::invalid_argument("invalid duration '" + std::string(text) + "'");
  }
  std::string_view unit = detail::trim(s.substr(i));
  double ms = 0;
  if (unit.empty() || unit == "ms") {
    ms = value;
  } else if (unit == "s") {
    ms = value * 1000;
  } else if (unit == "m") {
    ms = value * 60'000;
  } else {
    throw std::invalid_argument("invalid duration unit in '" + std::string(text) +
                                "' (use ms, s or m)");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

sim_config parse_config(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw config_error(std::string("invalid YAML: ") + e.what());
  }
  if (!root.IsMap()) throw config_error("top level: expected a mapping with 'providers'");
  sim_config cfg;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key != "providers") config_fail(key, "unknown key");
    if (!kv.second.IsMap() || kv.second.size() == 0) {
      config_fail("providers", "expected a non-empty mapping of provider name to settings");
    }
    for (const auto& pkv : kv.second) {
      cfg.providers.push_back(parse_provider(pkv.first.as<std::string>(), pkv.second));
    }
  }
  if (cfg.providers.empty()) throw config_error("providers: at least one provider is required");
  return cfg;
}

sim_config load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw config_error(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str());
}

std::string_view dialect_name(dialect d) {
  switch (d) {
    case dialect::openai:
      return "openai";
    case dialect::anthropic:
      return "anthropic";
    case dialect::gemini:
      return "gemini";
  }
  return "openai";
}

dialect parse_dialect(std::string_view text) {
  for (auto d : {dialect::openai, dialect::anthropic, dialect::gemini}) {
    if (text == dialect_name(d)) return d;
  }
  throw std::invalid_argument("unknown dialect '" + std::string(text) +
                              "' (use openai, anthropic or gemini)");
}

}  // namespace meridian::sim
