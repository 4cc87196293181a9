// The meridian executable: everything lives in the libraries; this only hands over argv.
#include "gateway/app.hpp"

int main(int argc, char** argv) {
  return meridian::gateway::run_cli(argc, argv);
}
