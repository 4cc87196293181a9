#!/usr/bin/env bash
# Builds the gateway and the simulator, then runs `meridian demo`: simulated DeepSeek, Qwen,
# OpenAI and local providers on 127.0.0.1:9101-9104 behind a gateway on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset dev >/dev/null
cmake --build --preset dev --target meridian meridian-sim
exec build/dev/meridian demo "$@"
