// The providers section: each provider's endpoint, dialect, credentials' whereabouts, TLS and
// headers, and the model facts that the top-level models section overrides.
#include "config/detail.hpp"

#include <algorithm>

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::config::detail {

namespace {
constexpr std::uint64_t k_max_quota = 4'294'967'295;  // as keys' rpm and tpm
}  // namespace

void parser::providers(const located& at, std::vector<provider_config>& out) const {
  for (const auto& [name, value] : entries(at)) {
    const auto& n = name;
    const auto& v = value;
    collect([&] {
      if (n.empty()) fail_entry(v, "a provider name must not be empty");
      if (n.find('/') != std::string::npos)
        fail_entry(v,
                   "a provider name must not contain '/', since it prefixes "
                   "model names as provider/model");
      out.push_back(provider(n, v, line_of(v)));
    });
  }
}

provider_config parser::provider(const std::string& name, const located& at, int line) const {
  provider_config out;
  out.name = name;
  out.line = line;
  for (const auto& [key, value] :
       entries(at, {"preset", "dialect", "base_url", "region", "api_key_env", "api_key_file", "tls",
                    "headers", "models", "kwh_per_million_tokens", "api", "rpm", "tpm",
                    "cache_prompts"})) {
    if (key == "cache_prompts") {
      out.cache_prompts = boolean(value);
    } else if (key == "rpm" || key == "tpm") {
      const std::uint64_t n = unsigned_int(value, k_max_quota);
      if (n == 0) fail(value, "must be greater than zero; omit it for no limit");
      (key == "rpm" ? out.rpm : out.tpm) = n;
    } else if (key == "api") {
      bool chat = false, responses = false;
      for (const auto& item : items(value)) {
        std::string text = scalar(item);
        if (text == "chat")
          chat = true;
        else if (text == "responses")
          responses = true;
        else
          fail(item, "unknown API '" + text + "'; expected chat or responses");
      }
      if (!chat) fail(value, "every OpenAI-dialect backend serves chat completions: list chat too");
      out.responses_api = responses;
    } else if (key == "kwh_per_million_tokens") {
      out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
    } else if (key == "preset") {
      out.preset = non_empty(value);
    } else if (key == "dialect") {
      out.dialect = dialect(value);
    } else if (key == "base_url") {
      out.base_url = scalar(value);
      auto rest = [&](std::string_view scheme) {
        return out.base_url.rfind(scheme, 0) == 0 && out.base_url.size() > scheme.size();
      };
      if (!rest("http://") && !rest("https://"))
        fail(value, "expected a URL starting with http:// or https://, got '" + out.base_url + "'");
      // The authority, checked here so that a mistake is reported on this line.
      const std::string after = out.base_url.substr(out.base_url.find("//") + 2);
      std::string authority = after.substr(0, after.find('/'));
      if (!authority.empty() && authority.front() == '[') {  // [v6]:port
        const auto close = authority.find(']');
        if (close == std::string::npos) fail(value, "an IPv6 host needs its closing ']'");
        authority = close == 1 ? "" : "h" + authority.substr(close + 1);
      }
      const auto colon = authority.find(':');
      if (authority.substr(0, colon).empty()) fail(value, "base_url has no host");
      if (colon != std::string::npos) {
        const std::string port = authority.substr(colon + 1);
        unsigned long n = 0;
        const bool digits = !port.empty() && port.size() <= 5 &&
                            port.find_first_not_of("0123456789") == std::string::npos;
        if (digits) n = std::stoul(port);
        if (!digits || n == 0 || n > 65535)
          fail(value, "the port '" + port + "' in base_url is not a port (1 to 65535)");
      }
    } else if (key == "region") {
      out.region = non_empty(value);
    } else if (key == "api_key_env") {
      out.api_key_env = non_empty(value);
    } else if (key == "api_key_file") {
      out.api_key_file = non_empty(value);
    } else if (key == "tls") {
      for (const auto& [tls_key, tls_value] : entries(value, {"verify", "ca_file"})) {
        if (tls_key == "verify") out.tls.verify = boolean(tls_value);
        if (tls_key == "ca_file") out.tls.ca_file = scalar(tls_value);
      }
    } else if (key == "headers") {
      for (const auto& [header, header_value] : entries(value))
        out.headers[header] = scalar(header_value);
    } else {
      for (const auto& [model_name, model_value] : entries(value)) {
        if (model_name.empty()) fail_entry(model_value, "a model name must not be empty");
        out.models[model_name] = model(model_value, line_of(model_value));
      }
    }
  }
  if (!out.api_key_env.empty() && !out.api_key_file.empty())
    fail_entry(at, "give either api_key_env or api_key_file, not both");
  if (out.preset.empty() && out.base_url.empty())
    fail_entry(at, "base_url is required when no preset is given");
  if (out.responses_api && *out.responses_api && out.dialect &&
      *out.dialect != dialect_kind::openai)
    fail_entry(at, "api: responses is OpenAI's API; this provider speaks the " +
                       std::string(to_string(*out.dialect)) + " dialect");
  return out;
}

dialect_kind parser::dialect(const located& at) const {
  std::string text = scalar(at);
  if (auto d = parse_enum<dialect_kind>(text)) return *d;
  fail(at, "unknown dialect '" + text + "'; expected one of " + enum_names<dialect_kind>());
}

model_config parser::model(const located& at, int line) const {
  model_config out;
  out.line = line;
  for (const auto& [key, value] :
       entries(at, {"input", "output", "cache_read", "cache_write", "quality", "context",
                    "kwh_per_million_tokens", "capabilities", "rpm", "tpm"})) {
    if (key == "rpm" || key == "tpm") {
      const std::uint64_t n = unsigned_int(value, k_max_quota);
      if (n == 0) fail(value, "must be greater than zero; omit it for no limit");
      (key == "rpm" ? out.rpm : out.tpm) = n;
    }
    if (key == "input") out.input = price(value);
    if (key == "capabilities") out.capabilities = capabilities(value);
    if (key == "kwh_per_million_tokens")
      out.kwh_per_million_tokens = non_negative(value, "kWh per million tokens");
    if (key == "output") out.output = price(value);
    if (key == "cache_read") out.cache_read = price(value);
    if (key == "cache_write") out.cache_write = price(value);
    if (key == "context") out.context = static_cast<std::uint32_t>(positive(value));
    if (key == "quality" && !value.node.IsMap()) out.quality = quality(value);
    if (key == "quality" && value.node.IsMap()) {
      // The keys are k_task_names (policies/task.hpp) and default.
      for (const auto& [task, q] : entries(value, {"default", "code", "math", "translation",
                                                   "long_context", "tool_use", "chat"})) {
        if (task == "default")
          out.quality = quality(q);
        else
          out.task_quality[task] = quality(q);
      }
    }
  }
  return out;
}

std::vector<capability> parser::capabilities(const located& at) const {
  std::vector<capability> out;
  for (const auto& item : items(at)) {
    std::string text = scalar(item);
    auto c = parse_enum<capability>(text);
    if (!c)
      fail(item, "unknown capability '" + text + "'; expected one of " + enum_names<capability>());
    out.push_back(*c);
  }
  return out;
}

}  // namespace meridian::config::detail
