#!/usr/bin/env bash
# `make test`: every test of the project, in one command. It prints its plan first: each suite
# (listed in `suites` below) with what it took on a 2-core machine, then runs them
# all, whatever fails, and ends with each suite's time and the failures.
#   0. the tooling: shellcheck on every script, ruff on every Python file, pytest tests/tools
#   1. the Rust suite (unit tests and tests/api: the real server against real Postgres and Redis)
#   2. the static musl binary, run alone in an empty root (what a scratch/distroless image is)
#   3. the container and fleet files (hadolint, compose schema, haproxy -c, promtool, tests/containers), Kubernetes manifests
#      (kustomize, kubernetes-validate, checkov, tests/k8s) and the OpenAPI description
#   4. what operators' tools read from a live service (promtool, openapi-spec-validator)
#   5. the API contract (schemathesis) and the chaos scenarios, against the release binary
# `make test-fast` is the quick path: fmt, clippy and `cargo test` only.
#
# Postgres and Redis: TEST_PG_HOST/PORT/USER/PASSWORD and TEST_REDIS_HOST/PORT name them
# (default 127.0.0.1:5432 as postgres, and 127.0.0.1:6379). When they are not reachable and a
# Docker engine is, the throwaway services of docker-compose.test.yml are started (make test-up)
# and always removed afterwards (make test-down), whether the tests pass or not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What each suite took on a 2-core machine after a source change (the build cache otherwise warm);
# the first run of a fresh clone also compiles everything and installs the Python tools (about
# 13 min for make test). README.md's Tests section has the figures.
TYPICAL_TOTAL="7 min" TYPICAL_FAST="2 min"
suites() {
    suite "tooling (shellcheck, ruff, pytest tests/tools)" "10 s" scripts/check-tooling.sh
    suite "Rust tests (unit + tests/api against real Postgres and Redis)" "100 s" cargo test --locked --workspace
    suite "static musl release build" "75 s" make --no-print-directory build-musl
    suite "the static binary in an empty root (chroot)" "1 s" scripts/chroot-smoke.sh target/x86_64-unknown-linux-musl/release/gravity-bff
    suite "container files (hadolint, compose schema, haproxy -c, promtool, tests/containers)" "15 s" scripts/check-containers.sh
    suite "Kubernetes manifests (kustomize, kubernetes-validate, checkov, tests/k8s)" "15 s" scripts/check-k8s.sh
    suite "OpenAPI description" "5 s" scripts/check-openapi.sh
    suite "observability (promtool on /metrics, openapi-spec-validator on /openapi.json, JSON log lines)" "5 s" scripts/check-observability.sh
    suite "API contract (schemathesis against the release binary)" "80 s" scripts/check-api-contract.sh
    suite "chaos scenarios (30 s soak)" "2 min" env CHAOS_SOAK_SECONDS="${CHAOS_SOAK_SECONDS:-30}" scripts/chaos.sh
}

mode=plan passed=0 failed=0 failures=() timings=()
# suite NAME TIME COMMAND...: in the plan, one line; in the run, runs COMMAND and times it.
suite() {
    local name="$1" typical="$2" started=$SECONDS
    shift 2
    if [[ $mode == plan ]]; then
        printf '  %-6s  %s\n' "$typical" "$name"
        return
    fi
    echo
    echo "==> $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
    timings+=("$(printf '%6s  %s' "$((SECONDS - started)) s" "$name")")
}

echo "make test runs these suites; beside each, what it took on 2 cores after a source change:"
suites
echo "  about $TYPICAL_TOTAL in all. The quick path, \`make test-fast\` (fmt, clippy, cargo test), is about $TYPICAL_FAST."

export TEST_PG_HOST="${TEST_PG_HOST:-127.0.0.1}" TEST_PG_PORT="${TEST_PG_PORT:-5432}"
export TEST_PG_USER="${TEST_PG_USER:-postgres}" TEST_PG_PASSWORD="${TEST_PG_PASSWORD:-}"
export TEST_REDIS_HOST="${TEST_REDIS_HOST:-127.0.0.1}" TEST_REDIS_PORT="${TEST_REDIS_PORT:-6379}"

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

if ! reachable "$TEST_PG_HOST" "$TEST_PG_PORT" || ! reachable "$TEST_REDIS_HOST" "$TEST_REDIS_PORT"; then
    if scripts/compose.sh version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo "==> Postgres/Redis not reachable; starting the throwaway test services (make test-up)"
        trap 'make --no-print-directory test-down' EXIT
        make --no-print-directory test-up
        export TEST_PG_HOST=127.0.0.1 TEST_PG_PORT=5433 TEST_PG_USER=test TEST_PG_PASSWORD=test
        export TEST_REDIS_HOST=127.0.0.1 TEST_REDIS_PORT=6380
    else
        cat >&2 <<MSG
make test: Postgres at $TEST_PG_HOST:$TEST_PG_PORT or Redis at $TEST_REDIS_HOST:$TEST_REDIS_PORT is not
reachable, and no Docker engine is available to start throwaway ones. Start them, for example:
  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
or point TEST_PG_* / TEST_REDIS_* at servers you have.
MSG
        exit 1
    fi
fi

started=$SECONDS
mode=run
suites

echo
echo "suite times:"
printf '  %s\n' "${timings[@]}"
echo "total: $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "suites: $passed passed, $failed failed"
((failed == 0))
