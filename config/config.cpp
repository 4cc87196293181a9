// Parses and validates Meridian's YAML into the typed structs of config.hpp, reporting each
// problem with its source, YAML path and line so an operator can fix it without guessing. The
// top level is here; each section's parser is in a parse_*.cpp beside it.
#include "config/config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "config/detail.hpp"

namespace meridian::config {

namespace detail {

config parser::document(const YAML::Node& root) const {
  config out;
  out.source = source();
  out.regions = default_regions();
  located at{root, "", root.Mark(), root.Mark()};
  // An empty file is what an editor leaves for a moment while it writes, or what a failed
  // copy leaves for good: serving it would drop every provider, key and limit.
  if (root.IsNull())
    fail(at, "the config is empty (no sections): refusing to run with nothing configured");
  if (!root.IsMap()) fail(at, "expected a map of sections, got " + std::string(kind_name(root)));

  std::vector<std::pair<std::string, located>> model_entries;
  std::optional<located> routes_at, baseline_at, keys_at;
  bool providers_ok = true, routes_ok = true;
  for (const auto& [key, value] :
       entries(at, {"server", "providers", "models", "routes", "regions", "energy", "stats",
                    "health", "auth", "keys", "state", "tracing", "affinity"})) {
    const auto& k = key;
    const auto& v = value;
    collect([&] {
      if (k == "affinity") {
        out.affinity = affinity(v);
      } else if (k == "tracing") {
        out.tracing = tracing(v);
      } else if (k == "auth") {
        out.auth = auth(v);
      } else if (k == "keys") {
        keys_at = v;
      } else if (k == "state") {
        out.state = state(v);
      } else if (k == "health") {
        out.health = health(v);
      } else if (k == "stats") {
        out.stats = stats(v, baseline_at);
      } else if (k == "routes") {
        routes_at = v;
      } else if (k == "regions") {
        regions(v, out.regions);
      } else if (k == "energy") {
        out.energy = energy(v);
      } else if (k == "server") {
        out.server = server(v);
      } else if (k == "providers") {
        const std::size_t before = errors_.size();
        providers(v, out.providers);
        providers_ok = errors_.size() == before;
      } else {
        model_entries = entries(v);
      }
    });
  }
  // What names providers is checked once they are all known (section order does not matter),
  // and only when every provider parsed: a provider with a mistake would make each of its
  // references a second, misleading one.
  if (providers_ok) {
    for (const auto& [name, value] : model_entries) {
      const auto& n = name;
      const auto& v = value;
      collect([&] {
        auto slash = n.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == n.size())
          fail_entry(v, "expected a key of the form provider/model, got '" + n + "'");
        std::string provider_name = n.substr(0, slash);
        bool known = std::any_of(out.providers.begin(), out.providers.end(),
                                 [&](const provider_config& p) { return p.name == provider_name; });
        if (!known)
          fail_entry(v, "unknown provider '" + provider_name + "'; declare it under providers");
        out.models[n] = model(v, line_of(v));
      });
    }
    collect([&] {
      if (!baseline_at) return;
      std::string provider_name = out.stats.baseline.substr(0, out.stats.baseline.find('/'));
      if (std::none_of(out.providers.begin(), out.providers.end(),
                       [&](const provider_config& p) { return p.name == provider_name; }))
        fail(*baseline_at, "unknown provider '" + provider_name + "'; declare it under providers");
    });
    if (routes_at) {
      const std::size_t before = errors_.size();
      parse_routes(*routes_at, out);
      routes_ok = errors_.size() == before;
    }
  }
  // Keys name routes and providers: those references are checked only when both parsed whole.
  if (keys_at) collect([&] { parse_keys(*keys_at, out, providers_ok && routes_ok); });
  if (!errors_.empty()) {
    std::string all;
    for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
    throw config_error(all);
  }
  return out;
}

}  // namespace detail

namespace {

// yaml-cpp 0.7 loops forever, emitting nulls and growing without bound, on a document whose
// root starts with a tag or anchor followed by ',' (e.g. "!a,", found by tests/fuzz/fuzz_yaml).
// A real document yields at most a few events per byte, so a first pass that only counts events
// stops the loop before YAML::LoadAll builds it into nodes.
class event_budget : public YAML::EventHandler {
 public:
  event_budget(std::size_t text_bytes, const std::string& source)
      : left_(4 * text_bytes + 64), source_(source) {}

  void OnDocumentStart(const YAML::Mark& m) override { spend(m); }
  void OnDocumentEnd() override { spend(mark_); }
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { spend(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { spend(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    spend(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    spend(m);
  }
  void OnSequenceEnd() override { spend(mark_); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    spend(m);
  }
  void OnMapEnd() override { spend(mark_); }

 private:
  void spend(const YAML::Mark& m) {
    mark_ = m;
    if (left_-- == 0)
      throw config_error(source_ + ": (line " + std::to_string(m.line + 1) +
                         "): invalid YAML: the parser does not terminate on this text");
  }

  std::size_t left_;
  const std::string& source_;
  YAML::Mark mark_;
};

}  // namespace

config parse_config(const std::string& yaml_text, const std::string& source) {
  std::vector<YAML::Node> documents;
  try {
    std::istringstream in(yaml_text);
    YAML::Parser events(in);
    event_budget budget(yaml_text.size(), source);
    while (events.HandleNextDocument(budget)) {
    }
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw config_error(source + ": (line " + std::to_string(e.mark.line + 1) +
                       "): invalid YAML: " + e.msg);
  }
  detail::parser p(source);
  if (documents.size() > 1)
    p.fail("", documents[1].Mark(), "expected a single YAML document, found several");
  return p.document(documents.empty() ? YAML::Node() : documents.front());
}

config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw config_error(path + ": cannot read the file");
  return parse_config(text.str(), path);
}

}  // namespace meridian::config
