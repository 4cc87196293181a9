// Resolution rules for the `model` a client sends; see resolve.hpp.
#include "policies/resolve.hpp"

namespace meridian::policies {

std::variant<target, resolve_error> resolve_model(const providers::catalog& cat,
                                                  std::string_view model) {
  using K = resolve_error::kind;
  if (auto slash = model.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = model.substr(0, slash), rest = model.substr(slash + 1);
    if (const auto* p = cat.find(prefix)) {
      if (const auto* m = p->find_model(rest)) return target{p, m};
      // A model id may itself contain '/' (e.g. "Qwen/Qwen2.5-7B" on vLLM): try it bare below.
      bool bare_exists = false;
      for (const auto& q : cat.providers) bare_exists |= q.find_model(model) != nullptr;
      if (!bare_exists) {
        std::string known;
        for (const auto& m : p->models) known += (known.empty() ? "" : ", ") + m.id;
        return resolve_error{K::not_found, "The model '" + std::string(rest) +
                                               "' is not served by provider '" + p->name + "'" +
                                               (known.empty() ? "" : "; it serves: " + known)};
      }
    } else {
      for (const auto& s : cat.skipped)
        if (s.name == prefix)
          return resolve_error{K::not_found,
                               "Provider '" + s.name + "' is not available: " + s.reason};
    }
  }
  const providers::provider* found_p = nullptr;
  const providers::model_info* found_m = nullptr;
  std::string choices;
  int n = 0;
  for (const auto& p : cat.providers) {
    if (const auto* m = p.find_model(model)) {
      found_p = &p;
      found_m = m;
      choices += (choices.empty() ? "" : ", ") + p.name + "/" + m->id;
      ++n;
    }
  }
  if (n == 1) return target{found_p, found_m};
  if (n > 1)
    return resolve_error{K::ambiguous,
                         "The model '" + std::string(model) +
                             "' is served by several providers; choose one of: " + choices};
  return resolve_error{K::not_found, "The model '" + std::string(model) +
                                         "' does not exist or is not served by any configured "
                                         "provider (GET /v1/models lists them)"};
}

}  // namespace meridian::policies
