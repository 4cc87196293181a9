// The accounting metric families, declared in one sorted list so names never appear at call
// sites, and the per-event update.
#include "stats/accounting.hpp"

#include <string>
#include <vector>

namespace meridian::stats {
namespace {

struct family_spec {
  const char* name;
  const char* help;
  std::vector<std::string> labels;
};

enum spec_index {
  k_cost,
  k_electricity,
  k_energy,
  k_estimated,
  k_dropped,
  k_write_errors,
  k_tokens
};

const family_spec k_families[] = {
    {"meridian_cost_usd_total",
     "USD spent upstream, at the catalog's prices.",
     {"provider", "model", "region"}},
    {"meridian_electricity_usd_total",
     "Estimated electricity cost in USD: energy times the region's price per kWh.",
     {"region"}},
    {"meridian_energy_kwh_total",
     "Estimated energy in kWh spent generating the tokens.",
     {"region"}},
    {"meridian_estimated_tokens_total",
     "The part of meridian_tokens_total that Meridian estimated (the upstream reported no "
     "usage, or not all of it), by bucket.",
     {"provider", "type"}},
    {"meridian_ledger_dropped_events_total",
     "Usage events not written to the ledger because its queue was full.",
     {}},
    {"meridian_ledger_write_errors_total", "Failed ledger opens and write transactions.", {}},
    {"meridian_tokens_total",
     "Tokens by bucket (input, cache_read, cache_write, output, reasoning).",
     {"provider", "model", "author", "region", "type"}},
};

counter_family& declare(registry& r, spec_index i) {
  const auto& spec = k_families[i];
  return r.counter(spec.name, spec.help, spec.labels);
}

}  // namespace

accounting::accounting(registry& metrics, ledger* book)
    : ledger_(book),
      tokens_(declare(metrics, k_tokens)),
      cost_(declare(metrics, k_cost)),
      energy_(declare(metrics, k_energy)),
      electricity_(declare(metrics, k_electricity)),
      estimated_(declare(metrics, k_estimated)),
      dropped_(declare(metrics, k_dropped)),
      write_errors_(declare(metrics, k_write_errors)),
      backlog_(metrics.gauge("meridian_ledger_backlog_events",
                             "Usage events queued or awaiting a retry, not yet in the ledger.")) {
  // Series without labels show as 0 from the first scrape rather than appearing on trouble.
  dropped_.inc({}, 0);
  write_errors_.inc({}, 0);
  backlog_.set({}, 0);
}

void accounting::on_event(const usage_event& e) {
  const std::pair<const char*, std::uint64_t> buckets[] = {{"input", e.tokens.input},
                                                           {"cache_read", e.tokens.cache_read},
                                                           {"cache_write", e.tokens.cache_write},
                                                           {"output", e.tokens.output},
                                                           {"reasoning", e.tokens.reasoning}};
  for (const auto& [type, n] : buckets) {
    if (n == 0) continue;
    tokens_.inc({e.provider, e.model, e.author, e.region, type}, static_cast<double>(n));
    if (e.estimated) estimated_.inc({e.provider, type}, static_cast<double>(n));
  }
  cost_.inc({e.provider, e.model, e.region}, e.cost_usd);
  energy_.inc({e.region}, e.energy_kwh);
  electricity_.inc({e.region}, e.electricity_usd);
  if (ledger_) ledger_->record(e);
  sync_ledger_counters();
}

void accounting::sync_ledger_counters() {
  if (!ledger_) return;
  std::lock_guard lock(sync_mu_);
  auto dropped = ledger_->dropped(), errors = ledger_->write_errors();
  if (dropped > seen_dropped_) dropped_.inc({}, static_cast<double>(dropped - seen_dropped_));
  if (errors > seen_write_errors_)
    write_errors_.inc({}, static_cast<double>(errors - seen_write_errors_));
  seen_dropped_ = dropped;
  seen_write_errors_ = errors;
  backlog_.set({}, static_cast<double>(ledger_->queued()));
}

}  // namespace meridian::stats
