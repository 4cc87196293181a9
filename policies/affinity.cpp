// Session affinity; see affinity.hpp.
#include "policies/affinity.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace meridian::policies {

void affinity_table::set_options(std::size_t max_sessions, health_clock::duration ttl) {
  std::lock_guard lock(mu_);
  max_ = max_sessions;
  ttl_ = ttl;
}

std::optional<std::string> affinity_table::find(std::string_view session,
                                                health_clock::time_point now) const {
  std::lock_guard lock(mu_);
  auto it = map_.find(std::string(session));
  if (it == map_.end() || it->second.expires <= now) return std::nullopt;
  return it->second.deployment;
}

void affinity_table::remember(std::string_view session, std::string_view deployment,
                              health_clock::time_point now) {
  if (session.empty() || max_ == 0) return;
  std::lock_guard lock(mu_);
  auto [at, added] = map_.try_emplace(std::string(session));
  at->second.deployment.assign(deployment);
  at->second.expires = now + ttl_;
  if (added) order_.push_back(at->first);
  // order_ holds each session once, so it is as long as the table: a conversation renewed on
  // every request adds nothing to it. Over the bound, the front goes (the session queued, or
  // moved back, longest ago). Expired sessions go from the front, and the first live one found
  // moves to the back, so each call looks one session further.
  while (map_.size() > max_ && !order_.empty()) {
    map_.erase(order_.front());
    order_.pop_front();
  }
  while (!order_.empty()) {
    const auto it = map_.find(order_.front());
    if (it != map_.end() && it->second.expires > now) {
      if (order_.size() > 1) {
        order_.push_back(std::move(order_.front()));
        order_.pop_front();
      }
      break;
    }
    if (it != map_.end()) map_.erase(it);
    order_.pop_front();
  }
}

std::size_t affinity_table::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

std::size_t affinity_table::queued() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

bool prefer_sticky(plan_result& plan, std::string_view deployment) {
  auto& a = plan.attempts;
  if (a.empty()) return false;
  auto named = [&](const attempt& x) {
    return deployment.size() == x.provider->name.size() + 1 + x.model->id.size() &&
           deployment.starts_with(x.provider->name) && deployment[x.provider->name.size()] == '/' &&
           deployment.ends_with(x.model->id);
  };
  auto it = std::find_if(a.begin(), a.end(), named);
  if (it == a.end() || it->route != a.front().route || it->tier != a.front().tier) return false;
  if (it != a.begin()) {
    const std::string_view first_reason = a.front().reason;
    std::rotate(a.begin(), it, it + 1);
    a.front().reason = first_reason;
    a[1].reason = "fallback";
  }
  plan.explain.append(" affinity=kept");
  return true;
}

std::string conversation_name(const request_facts& facts) {
  if (!facts.session.empty()) return facts.session;
  if (facts.prefix_messages.empty()) return {};
  return prefix_session(facts.prefix_tools, facts.prefix_messages);
}

std::string prefix_session(std::string_view tools_json, std::string_view prefix_json) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  mix(tools_json);
  mix(prefix_json);
  char out[24];
  std::snprintf(out, sizeof out, "prefix:%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace meridian::policies
