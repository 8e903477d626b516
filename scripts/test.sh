#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs the whole test suite.
# Uses the "dev" preset (debug); under CI (CI=true) the "ci" preset, where warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

preset=dev
if [[ "${CI:-}" == "true" ]]; then preset=ci; fi
cmake --workflow --preset "$preset"
