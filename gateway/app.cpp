// Subcommands: serve (the gateway), check (validate and print the resolved catalog), route
// (dry-run the router on one request), demo (simulated providers plus the gateway, no keys needed).
#include "gateway/app.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "gateway/errors.hpp"
#include "gateway/http_util.hpp"
#include "gateway/server.hpp"
#include "policies/facts.hpp"
#include "policies/router.hpp"
#include "policies/affinity.hpp"
#include "policies/strategy.hpp"
#include "stats/api.hpp"
#include "stats/ledger.hpp"

extern char** environ;

namespace meridian::gateway {
namespace {

namespace fs = std::filesystem;

constexpr const char* k_usage =
    "usage:\n"
    "  meridian serve -c FILE [--log-level debug|info|warn|error]   run the gateway\n"
    "  meridian check -c FILE [--strict]                            validate; print providers and "
    "models (--strict: also fail on skipped providers, routes with no usable candidate, "
    "undeclared regions, providers without models)\n"
    "  meridian route -c FILE REQ.json [--key NAME]                 dry-run the router on an "
    "OpenAI chat body (as key NAME: its residency and limits)\n"
    "  meridian stats -c FILE [--window 7d] [--by "
    "region|provider|model|author|key|app|task|language]   token "
    "shares\n"
    "  meridian demo [--host H] [--port P] [--log-level L]          simulated providers + gateway "
    "on 127.0.0.1:8080 (or H:P; the simulators on the next six ports)\n"
    "  meridian --version\n";

struct cli {
  std::string command;
  std::string config_path;
  std::string request_path;                  // route's REQ.json
  std::string key;                           // route's --key NAME
  std::vector<std::pair<std::string, std::string>> headers;  // route's --header NAME:VALUE
  bool strict = false;                       // check --strict
  std::string host = "127.0.0.1";            // demo --host
  std::optional<unsigned> port;              // demo --port
  std::string window = "7d", by = "region";  // stats
  log_level level = log_level::info;
  std::string error;
};

cli parse_args(int argc, char** argv) {
  cli c;
  if (argc < 2) {
    c.error = "missing command";
    return c;
  }
  c.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      c.config_path = argv[++i];
    } else if (a == "--log-level" && i + 1 < argc) {
      auto l = parse_log_level(argv[++i]);
      if (!l)
        c.error = "--log-level must be debug, info, warn or error";
      else
        c.level = *l;
    } else if (c.command == "stats" && (a == "--window" || a == "--by") && i + 1 < argc) {
      (a == "--window" ? c.window : c.by) = argv[++i];
    } else if (c.command == "demo" && a == "--host" && i + 1 < argc) {
      c.host = argv[++i];
    } else if (c.command == "demo" && a == "--port" && i + 1 < argc) {
      const std::string text = argv[++i];
      unsigned p = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
      if (ec != std::errc() || end != text.data() + text.size() || p == 0 || p > 65535 - 6)
        c.error = "--port must be a port from 1 to 65529 (the simulators take the next six)";
      else
        c.port = p;
    } else if (c.command == "check" && a == "--strict") {
      c.strict = true;
    } else if (c.command == "route" && a == "--key" && i + 1 < argc) {
      c.key = argv[++i];
    } else if (c.command == "route" && a == "--header" && i + 1 < argc) {
      std::string h = argv[++i];
      auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        c.error = "--header takes NAME:VALUE, got '" + h + "'";
      } else {
        std::string name = h.substr(0, colon), value = h.substr(colon + 1);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        value.erase(0, value.find_first_not_of(' '));
        c.headers.emplace_back(std::move(name), std::move(value));
      }
    } else if (c.command == "route" && c.request_path.empty() && !a.empty() && a[0] != '-') {
      c.request_path = a;
    } else {
      c.error = "unexpected argument '" + a + "'";
    }
  }
  return c;
}

// Loads and resolves a config; prints the error and returns null on failure. `text` receives
// the file's content, so a later reload can tell whether it changed.
std::shared_ptr<const snapshot> load(const std::string& path, std::string* text = nullptr) {
  try {
    std::ifstream f(path);
    if (!f) throw config::config_error(path + ": cannot read the file");
    std::stringstream content;
    content << f.rdbuf();
    if (text) *text = content.str();
    return make_snapshot(content.str(), path);
  } catch (const std::exception& e) {
    // Every mistake of the file, one per line.
    std::istringstream lines(e.what());
    for (std::string line; std::getline(lines, line);) std::cerr << "error: " << line << "\n";
  }
  return nullptr;
}

std::string auth_text(const providers::provider& p) {
  if (p.keyless_loopback) return "no key (loopback)";
  switch (p.auth) {
    case providers::auth_style::bearer:
      return "bearer";
    case providers::auth_style::x_api_key:
      return "x-api-key";
    case providers::auth_style::x_goog_api_key:
      return "x-goog-api-key";
    default:
      return "none";
  }
}

// What `meridian check --strict` fails on although the file is valid: what would leave a
// production gateway quietly degraded.
std::vector<std::string> strict_problems(const snapshot& snap) {
  std::vector<std::string> out;
  const auto& cat = snap.catalog;
  if (cat.providers.empty()) out.push_back("no provider is usable");
  for (const auto& s : cat.skipped)
    out.push_back("provider '" + s.name + "' is skipped: " + s.reason);
  for (const auto& p : cat.providers) {
    if (p.models.empty()) out.push_back("provider '" + p.name + "' declares no models");
    if (p.region != "any" && !snap.cfg->regions.count(p.region))
      out.push_back("provider '" + p.name + "': region '" + p.region +
                    "' is not declared under regions (no electricity price, and no key's "
                    "allow.regions can name it)");
  }
  for (const auto& r : snap.cfg->routes) {
    bool usable = false;
    for (const auto& c : r.candidates) {
      auto slash = c.pattern.find('/');
      for (const auto& p : cat.providers) {
        if (!policies::glob_match(c.pattern.substr(0, slash), p.name)) continue;
        for (const auto& m : p.models)
          usable |= policies::glob_match(c.pattern.substr(slash + 1), m.id);
      }
    }
    if (!usable) out.push_back("route '" + r.match + "' has no usable candidate");
  }
  for (const auto& problem : snap.key_problems) out.push_back("key skipped: " + problem);
  return out;
}

int check(const std::string& path, bool strict) {
  auto snap = load(path);
  if (!snap) return 1;
  const auto& cat = snap->catalog;
  std::printf("%s: valid\n\nproviders (%zu usable, %zu skipped)\n", path.c_str(),
              cat.providers.size(), cat.skipped.size());
  std::printf("  %-12s %-9s %-7s %-17s %-8s %-20s %s\n", "NAME", "DIALECT", "REGION", "AUTH",
              "AS_OF", "SOURCE (URL/REGION)", "BASE URL");
  for (const auto& p : cat.providers)
    std::printf("  %-12s %-9s %-7s %-17s %-8s %-20s %s\n", p.name.c_str(),
                std::string(config::to_string(p.dialect)).c_str(), p.region.c_str(),
                auth_text(p).c_str(), p.as_of.empty() ? "-" : p.as_of.c_str(),
                (p.url_source + "/" + p.region_source).c_str(), p.url_text.c_str());
  for (const auto& s : cat.skipped)
    std::printf("  %-12s skipped: %s\n", s.name.c_str(), s.reason.c_str());
  std::printf("\nmodels (USD per million tokens)\n");
  std::printf("  %-36s %8s %8s %8s %7s %9s  %-10s %s\n", "MODEL", "INPUT", "OUTPUT", "CACHE_RD",
              "QUALITY", "CONTEXT", "AUTHOR", "SOURCE");
  for (const auto& p : cat.providers)
    for (const auto& m : p.models)
      std::printf("  %-36s %8.3f %8.3f %8.3f %7d %9u  %-10s %s\n", (p.name + "/" + m.id).c_str(),
                  m.input, m.output, m.cache_read, m.quality, m.context, m.author.c_str(),
                  m.source.c_str());
  if (!snap->cfg->keys.empty()) {
    std::printf("\nkeys (auth %s)\n  %-16s %-8s %-10s %-22s %s\n",
                snap->cfg->auth.required ? "required" : "optional", "NAME", "RPM", "TPM",
                "BUDGET (USD)", "ALLOW");
    for (const auto& k : snap->keys.all()) {
      auto n = [](const std::optional<std::uint64_t>& v) {
        return v ? std::to_string(*v) : std::string("-");
      };
      std::string budget = k.budget ? std::to_string(k.budget->usd).substr(0, 10) + "/" +
                                          std::string(config::to_string(k.budget->period))
                                    : "-";
      std::string regions;
      for (const auto& r : k.allow_regions) regions += (regions.empty() ? "" : ",") + r;
      auto also = [&](const char* what, const std::vector<std::string>& names) {
        if (names.empty()) return;
        regions += std::string(regions.empty() ? "" : " ") + what;
        for (std::size_t i = 0; i < names.size(); ++i) regions += (i ? "," : "") + names[i];
      };
      also("models=", k.allow_models);
      also("routes=", k.allow_routes);
      std::printf("  %-16s %-8s %-10s %-22s %s\n", k.name.c_str(), n(k.rpm).c_str(),
                  n(k.tpm).c_str(), budget.c_str(), regions.empty() ? "any" : regions.c_str());
    }
    for (const auto& problem : snap->key_problems) std::printf("  skipped: %s\n", problem.c_str());
  }
  // Catalog values are defaults dated by AS_OF; a reader deciding whether to trust a price needs
  // to know which ones the file pins down.
  std::printf(
      "\nSOURCE: catalog = built-in preset (prices as of AS_OF), file = this file, catalog+file = "
      "preset with fields overridden here\n");
  if (!snap->cfg->routes.empty()) {
    std::printf("\nroutes (first match wins)\n  %-16s %-15s %-8s %s\n", "MATCH", "POLICY",
                "RETRIES", "CANDIDATES (usable now)");
    for (const auto& r : snap->cfg->routes) {
      std::string usable;
      for (const auto& c : r.candidates) {
        auto slash = c.pattern.find('/');
        for (const auto& p : cat.providers) {
          if (!policies::glob_match(c.pattern.substr(0, slash), p.name)) continue;
          for (const auto& m : p.models)
            if (policies::glob_match(c.pattern.substr(slash + 1), m.id))
              usable += (usable.empty() ? "" : ", ") + p.name + "/" + m.id;
        }
      }
      auto policy_name = [&](std::optional<config::route_policy> p) {
        if (!p) p = r.policy;
        return p ? std::string(config::to_string(*p)) : std::string("price_weighted");
      };
      std::string policy = policy_name(std::nullopt);
      if (!r.tiers.empty()) {  // "cost>quality": each tier's policy, in order
        policy.clear();
        for (const auto& t : r.tiers) policy += (policy.empty() ? "" : ">") + policy_name(t.policy);
      }
      std::string notes;
      if (!r.when.empty()) {
        std::string w;
        for (const auto& [n, v] : r.when.headers) w += (w.empty() ? "" : ", ") + n + ": " + v;
        for (const auto& k : r.when.keys) w += (w.empty() ? "key " : ", key ") + k;
        for (const auto& [n, v] : r.when.metadata)
          w += (w.empty() ? "metadata." : ", metadata.") + n + ": " + v;
        notes += "  when " + w;
      }
      if (!r.fallback_route.empty()) notes += "  then route " + r.fallback_route;
      std::printf("  %-16s %-15s %-8u %s%s\n", r.match.c_str(), policy.c_str(),
                  r.fallback ? r.retries : 0u, usable.empty() ? "(none)" : usable.c_str(),
                  notes.c_str());
    }
  }
  if (!strict) return 0;
  const auto problems = strict_problems(*snap);
  if (problems.empty()) {
    std::printf("\nstrict: no problems\n");
    return 0;
  }
  std::fflush(stdout);
  std::fprintf(stderr, "\nstrict: %zu problem%s\n", problems.size(),
               problems.size() == 1 ? "" : "s");
  for (const auto& p : problems) std::fprintf(stderr, "  error: %s\n", p.c_str());
  return 1;
}

// A key's limits as `meridian route --key` shows them, one line.
std::string key_summary(const config::key_config& k) {
  std::string out = "key: " + k.name;
  out += k.rpm ? ", rpm " + std::to_string(*k.rpm) : ", rpm unlimited";
  out += k.tpm ? ", tpm " + std::to_string(*k.tpm) : ", tpm unlimited";
  if (k.budget) {
    char usd[32];
    std::snprintf(usd, sizeof usd, "%.2f", k.budget->usd);
    out += std::string(", budget $") + usd + " per " +
           (k.budget->period == config::budget_period::day ? "day" : "month");
  } else {
    out += ", no budget";
  }
  std::string regions;
  for (const auto& r : k.allow_regions) regions += (regions.empty() ? "" : ", ") + r;
  out += regions.empty() ? ", any region" : ", regions [" + regions + "] only";
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    std::string joined;
    for (const auto& n : names) joined += (joined.empty() ? "" : ", ") + n;
    out += std::string(", ") + what + " [" + joined + "] only";
  };
  list("models", k.allow_models);
  list("routes", k.allow_routes);
  return out;
}

// The dry run of `meridian route`: one request planned exactly as serve would with no traffic
// seen yet (empty health) and a fixed seed, so the output is repeatable; with `key`, under that
// key's residency (allow.regions), its limits shown.
int route(const std::string& config_path, const std::string& request_path, const std::string& key,
          const std::vector<std::pair<std::string, std::string>>& headers) {
  std::ifstream f(request_path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "error: %s: cannot read the file\n", request_path.c_str());
    return 2;
  }
  std::stringstream body;
  body << f.rdbuf();
  const std::string text = body.str();  // facts keep views into it
  auto parsed = policies::facts_from_openai_body(text);
  if (const auto* e = std::get_if<policies::facts_error>(&parsed)) {
    // A body that is not a JSON object is a usage mistake; a badly shaped field is what the
    // gateway would answer 400 for, so it reads like a plan error.
    std::fprintf(stderr, "error: %s: %s\n", request_path.c_str(), e->message.c_str());
    return e->param.empty() ? 2 : 1;
  }
  const auto& facts = std::get<policies::request_facts>(parsed);
  auto snap = load(config_path);
  if (!snap) return 1;

  policies::constraints limits;
  if (!key.empty()) {
    const config::key_config* k = nullptr;
    for (const auto& candidate : snap->cfg->keys)
      if (candidate.name == key) k = &candidate;
    if (!k) {
      std::string names;
      for (const auto& candidate : snap->cfg->keys)
        names += (names.empty() ? "" : ", ") + candidate.name;
      std::fprintf(stderr, "error: %s declares no key '%s' (keys: %s)\n", config_path.c_str(),
                   key.c_str(), names.empty() ? "none" : names.c_str());
      return 2;
    }
    std::printf("%s\n", key_summary(*k).c_str());
    limits.regions = k->allow_regions;
    limits.models = k->allow_models;
    limits.routes = k->allow_routes;
    limits.key = k->name;
  }
  limits.header = [&headers](std::string_view name) {
    std::optional<std::string_view> out;
    for (const auto& [n, v] : headers)
      if (n == name) out = v;
    return out;
  };
  // Effective prices: each deployment's share of prompt tokens read from its cache on each
  // route over the last day, from the ledger when there is one.
  policies::health_book observed;
  bool have_cache_use = false;
  const auto& st = snap->cfg->stats;
  if (!st.ledger_postgres.empty() || (!st.ledger_path.empty() && fs::exists(st.ledger_path))) {
    stats::ledger_options o = stats::ledger_options_from(st);
    o.background = false;
    stats::ledger book(o);
    const auto now = std::chrono::system_clock::now();
    auto use = book.cache_use_by_route({"24h", now - std::chrono::hours(24), now});
    if (auto* rows = std::get_if<std::vector<stats::ledger::cache_use>>(&use))
      for (const auto& u : *rows) {
        if (u.prompt == 0) continue;
        policies::observation seen;
        seen.cache_share = static_cast<double>(u.cache_read) / static_cast<double>(u.prompt);
        seen.route = u.route;
        observed.record_success(u.provider, u.model, policies::health_clock::now(), seen);
        have_cache_use = true;
      }
  }
  std::mt19937_64 rng(1);
  const auto seen = observed.snapshot(policies::health_clock::now());
  auto r = policies::plan(facts, snap->catalog, seen, snap->cfg->routes, limits, rng);
  auto name = [](const providers::provider* p, const providers::model_info* m) {
    return p->name + "/" + m->id;
  };
  int width = 20;
  for (const auto& a : r.attempts)
    width = std::max(width, static_cast<int>(name(a.provider, a.model).size()));
  for (const auto& e : r.excluded)
    width = std::max(width, static_cast<int>(name(e.provider, e.model).size()));

  std::printf("request: model '%s', ~%llu prompt tokens, %llu completion tokens%s\n",
              facts.model.c_str(), static_cast<unsigned long long>(facts.est_prompt_tokens),
              static_cast<unsigned long long>(
                  facts.max_tokens.value_or(policies::k_default_completion_tokens)),
              facts.max_tokens ? "" : " (assumed: no max_tokens)");
  std::printf("task: %s (%s), language %s\n",
              std::string(policies::to_string(facts.task.what)).c_str(),
              std::string(facts.task.why).c_str(),
              facts.task.language.empty() ? "unknown" : std::string(facts.task.language).c_str());
  const std::string session = policies::conversation_name(facts);
  std::printf("session: %s (affinity %s)\n", session.empty() ? "none" : session.c_str(),
              !snap->cfg->affinity.enabled ? "off"
              : r.policy == "ordered"      ? "does not reorder an ordered route"
                                           : "keeps it on the deployment that answered it last, "
                                             "within the first attempt's route and tier");
  std::printf("route: %s\n", r.route.empty() ? "none (addressed directly)" : r.route.c_str());
  if (r.ok()) {
    std::printf("policy: %s%s\n", std::string(r.policy).c_str(),
                r.policy == "weighted" || r.policy == "price_weighted"
                    ? " (one random draw, fixed seed)"
                    : "");
    std::printf("explain: %s\n", r.explain.c_str());
    std::printf("cache shares: %s\n", have_cache_use
                                          ? "observed per route over the ledger's last 24 h"
                                          : "none observed (no ledger records): effective = list");
    bool cost = r.policy == "cost";
    std::printf("\nattempts (best first; prices USD per million tokens)\n");
    std::printf("  %2s  %-*s %-7s %8s %8s %7s %9s", "#", width, "PROVIDER/MODEL", "REGION", "INPUT",
                "OUTPUT", "QUALITY", "CONTEXT");
    if (cost) std::printf(" %13s %6s %13s", "LIST_USD", "CACHE", "EFFECTIVE_USD");
    std::printf("  %s\n", "REASON");
    for (std::size_t i = 0; i < r.attempts.size(); ++i) {
      const auto& a = r.attempts[i];
      std::string context = a.model->context ? std::to_string(a.model->context) : "-";
      std::printf("  %2zu  %-*s %-7s %8.3f %8.3f %7d %9s", i + 1, width,
                  name(a.provider, a.model).c_str(), a.provider->region.c_str(), a.model->input,
                  a.model->output, policies::quality_for(*a.model, facts), context.c_str());
      if (cost) {  // list price, and at the cache share observed on this route
        policies::candidate c;
        c.model = a.model;
        if (const auto* h = seen.find(a.provider->name, a.model->id))
          c.cache_share = h->cache_share_for(a.route ? a.route->match : "").value_or(0);
        std::printf(" %13.8f %5.0f%% %13.8f", policies::expected_cost(facts, *a.model) / 1e6,
                    c.cache_share * 100, policies::expected_cost(c, facts) / 1e6);
      }
      std::string reason(a.reason);
      if (a.route && a.route->match != r.route) reason += " (route " + a.route->match + ")";
      if (a.route && a.route->tiers.size() > 1)
        reason +=
            ", tier " + std::to_string(a.tier + 1) + " of " + std::to_string(a.route->tiers.size());
      std::printf("  %s\n", reason.c_str());
    }
  }
  if (r.excluded.empty()) {
    std::printf("\nexclusions: none\n");
  } else {
    std::printf("\nexclusions\n  %-*s %s\n", width, "PROVIDER/MODEL", "CONSTRAINT");
    for (const auto& e : r.excluded)
      std::printf("  %-*s %s\n", width, name(e.provider, e.model).c_str(),
                  std::string(e.constraint).c_str());
  }
  if (!r.ok()) {
    std::fflush(stdout);
    const api_error e = to_api_error(*r.error);  // what a client sending this would be told
    std::fprintf(stderr, "error: status %u, param '%s': %s\n", core::http_status(e.kind),
                 e.param.c_str(), e.message.c_str());
    return 1;
  }
  return 0;
}

// A core dump of a serving gateway would hold every provider key in memory: never write one.
void forbid_core_dumps() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
}

// Raises the soft descriptor limit to the hard one (often 1024 against far more), and says when
// even that cannot hold server.limits.max_connections clients (each busy one also holds an
// upstream connection, so the real need is higher under load).
void raise_descriptor_limit(std::uint32_t max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const rlim_t needed = static_cast<rlim_t>(max_connections) + 64;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed)
    log(log_level::warn, "the open-file limit (" + std::to_string(rl.rlim_cur) +
                             ") is below what server.limits.max_connections needs (" +
                             std::to_string(needed) + "); raise it with ulimit -n or LimitNOFILE");
}

int serve_file(const std::string& path) {
  forbid_core_dumps();
  std::string text;
  auto snap = load(path, &text);
  if (!snap) return 1;
  for (const auto& s : snap->catalog.skipped)
    log(log_level::warn, "provider skipped: " + s.reason, "\"provider\":\"" + s.name + "\"");
  for (const auto& problem : snap->key_problems) log(log_level::warn, problem);
  raise_descriptor_limit(snap->cfg->server.limits.max_connections);
  return serve(snap, path, text);
}

// Files the demo needs: beside the binary, in the source tree of a build/<preset>/ binary, or
// in <prefix>/share/meridian for an installed one.
std::string find_file(const std::string& rel) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) {
    candidates.push_back(exe.parent_path() / rel);
    candidates.push_back(exe.parent_path().parent_path().parent_path() / rel);  // build/<preset>/
    candidates.push_back(exe.parent_path().parent_path() / "share" / "meridian" / rel);
  }
  for (const auto& c : candidates)
    if (fs::exists(c, ec)) return c.string();
  return {};
}

// The demo's two files with the ports moved: the gateway on host:port, the six simulators on
// port+1..port+6 (9101..9106 and 8080 by default).
void place_demo(std::string& gateway_yaml, std::string& sim_yaml, const std::string& host,
                std::optional<unsigned> port) {
  auto replace_all = [](std::string& text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  };
  const unsigned gateway = port.value_or(8080);
  if (port) {
    for (unsigned n = 1; n <= 6; ++n) {
      const std::string old_port = std::to_string(9100 + n), new_port = std::to_string(*port + n);
      replace_all(gateway_yaml, "127.0.0.1:" + old_port + "/", "127.0.0.1:" + new_port + "/");
      replace_all(sim_yaml, "port: " + old_port + "\n", "port: " + new_port + "\n");
    }
  }
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  replace_all(gateway_yaml, "listen: 127.0.0.1:8080",
              "listen: " + shown + ":" + std::to_string(gateway));
}

int demo(log_level level, const std::string& host, std::optional<unsigned> port) {
  forbid_core_dumps();
  std::string sim = find_file("tools/sim/meridian-sim");
  if (sim.empty()) sim = find_file("meridian-sim");
  std::string sim_cfg = find_file("tools/sim/examples/demo.yaml");
  std::string gw_cfg = find_file("config/examples/demo.yaml");
  if (sim.empty() || sim_cfg.empty() || gw_cfg.empty()) {
    std::cerr << "error: demo needs meridian-sim, tools/sim/examples/demo.yaml and "
                 "config/examples/demo.yaml (build the project first)\n";
    return 1;
  }
  auto read_all = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  };
  std::string text = read_all(gw_cfg), sim_text = read_all(sim_cfg);
  place_demo(text, sim_text, host, port);
  std::shared_ptr<const snapshot> snap;
  try {
    snap = make_snapshot(text, gw_cfg);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  // The simulators' file with its ports moved, for the simulator to read.
  char sim_path[] = "/tmp/meridian-demo-sim-XXXXXX";
  const int sim_fd = mkstemp(sim_path);
  if (sim_fd < 0 ||
      write(sim_fd, sim_text.data(), sim_text.size()) != static_cast<ssize_t>(sim_text.size())) {
    std::cerr << "error: cannot write the simulators' config to /tmp\n";
    return 1;
  }
  close(sim_fd);
  sim_cfg = sim_path;
  int out[2];
  if (pipe(out) != 0) return 1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::vector<std::string> args = {sim, "-c", sim_cfg};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, sim.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    std::cerr << "error: cannot start " << sim << ": " << std::strerror(rc) << "\n";
    return 1;
  }
  // Wait (at most 10 s) for the simulator to report ready, then keep draining its output.
  std::string seen;
  bool ready = false;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ready && std::chrono::steady_clock::now() < until) {
    pollfd pfd{out[0], POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<std::size_t>(n));
    ready = seen.find("\"ready\"") != std::string::npos;
  }
  unlink(sim_path);  // read at start-up; nothing is left behind
  if (!ready) {
    const unsigned first = port ? *port + 1 : 9101;
    std::cerr << "error: meridian-sim did not start (ports " << first << "-" << first + 5
              << " busy?)\n"
              << seen;
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return 1;
  }
  std::thread([fd = out[0]] {
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
  }).detach();
  const auto& l = snap->cfg->server.listen;
  std::string base = "http://" + l.host + ":" + std::to_string(l.port);
  std::printf(
      "Meridian demo: simulated deepseek and qwen (cn), openai (us), a flaky local server, claude\n"
      "(Anthropic dialect) and gemini (Gemini dialect); no API keys needed\n"
      "Try:\n"
      "  curl -si %s/v1/chat/completions -H 'Content-Type: application/json' \\\n"
      "    -d '{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'\n"
      "    # the cheapest adequate model; x-meridian-route says which served and which failed\n"
      "  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' \\\n"
      "    -d '{\"model\":\"best\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
      "\"Stream please\"}]}'\n"
      "  curl -s %s/v1/chat/completions -H 'Authorization: Bearer sk-demo-us-only' \\\n"
      "    -H 'Content-Type: application/json' -d "
      "'{\"model\":\"deepseek/deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":"
      "\"hi\"}]}'\n"
      "    # refused: this key may only reach US and local providers\n"
      "  curl -s %s/v1/chat/completions -H 'X-Title: My App' -H 'Content-Type: application/json' "
      "\\\n"
      "    -d '{\"model\":\"cn-first\",\"messages\":[{\"role\":\"user\",\"content\":"
      "\"写一个 Python 函数\"}]}'\n"
      "    # tiers: China's cheapest first; the dashboard ranks the app, the task and the "
      "language\n"
      "  curl -s %s/v1/messages -H 'Content-Type: application/json' \\\n"
      "    -H 'anthropic-version: 2023-06-01' \\\n"
      "    -d "
      "'{\"model\":\"auto\",\"max_tokens\":256,\"messages\":[{\"role\":\"user\","
      "\"content\":\"Hello from the Anthropic format\"}]}'\n"
      "Dashboard: %s/dashboard (shares, and what the gpt-4o baseline would have cost)\n"
      "Models:    %s/v1/models\n"
      "Metrics:   %s/metrics\n"
      "Ctrl-C stops the gateway and the simulator.\n\n",
      base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str(),
      base.c_str(), base.c_str());
  std::fflush(stdout);
  set_log_level(level);
  int code = serve(snap, gw_cfg, text);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return code;
}

// The share table of the ledger the config names, read directly from its file (SQLite in WAL
// mode lets this run beside a serving gateway).
int stats_table(const std::string& path, const std::string& window, const std::string& by) {
  auto snap = load(path);
  if (!snap) return 1;
  const auto& st = snap->cfg->stats;
  if (st.ledger_path.empty() && st.ledger_postgres.empty()) {
    std::fprintf(stderr, "error: %s: stats.ledger is none; there is nothing to report\n",
                 path.c_str());
    return 1;
  }
  if (!st.ledger_path.empty() && !fs::exists(st.ledger_path)) {
    std::fprintf(stderr,
                 "error: no ledger at %s yet (it is created when the gateway first serves)\n",
                 st.ledger_path.c_str());
    return 1;
  }
  stats::ledger_options o = stats::ledger_options_from(st);
  o.background = false;
  stats::ledger book(o);
  auto answer = stats::share_answer(&book, {{"window", window}, {"by", by}},
                                    std::chrono::system_clock::now(), baseline_of(*snap));
  if (auto* e = std::get_if<stats::query_error>(&answer)) {
    const std::string what = e->param.empty() ? e->message : "--" + e->param + ": " + e->message;
    std::fprintf(stderr, "error: %s\n", what.c_str());
    return e->param.empty() ? 1 : 2;
  }
  std::fputs(stats::share_table(std::get<nlohmann::json>(answer)).c_str(), stdout);
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  if (argc >= 2 &&
      (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "version") == 0)) {
    std::printf("meridian %s\n", MERIDIAN_VERSION);
    return 0;
  }
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(k_usage, stdout);
    return 0;
  }
  cli c = parse_args(argc, argv);
  if (!c.error.empty()) {
    std::fprintf(stderr, "error: %s\n%s", c.error.c_str(), k_usage);
    return 2;
  }
  set_log_level(c.level);
  if (c.command == "demo") return demo(c.level, c.host, c.port);
  if (c.command == "serve" || c.command == "check") {
    if (c.config_path.empty()) {
      std::fprintf(stderr, "error: %s needs -c FILE\n%s", c.command.c_str(), k_usage);
      return 2;
    }
    return c.command == "check" ? check(c.config_path, c.strict) : serve_file(c.config_path);
  }
  if (c.command == "stats") {
    if (c.config_path.empty()) {
      std::fprintf(stderr, "error: stats needs -c FILE\n%s", k_usage);
      return 2;
    }
    return stats_table(c.config_path, c.window, c.by);
  }
  if (c.command == "route") {
    if (c.config_path.empty() || c.request_path.empty()) {
      std::fprintf(stderr, "error: route needs -c FILE and REQ.json\n%s", k_usage);
      return 2;
    }
    return route(c.config_path, c.request_path, c.key, c.headers);
  }
  std::fprintf(stderr, "error: unknown command '%s'\n%s", c.command.c_str(), k_usage);
  return 2;
}

}  // namespace meridian::gateway
