// libFuzzer target: the YAML config loader on arbitrary text. A bad file must come back as a
// config_error (path and line for the operator); any other exception or a crash is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)meridian::config::parse_config(text, "<fuzz>");
  } catch (const meridian::config::config_error&) {
  }
  return 0;
}
