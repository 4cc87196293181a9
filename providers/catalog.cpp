// Built-in presets (base URL, region, auth, default prices with their as_of date) and their
// resolution against the configuration. Every price here can be overridden in YAML.
#include "providers/catalog.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace meridian::providers {
namespace {

using config::dialect_kind;

struct preset {
  const char* name;
  dialect_kind dialect;
  const char* base_url;
  const char* region;
  auth_style auth;
  const char* key_env;  // nullptr: no key needed (local servers)
  const char* as_of;    // when the URL and prices below were last checked, "YYYY-MM"
  std::vector<model_info> models;
};

// List prices, USD per million tokens, from providers' pages and second-hand price lists (see
// ../shared/PROVIDERS.md). Mainland endpoints bill in CNY: where the CNY list price was found it
// is converted at 7.1 CNY per USD, otherwise the international USD price stands in. Regional
// variants come in pairs because an account and its key belong to one platform: a CN key is
// refused by the international endpoint and the other way round. "intl" marks endpoints hosted
// outside mainland China (Singapore for DashScope); it is not a built-in region, so it has no
// electricity price unless `regions:` declares one.
const std::vector<preset>& presets() {
  // A provider's CN and international endpoints list the same models at the same USD prices
  // (no separate CNY list found); one list each, so a price change is made once.
  static const std::vector<model_info> kimi_models = {
      {"kimi-k2-0905-preview", 0.6, 2.5, 0.15, 0, 82, 262144},
      {"kimi-k2-thinking", 0.6, 2.5, 0.15, 0, 85, 262144},
      {"kimi-k2-turbo-preview", 1.15, 8, 0.15, 0, 82, 262144}};
  static const std::vector<model_info> glm_models = {
      {"glm-4.6", 0.6, 2.2, 0.11, 0, 82, 200000}, {"glm-4.5-air", 0.2, 1.1, 0.03, 0, 72, 131072}};
  static const std::vector<model_info> minimax_models = {
      {"MiniMax-M2", 0.3, 1.2, 0.03, 0, 80, 204800}};
  static const std::vector<preset> table = {
      {"deepseek",
       dialect_kind::openai,
       "https://api.deepseek.com/v1",
       "cn",
       auth_style::bearer,
       "DEEPSEEK_API_KEY",
       "2026-11",
       {{"deepseek-chat", 0.28, 0.42, 0.028, 0, 80, 131072},
        {"deepseek-reasoner", 0.28, 0.42, 0.028, 0, 85, 131072}}},
      // Beijing; CNY list prices: plus 0.8/2, max 2.4/9.6, turbo 0.3/0.6 per million.
      {"qwen",
       dialect_kind::openai,
       "https://dashscope.aliyuncs.com/compatible-mode/v1",
       "cn",
       auth_style::bearer,
       "DASHSCOPE_API_KEY",
       "2026-11",
       {{"qwen-plus", 0.113, 0.282, 0, 0, 78, 131072},
        {"qwen-max", 0.338, 1.352, 0, 0, 84, 32768},
        {"qwen-turbo", 0.042, 0.085, 0, 0, 65, 1000000}}},
      // Singapore; the international console bills in USD.
      {"qwen-intl",
       dialect_kind::openai,
       "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
       "intl",
       auth_style::bearer,
       "DASHSCOPE_API_KEY",
       "2026-11",
       {{"qwen-plus", 0.4, 1.2, 0, 0, 78, 131072},
        {"qwen-max", 1.6, 6.4, 0, 0, 84, 32768},
        {"qwen-turbo", 0.05, 0.2, 0, 0, 65, 1000000}}},
      {"moonshot", dialect_kind::openai, "https://api.moonshot.cn/v1", "cn", auth_style::bearer,
       "MOONSHOT_API_KEY", "2026-11", kimi_models},
      {"moonshot-intl", dialect_kind::openai, "https://api.moonshot.ai/v1", "intl",
       auth_style::bearer, "MOONSHOT_API_KEY", "2026-11", kimi_models},
      {"zhipu", dialect_kind::openai, "https://open.bigmodel.cn/api/paas/v4", "cn",
       auth_style::bearer, "ZHIPU_API_KEY", "2026-11", glm_models},
      // Z.ai, Zhipu's international platform; its keys are separate from bigmodel.cn's.
      {"zhipu-intl", dialect_kind::openai, "https://api.z.ai/api/paas/v4", "intl",
       auth_style::bearer, "ZAI_API_KEY", "2026-11", glm_models},
      // api.minimax.io is MiniMax's international platform; "minimax-cn" is the mainland one.
      {"minimax", dialect_kind::openai, "https://api.minimax.io/v1", "intl", auth_style::bearer,
       "MINIMAX_API_KEY", "2026-11", minimax_models},
      {"minimax-cn", dialect_kind::openai, "https://api.minimax.chat/v1", "cn", auth_style::bearer,
       "MINIMAX_API_KEY", "2026-11", minimax_models},
      {"openai",
       dialect_kind::openai,
       "https://api.openai.com/v1",
       "us",
       auth_style::bearer,
       "OPENAI_API_KEY",
       "2026-11",
       {{"gpt-4o-mini", 0.15, 0.6, 0.075, 0, 75, 128000},
        {"gpt-4o", 2.5, 10, 1.25, 0, 88, 128000},
        {"gpt-4.1", 2, 8, 0.5, 0, 88, 1047576},
        {"gpt-4.1-mini", 0.4, 1.6, 0.1, 0, 80, 1047576}}},
      {"anthropic",
       dialect_kind::anthropic,
       "https://api.anthropic.com/v1",
       "us",
       auth_style::x_api_key,
       "ANTHROPIC_API_KEY",
       "2026-11",
       {{"claude-sonnet-4-5", 3, 15, 0.3, 3.75, 92, 200000},
        {"claude-haiku-4-5", 1, 5, 0.1, 1.25, 80, 200000}}},
      {"gemini",
       dialect_kind::gemini,
       "https://generativelanguage.googleapis.com/v1beta",
       "us",
       auth_style::x_goog_api_key,
       "GEMINI_API_KEY",
       "2026-11",
       {{"gemini-2.5-flash", 0.3, 2.5, 0.03, 0, 84, 1048576},
        {"gemini-2.5-pro", 1.25, 10, 0.125, 0, 90, 1048576}}},
      {"ollama",
       dialect_kind::openai,
       "http://127.0.0.1:11434/v1",
       "local",
       auth_style::none,
       nullptr,
       "2026-11",
       {}},
      {"vllm",
       dialect_kind::openai,
       "http://127.0.0.1:8000/v1",
       "local",
       auth_style::none,
       nullptr,
       "2026-11",
       {}},
      {"llamacpp",
       dialect_kind::openai,
       "http://127.0.0.1:8080/v1",
       "local",
       auth_style::none,
       nullptr,
       "2026-11",
       {}},
  };
  return table;
}

const preset* find_preset(const std::string& name) {
  for (const auto& p : presets())
    if (name == p.name) return &p;
  return nullptr;
}

auth_style default_auth(dialect_kind d) {
  switch (d) {
    case dialect_kind::anthropic:
      return auth_style::x_api_key;
    case dialect_kind::gemini:
      return auth_style::x_goog_api_key;
    default:
      return auth_style::bearer;
  }
}

void apply(model_info& m, const config::model_config& c) {
  if (c.input) m.input = *c.input;
  if (c.output) m.output = *c.output;
  if (c.cache_read) m.cache_read = *c.cache_read;
  if (c.cache_write) m.cache_write = *c.cache_write;
  if (c.quality) m.quality = *c.quality;
  for (const auto& [task, q] : c.task_quality) m.task_quality[task] = q;
  if (c.rpm) m.rpm = *c.rpm;
  if (c.tpm) m.tpm = *c.tpm;
  if (c.context) m.context = *c.context;
  if (c.capabilities) {
    auto has = [&](config::capability k) {
      return std::find(c.capabilities->begin(), c.capabilities->end(), k) != c.capabilities->end();
    };
    m.tools = has(config::capability::tools);
    m.images = has(config::capability::images);
    m.json = has(config::capability::json);
    m.reasoning = has(config::capability::reasoning);
  }
}

void merge_model(provider& p, const std::string& id, const config::model_config& c) {
  for (auto& m : p.models)
    if (m.id == id) {
      // The file names a preset model: whatever it leaves unset still comes from the catalog.
      if (m.source == "catalog") m.source = "catalog+file";
      return apply(m, c);
    }
  model_info m;
  m.id = id;
  m.author = guess_author(id);
  m.reasoning = model_takes_reasoning_effort(id);
  m.source = "file";
  apply(m, c);
  p.models.push_back(std::move(m));
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string where(const config::config& cfg, const std::string& path, int line) {
  std::ostringstream o;
  o << cfg.source << ": " << path << " (line " << line << "): ";
  return o.str();
}

}  // namespace

std::optional<base_url> parse_base_url(const std::string& url) {
  base_url out;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return std::nullopt;
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  out.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  out.port = out.tls ? 443 : 80;
  if (!hostport.empty() && hostport.front() == '[') {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string::npos) return std::nullopt;
    out.host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return std::nullopt;
  } else {
    auto colon = hostport.find(':');
    out.host = hostport.substr(0, colon);
    hostport = colon == std::string::npos ? "" : hostport.substr(colon);
  }
  if (!hostport.empty()) {
    const std::string digits = hostport.substr(1);
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    unsigned long port = std::stoul(digits);
    if (port == 0 || port > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(port);
  }
  if (out.host.empty()) return std::nullopt;
  return out;
}

double cost_usd(const usage& u, const model_info& m) {
  // Anthropic bills an hour's cache write at 2x input, a 5-minute one at cache_write (1.25x).
  const std::uint64_t one_hour = std::min(u.cache_write_1h, u.cache_write);
  double micro = static_cast<double>(u.input) * m.input +
                 static_cast<double>(u.cache_read) * m.cache_read +
                 static_cast<double>(u.cache_write - one_hour) * m.cache_write +
                 static_cast<double>(one_hour) * m.input * 2 +
                 static_cast<double>(u.output + u.reasoning) * m.output;
  return micro / 1e6;
}

std::string guess_author(std::string_view id) {
  std::string lower;
  for (char c : id) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (auto slash = lower.rfind('/'); slash != std::string::npos) lower.erase(0, slash + 1);
  static const std::pair<const char*, const char*> prefixes[] = {
      {"gpt", "openai"},        {"o1", "openai"},         {"o3", "openai"},
      {"o4", "openai"},         {"claude", "anthropic"},  {"gemini", "google"},
      {"gemma", "google"},      {"deepseek", "deepseek"}, {"qwen", "qwen"},
      {"qwq", "qwen"},          {"glm", "zhipu"},         {"kimi", "moonshot"},
      {"moonshot", "moonshot"}, {"minimax", "minimax"},   {"llama", "meta"},
      {"mistral", "mistral"},   {"mixtral", "mistral"},   {"phi", "microsoft"}};
  for (const auto& [prefix, author] : prefixes)
    if (lower.rfind(prefix, 0) == 0) return author;
  return "unknown";
}

bool preset_model_sees_images(std::string_view id) {
  for (std::string_view prefix : {"gpt-4o", "gpt-4.1", "gpt-5", "claude", "gemini"})
    if (id.starts_with(prefix)) return true;
  return false;
}

bool model_takes_reasoning_effort(std::string_view id) {
  if (id.starts_with("models/")) id.remove_prefix(7);
  for (std::string_view prefix : {"o1", "o3", "o4", "gpt-5", "gemini-2.5", "gemini-3"})
    if (id.starts_with(prefix)) return true;
  return false;
}

const model_info* provider::find_model(std::string_view id) const {
  for (const auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

const provider* catalog::find(std::string_view name) const {
  for (const auto& p : providers)
    if (p.name == name) return &p;
  return nullptr;
}

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::optional<preset_summary> describe_preset(std::string_view name) {
  for (const auto& p : presets())
    if (name == p.name) return preset_summary{p.name, p.base_url, p.region, p.as_of, p.dialect};
  return std::nullopt;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const auto& p : presets()) out.emplace_back(p.name);
  return out;
}

namespace {

std::vector<std::string> model_ids(const provider& p) {
  std::vector<std::string> out;
  for (const auto& m : p.models) out.push_back(m.id);
  return out;
}

}  // namespace

catalog build_catalog(const config::config& cfg, const env_lookup& env) {
  catalog out;
  for (const auto& pc : cfg.providers) {
    provider p;
    p.name = pc.name;
    const preset* pre = nullptr;
    if (!pc.preset.empty()) {
      pre = find_preset(pc.preset);
      if (!pre) {
        std::string names;
        for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
        const std::string near = config::closest_name(pc.preset, preset_names());
        throw config::config_error(
            where(cfg, "providers." + pc.name + ".preset", pc.line) + "unknown preset '" +
            pc.preset + "'" + (near.empty() ? std::string() : " (did you mean '" + near + "'?)") +
            "; known presets: " + names);
      }
      p.dialect = pre->dialect;
      p.url_text = pre->base_url;
      p.region = pre->region;
      p.auth = pre->auth;
      p.as_of = pre->as_of;
      p.url_source = p.region_source = "catalog";
      p.models = pre->models;
      for (auto& m : p.models) {
        m.author = guess_author(m.id);
        m.images = preset_model_sees_images(m.id);
        m.reasoning = model_takes_reasoning_effort(m.id);
      }
    }
    if (pc.dialect) {
      p.dialect = *pc.dialect;
      if (!pre) p.auth = default_auth(p.dialect);
    }
    if (!pc.base_url.empty()) {
      p.url_text = pc.base_url;
      p.url_source = "file";
    }
    if (!pc.region.empty()) {
      p.region = pc.region;
      p.region_source = "file";
    }
    if (p.region.empty()) {
      p.region = "any";
      p.region_source = "default";
    }
    auto url = parse_base_url(p.url_text);
    if (!url)
      throw config::config_error(where(cfg, "providers." + pc.name + ".base_url", pc.line) +
                                 "expected an http:// or https:// URL with a host");
    p.url = *url;
    p.tls = pc.tls;
    p.responses_api = p.dialect == config::dialect_kind::openai &&
                      pc.responses_api.value_or(pre && pre->name == std::string_view("openai"));
    p.headers = pc.headers;
    p.rpm = pc.rpm.value_or(0);
    p.cache_prompts = pc.cache_prompts;
    p.tpm = pc.tpm.value_or(0);
    for (const auto& [id, mc] : pc.models) merge_model(p, id, mc);

    std::string key_env =
        pc.api_key_env.empty() && pre && pre->key_env ? pre->key_env : pc.api_key_env;
    if (!pc.api_key_file.empty()) {
      std::ifstream f(pc.api_key_file);
      std::stringstream ss;
      ss << f.rdbuf();
      p.api_key = trim(ss.str());
      if (!f || p.api_key.empty()) {
        out.skipped.push_back(
            {pc.name, "api_key_file " + pc.api_key_file + " is missing or empty", model_ids(p)});
        continue;
      }
    } else if (!key_env.empty()) {
      auto v = env(key_env);
      if (v && !trim(*v).empty()) {
        p.api_key = trim(*v);
      } else if (pc.api_key_env.empty() && !pc.base_url.empty() && is_loopback_host(p.url.host)) {
        // Only the preset's default variable is waived, and only for a server on this machine
        // that the file itself names (a simulator, a local proxy): a key the file asks for by
        // name is still required.
        p.keyless_loopback = true;
      } else {
        out.skipped.push_back({pc.name, key_env + " is not set", model_ids(p)});
        continue;
      }
    } else if (pre && pre->key_env == nullptr) {
      p.auth = auth_style::none;
    }
    if (p.api_key.empty()) p.auth = auth_style::none;
    out.providers.push_back(std::move(p));
  }
  for (const auto& [full, mc] : cfg.models) {
    auto slash = full.find('/');
    std::string pname = full.substr(0, slash), id = full.substr(slash + 1);
    bool configured = false;
    for (const auto& pc : cfg.providers) configured |= pc.name == pname;
    if (!configured)
      throw config::config_error(where(cfg, "models." + full, mc.line) + "no provider named '" +
                                 pname + "' is configured");
    for (auto& p : out.providers)
      if (p.name == pname) merge_model(p, id, mc);
  }
  return out;
}

}  // namespace meridian::providers
