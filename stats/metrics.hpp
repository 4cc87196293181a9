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

 protected:
  void check_arity(const label_values& v) const;
  std::string name_, help_;
  std::vector<std::string> labels_;
};

class counter_family : public family {
 public:
  using family::family;
  void inc(const label_values& labels, double by = 1.0);
  double value(const label_values& labels) const;
  void expose(std::string& out) const override;

 private:
  mutable std::mutex mu_;
  std::map<label_values, double> values_;
};

class gauge_family : public family {
 public:
  using family::family;
  void set(const label_values& labels, double v);
  void add(const label_values& labels, double by);
  double value(const label_values& labels) const;
  void expose(std::string& out) const override;

 private:
  mutable std::mutex mu_;
  std::map<label_values, double> values_;
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
