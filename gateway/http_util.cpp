// Query strings, request ids, Retry-After, logging: see http_util.hpp.
#include "gateway/http_util.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include "core/json_scan.hpp"

namespace meridian::gateway {
namespace {

using core::append_json_string;

std::atomic<int> g_level{static_cast<int>(log_level::info)};

std::string now_iso() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = time_point_cast<seconds>(now);
  auto ms = duration_cast<milliseconds>(now - secs).count();
  std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void write_line(std::FILE* f, const std::string& line) {
  // One fwrite per line keeps lines from different threads whole.
  std::fwrite(line.data(), 1, line.size(), f);
  std::fflush(f);
}

const char* level_name(log_level l) {
  switch (l) {
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    default:
      return "error";
  }
}

}  // namespace

std::map<std::string, std::string> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  auto decode = [](std::string_view in) {
    std::string s;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        s.push_back(' ');
      } else if (in[i] == '%' && i + 2 < in.size() &&
                 std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
        s.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        s.push_back(in[i]);
      }
    }
    return s;
  };
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    if (!pair.empty())
      out[decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return out;
}

std::string sane_request_id(std::string_view inbound) {
  bool sane = !inbound.empty() && inbound.size() <= 128;
  for (char c : inbound)
    sane = sane && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                    c == '.' || c == ':');
  return sane ? std::string(inbound) : std::string();
}

std::string app_name(std::string_view title, std::string_view referer) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  std::string out(trim(title));
  if (out.empty()) {
    std::string_view host = trim(referer);
    if (auto scheme = host.find("://"); scheme != std::string_view::npos)
      host.remove_prefix(scheme + 3);
    host = host.substr(0, host.find_first_of("/?#"));
    if (auto at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
    if (!host.empty() && host.front() != '[') host = host.substr(0, host.find(':'));
    out.assign(host);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (out.rfind("www.", 0) == 0) out.erase(0, 4);
  }
  for (unsigned char c : out)
    if (c < 0x20 || c == 0x7f) return {};
  if (out.size() > 64) {
    std::size_t cut = 64;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

std::optional<std::uint64_t> retry_after_seconds(std::string_view v,
                                                 std::chrono::system_clock::time_point now) {
  constexpr std::uint64_t k_day = 86400;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  if (v.size() <= 12 &&
      std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::min<std::uint64_t>(std::stoull(std::string(v)), k_day);
  if (v.size() <= 40) {
    const std::string text(v);
    for (const char* format :
         {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
      std::tm tm{};
      const char* end = ::strptime(text.c_str(), format, &tm);
      if (!end || *end != '\0') continue;
      const auto at = std::chrono::system_clock::from_time_t(::timegm(&tm));
      if (at <= now) return 0;
      const auto left = std::chrono::ceil<std::chrono::seconds>(at - now).count();
      return std::min<std::uint64_t>(static_cast<std::uint64_t>(left), k_day);
    }
  }
  return 1;
}

std::string request_id_for(std::string_view inbound) {
  if (auto own = sane_request_id(inbound); !own.empty()) return own;
  // Time-ordered, as ULIDs and UUIDv7 are: 12 hex digits of Unix milliseconds, then 12 random
  // ones. The ledger keys every generation row by this id; ids that grow with time land at the
  // right edge of its unique index instead of on a random page of an index larger than the
  // database's cache (docs/performance.md, issue 18, change 6).
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  const auto ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::string id = "req_";
  id.resize(4 + 24);
  for (int i = 11; i >= 0; --i) id[4 + 11 - i] = hex[(ms >> (4 * i)) & 15];
  auto v = rng();
  for (int i = 0; i < 12; ++i, v >>= 4) id[16 + i] = hex[v & 15];
  return id;
}

std::string redact(std::string text, std::string_view secret) {
  constexpr std::size_t k_min = 4;  // shorter keys (and shorter cut-off tails) are not matched
  if (secret.size() < k_min) return text;
  for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at))
    text.replace(at, secret.size(), "[redacted]");
  // Messages are often cut to a length before they are redacted; a key cut in two still must
  // not leak its first part, so a tail that starts the secret goes too.
  for (std::size_t k = std::min(secret.size() - 1, text.size()); k >= k_min; --k) {
    if (text.compare(text.size() - k, k, secret.substr(0, k)) == 0) {
      text.replace(text.size() - k, k, "[redacted]");
      break;
    }
  }
  return text;
}

std::optional<log_level> parse_log_level(std::string_view s) {
  if (s == "debug") return log_level::debug;
  if (s == "info") return log_level::info;
  if (s == "warn") return log_level::warn;
  if (s == "error") return log_level::error;
  return std::nullopt;
}

void set_log_level(log_level l) {
  g_level = static_cast<int>(l);
}
bool log_enabled(log_level l) {
  return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed);
}

void log(log_level l, std::string_view msg, std::string_view extra_json) {
  if (!log_enabled(l)) return;
  std::string line = "{\"ts\":\"" + now_iso() + "\",\"level\":\"" + level_name(l) + "\",\"msg\":";
  append_json_string(line, msg);
  if (!extra_json.empty()) {
    line += ',';
    line += extra_json;
  }
  line += "}\n";
  write_line(stderr, line);
}

void write_access_log(const access_record& r) {
  if (!log_enabled(log_level::info)) return;
  std::string line = "{\"ts\":\"" + now_iso() + "\",\"type\":\"access\",\"request_id\":";
  append_json_string(line, r.request_id);
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"app", &r.app},
                                    {"task", &r.task},
                                    {"language", &r.language}})
    if (!value->empty()) {
      line += ",\"";
      line += name;
      line += "\":";
      append_json_string(line, *value);
    }
  if (!r.session.empty()) {
    line += ",\"session\":";
    append_json_string(line, r.session);
  }
  if (!r.client_request_id.empty()) {
    line += ",\"client_request_id\":";
    append_json_string(line, r.client_request_id);
  }
  line += ",\"method\":";
  append_json_string(line, r.method);
  line += ",\"path\":";
  append_json_string(line, r.path);
  line += ",\"model\":";
  append_json_string(line, r.model);
  if (!r.key.empty()) {
    line += ",\"key\":";
    append_json_string(line, r.key);
  }
  line += ",\"route\":";
  append_json_string(line, r.route);
  line += ",\"provider\":";
  append_json_string(line, r.provider);
  line += ",\"upstream_model\":";
  append_json_string(line, r.upstream_model);
  line += ",\"status\":" + std::to_string(r.status);
  line += std::string(",\"stream\":") + (r.stream ? "true" : "false");
  line += ",\"fallback_index\":" + std::to_string(r.fallback_index);
  line += ",\"input_tokens\":" + std::to_string(r.input_tokens);
  line += ",\"output_tokens\":" + std::to_string(r.output_tokens);
  if (r.estimated) line += ",\"estimated\":true";
  char buf[64];
  if (r.cost_usd) {
    std::snprintf(buf, sizeof buf, ",\"cost_usd\":%.9g", *r.cost_usd);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, ",\"latency_ms\":%.3f", r.latency_ms);
  line += buf;
  if (r.ttft_ms) {
    std::snprintf(buf, sizeof buf, ",\"ttft_ms\":%.3f", *r.ttft_ms);
    line += buf;
  } else {
    line += ",\"ttft_ms\":null";
  }
  if (!r.error.empty()) {
    line += ",\"error\":";
    append_json_string(line, r.error);
  }
  line += "}\n";
  write_line(stdout, line);
}

}  // namespace meridian::gateway
