// The server section: listeners, threads, limits and timeouts.
#include "config/detail.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace meridian::config::detail {

server_config parser::server(const located& at) const {
  server_config out;
  for (const auto& [key, value] :
       entries(at, {"listen", "admin_listen", "threads", "cpus", "always_stream_usage",
                    "log_probes", "limits", "timeouts"})) {
    if (key == "listen") {
      out.listen = convert(value, parse_endpoint);
    } else if (key == "admin_listen") {
      out.admin_listen = convert(value, parse_endpoint);
      if (out.admin_listen->port != 0 && out.admin_listen->port == out.listen.port &&
          out.admin_listen->host == out.listen.host)
        fail(value, "must differ from server.listen");
    } else if (key == "threads") {
      out.threads = static_cast<unsigned>(unsigned_int(value, 4096));
    } else if (key == "cpus") {
      for (const auto& item : items(value)) {
        const auto cpu = static_cast<unsigned>(unsigned_int(item, 1023));  // CPU_SETSIZE - 1
        if (std::find(out.cpus.begin(), out.cpus.end(), cpu) != out.cpus.end())
          fail(item, "CPU " + std::to_string(cpu) + " is listed twice");
        out.cpus.push_back(cpu);
      }
    } else if (key == "always_stream_usage") {
      out.always_stream_usage = boolean(value);
    } else if (key == "log_probes") {
      out.log_probes = boolean(value);
    } else if (key == "limits") {
      limits(value, out.limits);
    } else {
      timeouts(value, out.timeouts);
    }
  }
  return out;
}

void parser::limits(const located& at, server_limits& out) const {
  for (const auto& [key, value] : entries(
           at, {"max_body_bytes", "max_header_bytes", "max_connections", "max_buffered_bytes"})) {
    if (key == "max_connections") {
      out.max_connections = static_cast<std::uint32_t>(positive(value));
      continue;
    }
    std::uint64_t bytes = convert(value, parse_size);
    if (bytes == 0) fail(value, "must be greater than zero");
    if (key == "max_body_bytes") {
      out.max_body_bytes = bytes;
    } else if (key == "max_buffered_bytes") {
      out.max_buffered_bytes = bytes;
    } else {
      if (bytes > std::numeric_limits<std::uint32_t>::max()) fail(value, "must be below 4GiB");
      out.max_header_bytes = static_cast<std::uint32_t>(bytes);
    }
  }
}

void parser::timeouts(const located& at, server_timeouts& out) const {
  for (const auto& [key, value] :
       entries(at, {"header", "connect", "first_byte", "idle_chunk", "total", "drain"})) {
    duration d = convert(value, parse_duration);
    // A zero drain means "stop at once"; a zero deadline anywhere else would fail every request.
    if (d.count() == 0 && key != "drain") fail(value, "must be greater than zero");
    if (key == "header") out.header = d;
    if (key == "connect") out.connect = d;
    if (key == "first_byte") out.first_byte = d;
    if (key == "idle_chunk") out.idle_chunk = d;
    if (key == "total") out.total = d;
    if (key == "drain") out.drain = d;
  }
}

}  // namespace meridian::config::detail
