// The fallback and retry decisions of one request's attempt loop, without I/O: how many of the
// planned candidates may be tried, whether a failed attempt moves on to the next one, and how
// long to wait before it. gateway/proxy.cpp runs the loop; everything it decides is here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace meridian::policies {

// Attempts one request may make, whatever its route allows: bounds its time and its cost.
inline constexpr std::size_t k_max_attempts = 6;

// Why an attempt did not answer, as far as the decision cares.
enum class failure {
  not_sent,            // the candidate's circuit was open, or its dialect cannot encode the request
  transport,           // connect, DNS, TLS, reset, timeout, a malformed or non-streaming answer
  retryable_status,    // an HTTP status the dialect calls worth another candidate (429, 5xx, 529)
  final_status,        // an HTTP status that is the client's answer (400, 401, 404, ...)
  gateway_overloaded,  // the gateway's own buffer cap: another candidate would need the same
  quota,               // the provider's balance or quota is spent: only another provider helps
  context_length,      // the prompt is over the model's window: only a larger window helps
  content_policy,      // the provider's content filter refused: only another provider helps
};

// What the fallback decision knows of a planned deployment.
struct deployment_ref {
  std::string_view provider;
  std::uint32_t context = 0;  // the model's window in tokens; 0 = unknown
};

class fallback_plan {
 public:
  explicit fallback_plan(std::size_t planned) : attempts_(std::min(planned, k_max_attempts)) {}

  // How many of the planned candidates are tried at most.
  std::size_t attempts() const { return attempts_; }
  bool is_last(std::size_t i) const { return i + 1 >= attempts_; }

  // After attempt `i` failed so: whether the next candidate is tried. Otherwise this failure is
  // the client's answer. (After the first byte of a stream reached the client nothing is asked:
  // there is no retry then.)
  bool moves_on(std::size_t i, failure f) const {
    return !is_last(i) && f != failure::final_status && f != failure::gateway_overloaded;
  }

  // Whether a later candidate `next` can answer where `failed` failed so. A quota or content
  // refusal rules out the same provider (for the rest of this request); a context-length error
  // every window known to be no larger. Other failures rule out nothing.
  static bool worth_trying(failure f, deployment_ref failed, deployment_ref next) {
    switch (f) {
      case failure::quota:
      case failure::content_policy:
        return next.provider != failed.provider;
      case failure::context_length:
        return failed.context == 0 || next.context == 0 || next.context > failed.context;
      default:
        return true;
    }
  }

  // The wait before attempt `i` (from 1): jittered in [base/2, base] with base = 10 ms << i, at
  // most 200 ms; an upstream's Retry-After is honoured, up to 2 s, only when attempt `i` goes to
  // the same provider as the one that asked (another provider does not make us wait).
  // `jitter` is a uniform draw from [0, 1].
  static std::chrono::milliseconds backoff(std::size_t i, bool same_provider,
                                           std::chrono::milliseconds retry_after, double jitter) {
    const long base = static_cast<long>(
        std::min<std::size_t>(std::size_t{10} << std::min<std::size_t>(i, 8), 200));
    const long half = base / 2;
    auto wait = std::chrono::milliseconds(
        half + static_cast<long>(jitter * static_cast<double>(base - half)));
    if (same_provider)
      wait = std::max(wait, std::min(retry_after, std::chrono::milliseconds(2000)));
    return wait;
  }

 private:
  std::size_t attempts_;
};

}  // namespace meridian::policies
