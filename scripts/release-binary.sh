#!/usr/bin/env bash
# Prints the path of the release binary that the reliability checks (check-api-contract.sh,
# chaos.sh) run, building it first if needed (cargo's progress goes to stderr):
#   $GRAVITY_BFF_BIN when set; else the static musl build the image ships, when the musl target
#   and musl-gcc are installed (.ci/run installs both); else the host release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n ${GRAVITY_BFF_BIN:-} ]]; then
    binary=$GRAVITY_BFF_BIN
else
    musl=x86_64-unknown-linux-musl
    if rustup target list --installed 2>/dev/null | grep -qx "$musl" && command -v musl-gcc >/dev/null; then
        cargo build --release --locked --target "$musl" --bin gravity-bff >&2
        binary=target/$musl/release/gravity-bff
    else
        echo "release-binary: the musl target is not installed; using the host release build" >&2
        cargo build --release --locked --bin gravity-bff >&2
        binary=target/release/gravity-bff
    fi
fi
[[ -x $binary ]] || { echo "release-binary: $binary is not an executable" >&2; exit 1; }
[[ $binary == /* ]] || binary=$PWD/$binary
echo "$binary"
