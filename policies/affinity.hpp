// Session affinity: the requests of one conversation stick to the deployment that served it
// last, where its prompt cache is, while that deployment stays in the plan. A bounded table
// whose entries expire; a soft preference that only reorders what the router planned, so it
// never overrides a hard constraint, an open circuit or a tier.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "policies/health.hpp"
#include "policies/router.hpp"

namespace meridian::policies {

class affinity_table {
 public:
  affinity_table(std::size_t max_sessions, health_clock::duration ttl)
      : max_(max_sessions), ttl_(ttl) {}

  // A reload's new bounds; what the table holds stays (and shrinks on the next remember).
  void set_options(std::size_t max_sessions, health_clock::duration ttl);
  // The deployment ("provider/model") the session was last served by, unless expired.
  std::optional<std::string> find(std::string_view session, health_clock::time_point now) const;
  // The session was served by `deployment`; renews its expiry. Beyond max_sessions the oldest
  // entries go first.
  void remember(std::string_view session, std::string_view deployment,
                health_clock::time_point now);
  std::size_t size() const;
  // Entries in the expiry queue: one per session, however often it is renewed.
  std::size_t queued() const;

 private:
  struct entry {
    std::string deployment;
    health_clock::time_point expires;
  };
  mutable std::mutex mu_;
  std::size_t max_;
  health_clock::duration ttl_;
  std::unordered_map<std::string, entry> map_;
  // Each session once, in the order first remembered; a session renewed since it was queued is
  // queued again (at the back) when it reaches the front, instead of once per request.
  std::deque<std::string> order_;
};

// Moves `deployment`'s attempt to the front when it is planned in the same route and tier as
// the first attempt; true when it moved (or was first already), and the explanation says
// "affinity=kept".
bool prefer_sticky(plan_result& plan, std::string_view deployment);

// A stable name for a conversation when the client gives none: a hash of what a provider's
// prompt cache keys on (the tools, the system messages and the first user message).
std::string prefix_session(std::string_view tools_json, std::string_view prefix_json);
// The body's own name for the conversation (facts.session), else prefix_session of its stable
// prefix; empty when it has neither.
std::string conversation_name(const request_facts& facts);

}  // namespace meridian::policies
