// The gateway server: listeners, keep-alive sessions, the endpoint table and graceful
// shutdown. Beast-free on purpose: main and app include it.
#pragma once

#include <memory>

#include <string>

#include "gateway/snapshot.hpp"

namespace meridian::gateway {

// Serves until SIGTERM or SIGINT, then drains in-flight requests (up to
// server.timeouts.drain) and returns the process exit code. `config_path`, when not empty, is
// reloaded on SIGHUP, when the file changes, and on POST /admin/reload; a reload that fails
// validation keeps the running snapshot. `config_text` is the text `snap` was built from.
int serve(std::shared_ptr<const snapshot> snap, const std::string& config_path = {},
          const std::string& config_text = {});

}  // namespace meridian::gateway
