#!/usr/bin/env bash
# Installs the dependencies, builds the release preset and runs the bundled gateway example
# against the mock TAK servers it starts on loopback. Extra arguments go to the example.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cmake --preset release >/dev/null
cmake --build --preset release --target complete-system omnitak-cot
exec build/release/examples/complete-system "$@"
