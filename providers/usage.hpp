// Token usage in disjoint buckets, the one shape every dialect's usage is normalised into.
#pragma once

#include <cstdint>

namespace meridian::providers {

struct usage {
  std::uint64_t input = 0;        // prompt tokens not served from a cache
  std::uint64_t cache_read = 0;   // prompt tokens served from a cache
  std::uint64_t cache_write = 0;  // prompt tokens written to a cache
  // Of cache_write, those written for an hour (Anthropic's `ttl: 1h`, usage.cache_creation.
  // ephemeral_1h_input_tokens): priced at twice the input price, not the 5-minute write's.
  std::uint64_t cache_write_1h = 0;
  std::uint64_t output = 0;       // completion tokens that are not reasoning
  std::uint64_t reasoning = 0;    // completion tokens spent on reasoning
  bool present = false;           // false: the upstream reported none

  std::uint64_t prompt_total() const { return input + cache_read + cache_write; }
  std::uint64_t completion_total() const { return output + reasoning; }
};

}  // namespace meridian::providers
