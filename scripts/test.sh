#!/usr/bin/env bash
# `make test`: every test of the project, in one command. It prints its plan first: each suite
# (listed in `suites` below), then runs them all, whatever fails, and ends with each suite's
# time and the failures. How long each takes is written in one place, CONTRIBUTING.md.
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

suites() {
    suite "tooling (shellcheck, ruff, pytest tests/tools)" scripts/check-tooling.sh
    suite "Rust tests (unit + tests/api against real Postgres and Redis)" cargo test --locked --workspace
    suite "static musl release build" make --no-print-directory build-musl
    suite "the static binary in an empty root (chroot; needs root or sudo)" scripts/chroot-smoke.sh target/x86_64-unknown-linux-musl/release/gravity-bff
    suite "container files (hadolint, compose schema, haproxy -c, promtool, tests/containers)" scripts/check-containers.sh
    suite "Kubernetes manifests (kustomize, kubernetes-validate, checkov, tests/k8s)" scripts/check-k8s.sh
    suite "OpenAPI description" scripts/check-openapi.sh
    suite "observability (promtool on /metrics, openapi-spec-validator on /openapi.json, JSON log lines)" scripts/check-observability.sh
    suite "API contract (schemathesis against the release binary)" scripts/check-api-contract.sh
    suite "chaos scenarios (30 s soak)" env CHAOS_SOAK_SECONDS="${CHAOS_SOAK_SECONDS:-30}" scripts/chaos.sh
}

mode=plan passed=0 failed=0 failures=() timings=()
# suite NAME COMMAND...: in the plan, one line; in the run, runs COMMAND and times it.
suite() {
    local name="$1" started=$SECONDS
    shift
    if [[ $mode == plan ]]; then
        printf '  %s\n' "$name"
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

echo "make test runs these suites (CONTRIBUTING.md says how long each takes):"
suites
echo "The quick path, \`make test-fast\`, runs fmt, clippy and cargo test only."

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
