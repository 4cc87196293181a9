// Prometheus text exposition format 0.0.4: HELP, TYPE, one line per series.
#include "stats/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace meridian::stats {
namespace {

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names, const label_values& v,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(v[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, const std::string& name, const std::string& help,
                   const char* type) {
  out += "# HELP " + name + ' ';
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += "\n# TYPE " + name + ' ' + type + '\n';
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void family::check_arity(const label_values& v) const {
  if (v.size() != labels_.size())
    throw std::logic_error("metric " + name_ + " takes " + std::to_string(labels_.size()) +
                           " labels");
}

void scalar_family::add_to(const label_values& labels, double by) {
  check_arity(labels);
  std::lock_guard lock(mu_);
  values_[labels] += by;
}

void scalar_family::store(const label_values& labels, double v) {
  check_arity(labels);
  std::lock_guard lock(mu_);
  values_[labels] = v;
}

double scalar_family::value(const label_values& labels) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void scalar_family::expose(std::string& out) const {
  append_header(out, name_, help_, type_);
  std::lock_guard lock(mu_);
  for (const auto& [labels, v] : values_) {
    out += name_;
    append_labels(out, labels_, labels);
    out += ' ';
    append_number(out, v);
    out += '\n';
  }
}

void histogram_family::observe(const label_values& labels, double v) {
  check_arity(labels);
  std::lock_guard lock(mu_);
  auto& s = values_[labels];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  if (it != bounds_.end()) ++s.buckets[it - bounds_.begin()];
  s.sum += v;
  ++s.count;
}

std::uint64_t histogram_family::count(const label_values& labels) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second.count;
}

void histogram_family::expose(std::string& out) const {
  append_header(out, name_, help_, "histogram");
  std::lock_guard lock(mu_);
  for (const auto& [labels, s] : values_) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      std::string le;
      append_number(le, bounds_[i]);
      out += name_ + "_bucket";
      append_labels(out, labels_, labels, "le", le);
      out += ' ' + std::to_string(cumulative) + '\n';
    }
    out += name_ + "_bucket";
    append_labels(out, labels_, labels, "le", "+Inf");
    out += ' ' + std::to_string(s.count) + '\n';
    out += name_ + "_sum";
    append_labels(out, labels_, labels);
    out += ' ';
    append_number(out, s.sum);
    out += '\n' + name_ + "_count";
    append_labels(out, labels_, labels);
    out += ' ' + std::to_string(s.count) + '\n';
  }
}

template <class F, class... A>
F& registry::add(A&&... args) {
  auto f = std::make_unique<F>(std::forward<A>(args)...);
  F& ref = *f;
  std::lock_guard lock(mu_);
  for (const auto& existing : families_)
    if (existing->name() == ref.name())
      throw std::logic_error("metric declared twice: " + ref.name());
  families_.push_back(std::move(f));
  std::sort(families_.begin(), families_.end(),
            [](const auto& a, const auto& b) { return a->name() < b->name(); });
  return ref;
}

counter_family& registry::counter(std::string name, std::string help,
                                  std::vector<std::string> labels) {
  return add<counter_family>(std::move(name), std::move(help), std::move(labels));
}

gauge_family& registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  return add<gauge_family>(std::move(name), std::move(help), std::move(labels));
}

histogram_family& registry::histogram(std::string name, std::string help,
                                      std::vector<std::string> labels, std::vector<double> bounds) {
  return add<histogram_family>(std::move(name), std::move(help), std::move(labels),
                               std::move(bounds));
}

std::string registry::expose() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& f : families_) f->expose(out);
  return out;
}

std::string registry::expose_without(std::string_view hidden_label) const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& f : families_)
    if (!f->has_label(hidden_label)) f->expose(out);
  return out;
}

}  // namespace meridian::stats
