// Token accounting: turns each finished attempt into the CONTRACT.md metric families and
// hands it to the ledger.
#pragma once

#include <cstdint>
#include <mutex>

#include "stats/ledger.hpp"
#include "stats/metrics.hpp"
#include "stats/usage_event.hpp"

namespace meridian::stats {

class accounting {
 public:
  // Registers this component's families on `metrics`; `book` may be null (ledger "none").
  // Both must outlive this object.
  accounting(registry& metrics, ledger* book);

  // Counts the event's tokens, cost, energy and electricity, then queues it in the ledger.
  void on_event(const usage_event& event);
  // Brings the ledger's dropped and write-error counters and its backlog into the metrics;
  // on_event does it too, call it before a scrape so an idle gateway still shows trouble.
  void sync_ledger_counters();

 private:
  ledger* ledger_;
  counter_family& tokens_;
  counter_family& cost_;
  counter_family& energy_;
  counter_family& electricity_;
  counter_family& estimated_;  // the estimated part of tokens_
  counter_family& dropped_;
  counter_family& write_errors_;
  gauge_family& backlog_;  // events not yet written, read from the ledger at each sync
  std::mutex sync_mu_;  // guards the last-seen ledger counts
  std::uint64_t seen_dropped_ = 0, seen_write_errors_ = 0;
};

}  // namespace meridian::stats
