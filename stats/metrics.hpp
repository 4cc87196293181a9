// A small metrics registry (counters, gauges, histograms with labels) and the Prometheus text
// exposition format, written here because prometheus-cpp is not packaged for Debian 12.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::stats {

using label_values = std::vector<std::string>;

class family {
 public:
  family(std::string name, std::string help, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}
  virtual ~family() = default;
  virtual void expose(std::string& out) const = 0;
  const std::string& name() const { return name_; }
  bool has_label(std::string_view label) const {
    for (const auto& l : labels_)
      if (l == label) return true;
    return false;
  }

 protected:
  void check_arity(const label_values& v) const;
  std::string name_, help_;
  std::vector<std::string> labels_;
};

// One number per label set: what counters and gauges share.
class scalar_family : public family {
 public:
  scalar_family(std::string name, std::string help, std::vector<std::string> labels,
                const char* type)
      : family(std::move(name), std::move(help), std::move(labels)), type_(type) {}
  double value(const label_values& labels) const;
  void expose(std::string& out) const override;

 protected:
  void add_to(const label_values& labels, double by);
  void store(const label_values& labels, double v);

 private:
  const char* type_;  // "counter" or "gauge", for # TYPE
  mutable std::mutex mu_;
  std::map<label_values, double> values_;
};

class counter_family : public scalar_family {
 public:
  counter_family(std::string name, std::string help, std::vector<std::string> labels)
      : scalar_family(std::move(name), std::move(help), std::move(labels), "counter") {}
  void inc(const label_values& labels, double by = 1.0) { add_to(labels, by); }
};

class gauge_family : public scalar_family {
 public:
  gauge_family(std::string name, std::string help, std::vector<std::string> labels)
      : scalar_family(std::move(name), std::move(help), std::move(labels), "gauge") {}
  void set(const label_values& labels, double v) { store(labels, v); }
  void add(const label_values& labels, double by) { add_to(labels, by); }
};

class histogram_family : public family {
 public:
  histogram_family(std::string name, std::string help, std::vector<std::string> labels,
                   std::vector<double> bounds)
      : family(std::move(name), std::move(help), std::move(labels)), bounds_(std::move(bounds)) {}
  void observe(const label_values& labels, double v);
  std::uint64_t count(const label_values& labels) const;
  void expose(std::string& out) const override;

 private:
  struct series {
    std::vector<std::uint64_t> buckets;  // cumulative at exposition, per-bucket here
    double sum = 0;
    std::uint64_t count = 0;
  };
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<label_values, series> values_;
};

// Owns every family; exposes them sorted by name. Names are declared once per component.
class registry {
 public:
  counter_family& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  gauge_family& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  histogram_family& histogram(std::string name, std::string help, std::vector<std::string> labels,
                              std::vector<double> bounds);
  std::string expose() const;
  // Every family but those with a label named `hidden_label` (e.g. "key": per-tenant series kept
  // off a public listener).
  std::string expose_without(std::string_view hidden_label) const;

 private:
  template <class F, class... A>
  F& add(A&&... args);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<family>> families_;
};

// Label value escaping per the exposition format: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);
// Default latency buckets in seconds, 1 ms to 60 s.
std::vector<double> latency_buckets();

}  // namespace meridian::stats
