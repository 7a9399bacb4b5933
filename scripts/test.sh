#!/usr/bin/env bash
# `make test`: every test of the project, in one command.
#   1. the Rust suite (unit tests and tests/api: the real server against real Postgres and Redis)
#   2. the static musl binary, run alone in an empty root (what a scratch/distroless image is)
#   3. the container files (hadolint, compose schema, tests/containers), Kubernetes manifests
#      (kustomize, kubernetes-validate, checkov, tests/k8s) and the OpenAPI description
#
# Postgres and Redis: TEST_PG_HOST/PORT/USER/PASSWORD and TEST_REDIS_HOST/PORT name them
# (default 127.0.0.1:5432 as postgres, and 127.0.0.1:6379). When they are not reachable and a
# Docker engine is, the throwaway services of docker-compose.test.yml are started (make test-up)
# and always removed afterwards (make test-down), whether the tests pass or not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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

passed=0
failed=0
failures=()
step() {
    local name="$1"
    shift
    echo
    echo "==> $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

step "Rust tests (unit + tests/api against real Postgres and Redis)" cargo test --locked
step "static musl release build" make --no-print-directory build-musl
step "the static binary in an empty root (chroot)" scripts/chroot-smoke.sh target/x86_64-unknown-linux-musl/release/gravity-bff
step "container files (hadolint, compose schema, tests/containers)" scripts/check-containers.sh
step "Kubernetes manifests (kustomize, kubernetes-validate, checkov, tests/k8s)" scripts/check-k8s.sh
step "OpenAPI description" scripts/check-openapi.sh
step "API contract (schemathesis against the release binary)" scripts/check-api-contract.sh
step "chaos scenarios (30 s soak)" env CHAOS_SOAK_SECONDS="${CHAOS_SOAK_SECONDS:-30}" scripts/chaos.sh

echo
if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "suites: $passed passed, $failed failed"
((failed == 0))
