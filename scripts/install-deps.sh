#!/usr/bin/env bash
# Installs the Debian 12 packages omnitak-pool needs to build, test and run its examples.
# Idempotent: packages already installed are skipped, and nothing runs when all are present.
#
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --extra   also the tools .ci/run uses (clang, prometheus' promtool)
set -euo pipefail

packages=(
    cmake ninja-build g++ pkg-config
    libasio-dev libconcurrentqueue-dev libcuckoo-dev prometheus-cpp-dev libpugixml-dev
    libcli11-dev libssl-dev zlib1g-dev libcurl4-openssl-dev
    libgtest-dev libgmock-dev libbenchmark-dev
)
if [[ "${1:-}" == "--extra" ]]; then
    packages+=(clang-14 libclang-rt-14-dev prometheus curl)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
