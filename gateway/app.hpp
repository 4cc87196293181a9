// The command line: `meridian serve|check|demo`. main() only forwards argv here.
#pragma once

namespace meridian::gateway {

int run_cli(int argc, char** argv);

}  // namespace meridian::gateway
