#!/usr/bin/env bash
# `make bench`: builds what the bench runs, then runs the bench itself, bench/ (a Rust program of
# the workspace). Its settings: `scripts/bench.sh --help`, or docs/BENCHMARKS.md.
#   - oha is installed with cargo when missing (several minutes on two cores);
#   - unless BENCH_SKIP_BUILD=1, BENCH_URL or BENCH_REPORT is set: the static musl release binary
#     (not when BENCH_BIN names another, e.g. an older build) and the bare hyper ceiling;
#   - Ctrl-C is left to the harness, which stops and removes everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    exec cargo run --locked --quiet -p gravity-bench -- --help
fi

export PATH="$HOME/.cargo/bin:$PATH"
if [[ -z "${BENCH_REPORT:-}" ]] && ! command -v oha >/dev/null; then
    echo "bench: oha is missing; cargo install oha --locked (several minutes on a small machine)" >&2
    cargo install oha --locked
fi

musl=x86_64-unknown-linux-musl
if [[ -z "${BENCH_URL:-}${BENCH_REPORT:-}" && "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$musl" || ! command -v musl-gcc >/dev/null; then
        echo "bench: the static build needs: rustup target add $musl; apt-get install musl-tools" >&2
        exit 1
    fi
    echo "==> the static release binaries: the service and the bare hyper ceiling" >&2
    [[ -n "${BENCH_BIN:-}" ]] || make --no-print-directory build-musl >&2
    cargo build --release --locked --target "$musl" --example bare_hyper >&2
fi

echo "==> the bench harness (bench/)" >&2
cargo build --locked -p gravity-bench
# Ctrl-C reaches every process of the terminal: cargo ignores it from here on and waits while
# the harness, which handles it, stops and removes what it started.
trap '' INT
exec cargo run --locked --quiet -p gravity-bench
