// meridian-sim entry point: parses the command line and SIM.yaml, then serves until a signal.
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "tools/sim/sim.hpp"

namespace {

constexpr std::string_view k_usage =
    "usage: meridian-sim -c SIM.yaml [--host 127.0.0.1] [--threads N]\n";

int usage_error(const std::string& message) {
  std::cerr << "meridian-sim: " << message << "\n" << k_usage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  meridian::sim::run_options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << k_usage;
      return 0;
    }
    if (arg == "-c" || arg == "--config") {
      if (!value(config_path)) return usage_error("missing value for " + std::string(arg));
    } else if (arg == "--host") {
      if (!value(options.host)) return usage_error("missing value for --host");
    } else if (arg == "--threads") {
      std::string n;
      if (!value(n)) return usage_error("missing value for --threads");
      try {
        std::size_t used = 0;
        options.threads = std::stoi(n, &used);
        if (used != n.size() || options.threads < 1) throw std::invalid_argument(n);
      } catch (const std::exception&) {
        return usage_error("--threads needs a positive integer, got '" + n + "'");
      }
    } else {
      return usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (config_path.empty()) return usage_error("missing -c SIM.yaml");

  meridian::sim::sim_config config;
  try {
    config = meridian::sim::load_config(config_path);
  } catch (const meridian::sim::config_error& e) {
    std::cerr << "meridian-sim: config error: " << e.what() << "\n";
    return 2;
  }
  try {
    meridian::sim::run(config, options, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "meridian-sim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
