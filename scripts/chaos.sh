#!/usr/bin/env bash
# `make chaos`: the chaos scenarios of tests/chaos against the release binary.
#
# Each scenario puts the service under steady load, injects one fault (Redis killed or frozen,
# Postgres restarted or its sessions terminated, SIGTERM, 200 slow clients, 100 clients that
# never read, a soak) and checks counted outcomes. They run against a private Postgres cluster
# (initdb into a temporary directory, a spare port) and redis-servers of their own, never the
# shared services.
#
# Settings (environment):
#   GRAVITY_BFF_BIN     the binary to test (default: scripts/release-binary.sh builds the static
#                       musl release build, or the host one when the musl target is missing)
#   CHAOS_SOAK_SECONDS  soak length (default 120; 30 when CI is set)
#   CHAOS_RATE          requests per second of the steady load (default 800)
#   CHAOS_ONLY          comma-separated scenario names (redis-killed, redis-frozen, redis-full,
#                       fleet, fleet-copies, postgres-restart, backends-terminated, idempotent-writes,
#                       slow-uploaders,
#                       sigterm, slow-clients, slow-readers, soak)
#   CHAOS_REPORT        where the figures go as Markdown (default target/chaos/report.md)
#   PG_BIN              directory with initdb and pg_ctl (default: newest /usr/lib/postgresql/*/bin; as for tests/api)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { printf 'chaos: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------ programs
pg_bin=${PG_BIN:-$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)}
[[ -n $pg_bin && -x $pg_bin/initdb && -x $pg_bin/pg_ctl ]] \
    || fail "initdb/pg_ctl not found (looked in ${pg_bin:-/usr/lib/postgresql/*/bin}); apt-get install postgresql, or set PG_BIN"
command -v redis-server >/dev/null || fail "redis-server not found; apt-get install redis-server"
if [[ $(id -u) == 0 ]]; then
    # initdb and pg_ctl refuse to run as root: the scenarios run them as the postgres user.
    command -v runuser >/dev/null || fail "runuser not found (util-linux); it runs initdb/pg_ctl as the postgres user"
    id postgres >/dev/null 2>&1 || fail "running as root needs a 'postgres' user to own the private cluster (apt-get install postgresql creates one)"
fi

# ------------------------------------------------------------------------------ the binary
echo "==> the release binary"
CHAOS_BINARY=$(scripts/release-binary.sh) || fail "no release binary (see the build output above)"
export CHAOS_BINARY

# ------------------------------------------------------------------------------ run
if [[ -n ${CI:-} ]]; then
    export CHAOS_SOAK_SECONDS=${CHAOS_SOAK_SECONDS:-30}
fi
export PG_BIN=$pg_bin
export CHAOS_REPORT=${CHAOS_REPORT:-$PWD/target/chaos/report.md}

echo "==> building the chaos harness (tests/chaos)"
cargo build --locked --test chaos
echo "==> chaos scenarios against $CHAOS_BINARY"
cargo test --locked --test chaos
