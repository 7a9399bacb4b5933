#!/usr/bin/env bash
# The runtime image's promise, proven without Docker: the binary alone in an empty directory,
# chroot'ed as the image's uid 65532, is static, answers --version, refuses a bad setting, serves
# GET /health, passes --health, exits 0 on SIGTERM and fails --health once nothing listens.
# tools/chroot_smoke.py runs the checks (its docstring lists them); this script gets it root.
# Usage: scripts/chroot-smoke.sh PATH/TO/gravity-bff   (as root: chroot needs CAP_SYS_CHROOT; as
# another user it re-runs itself with `sudo -n` when that is allowed)
set -euo pipefail

fail() {
    echo "FAIL $*" >&2
    exit 1
}

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH/TO/gravity-bff" >&2
    exit 2
fi
binary="$1"
[[ -f "$binary" && -x "$binary" ]] || fail "no executable binary at $binary (build it with: make build-musl)"

if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n -- "$0" "$@"
    fi
    fail "must run as root: chroot needs CAP_SYS_CHROOT (try: sudo $0 $binary)"
fi
for tool in chroot env file ldd python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

# The standard library is all it needs, so root runs it with the system's python3.
exec python3 "$(dirname "${BASH_SOURCE[0]}")/../tools/chroot_smoke.py" "$binary"
