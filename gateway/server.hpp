// The gateway server: listeners, keep-alive sessions, the endpoint table and graceful
// shutdown. Beast-free on purpose: main and app include it.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "providers/catalog.hpp"

namespace meridian::gateway {

// What a request is served with; replaced whole on reload, kept by in-flight requests.
struct snapshot {
  std::shared_ptr<const config::config> cfg;
  providers::catalog catalog;
};

// Serves until SIGTERM or SIGINT, then drains in-flight requests (up to
// server.timeouts.drain) and returns the process exit code.
int serve(std::shared_ptr<const snapshot> snap);

}  // namespace meridian::gateway
