#!/usr/bin/env bash
# What operators' tools read from the service, checked by those tools' own validators against a
# live process (not the sources): `promtool check metrics` on GET /metrics, openapi-spec-validator
# on the GET /openapi.json it serves, and every line it wrote to stdout and stderr parsed as JSON.
#
#   scripts/check-observability.sh       exit 0 when every check passes, 1 when one does not
#
# The binary is $GRAVITY_BFF_BIN, else the debug build (built when missing). It runs against the
# Postgres and Redis named by TEST_PG_HOST/PORT/USER/PASSWORD and TEST_REDIS_HOST/PORT (default
# 127.0.0.1:5432 as postgres, and 127.0.0.1:6379) and only reads: it needs no schema. It
# checks bearer tokens of a key made for the run (tools/dev_issuer.py), so the authentication
# figures and the request line's `user.id` are checked too.
# Tools: promtool (Debian: apt-get install prometheus), curl, openssl; openapi-spec-validator from
# the project's virtualenv (scripts/python.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'check-observability: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ------------------------------------------------------------------------------ tools
command -v promtool >/dev/null || die "promtool not found (Debian: apt-get install prometheus)"
command -v curl >/dev/null || die "curl not found"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
venv_bin=$(scripts/python.sh --bin) || die "the Python tools did not install"
validator=$venv_bin/openapi-spec-validator

binary=${GRAVITY_BFF_BIN:-}
if [[ -z $binary ]]; then
    cargo build --locked --quiet --bin gravity-bff || die "cargo build failed"
    binary=target/debug/gravity-bff
fi
[[ -x $binary ]] || die "$binary is not an executable"

# ------------------------------------------------------------------------------ the service
work=$(mktemp -d)
service_pid=
prefix=gravity-observability-$$
cleanup() {
    if [[ -n $service_pid ]]; then
        kill "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    # The service records its Redis at {prefix}:instance: nothing of this run stays behind.
    redis-cli -h "${TEST_REDIS_HOST:-127.0.0.1}" -p "${TEST_REDIS_PORT:-6379}" --scan \
        --pattern "$prefix:*" 2>/dev/null \
        | xargs -r -n 100 redis-cli -h "${TEST_REDIS_HOST:-127.0.0.1}" -p "${TEST_REDIS_PORT:-6379}" del \
            >/dev/null 2>&1 || true
}
trap cleanup EXIT

port=$("$venv_bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export API_PORT=$port LOG_LEVEL=debug
export DB_HOST=${TEST_PG_HOST:-127.0.0.1} DB_PORT=${TEST_PG_PORT:-5432} DB_NAME=postgres
export DB_USER=${TEST_PG_USER:-postgres} DB_PASSWORD=${TEST_PG_PASSWORD:-}
export REDIS_HOST=${TEST_REDIS_HOST:-127.0.0.1} REDIS_PORT=${TEST_REDIS_PORT:-6379}
export CACHE_KEY_PREFIX=$prefix
"$venv_bin/python" tools/dev_issuer.py keys "$work/issuer"
export AUTH_ISSUER=https://issuer.observability.test AUTH_AUDIENCE=gravity-bff AUTH_JWKS_URL=file://$work/issuer/jwks.json
token=$("$venv_bin/python" tools/dev_issuer.py token "$work/issuer" "$AUTH_ISSUER" "$AUTH_AUDIENCE" users:read observer)
"$binary" >"$work/stdout" 2>"$work/stderr" &
service_pid=$!
for _ in $(seq 1 150); do
    "$binary" --health 2>/dev/null && break
    kill -0 "$service_pid" 2>/dev/null || die "the service exited at start: $(cat "$work/stderr")"
    sleep 0.1
done
"$binary" --health || die "the service did not become healthy: $(cat "$work/stderr")"

# fetch METHOD URL FILE: the body into FILE, whatever the status (404 and 405 are wanted below).
fetch() {
    curl --silent --show-error --max-time 10 --request "$1" --output "$3" \
        --header "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" "$2"
}

base=http://127.0.0.1:$port
# A few answers of different kinds, so request counters and histograms have series to check.
fetch GET "$base/health" /dev/null
fetch GET "$base/nowhere" /dev/null
fetch PUT "$base/health" /dev/null
fetch GET "$base/v1/users/not-a-uuid" /dev/null
curl --silent --max-time 10 --output /dev/null --header "Authorization: Bearer $token" "$base/v1/users/not-a-uuid"
fetch GET "$base/metrics" "$work/metrics.txt"
fetch GET "$base/openapi.json" "$work/openapi.json"

# ------------------------------------------------------------------------------ the checks
failed=0
say "promtool check metrics ($(promtool --version 2>&1 | head -n1))"
promtool check metrics <"$work/metrics.txt" || { say "promtool rejected /metrics"; failed=1; }
for family in gravity_build_info process_open_fds process_max_fds process_resident_memory_bytes \
    process_cpu_seconds_total process_start_time_seconds gravity_runtime_workers \
    gravity_auth_refusals_total gravity_auth_keys gravity_auth_tokens_remembered; do
    grep -q "^# TYPE $family " "$work/metrics.txt" || { say "/metrics has no $family"; failed=1; }
done

say "openapi-spec-validator on the served /openapi.json"
"$validator" --schema 3.1 "$work/openapi.json" || { say "openapi-spec-validator rejected /openapi.json"; failed=1; }

kill "$service_pid"
wait "$service_pid" || { say "the service did not exit 0 on SIGTERM"; failed=1; }
service_pid=

say "every line on stdout and stderr is a JSON object"
"$venv_bin/python" tools/json_lines.py "$work/stdout" "$work/stderr" || failed=1
grep -q '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' "$work/stdout" \
    || { say "no request line carries the trace id sent in traceparent"; failed=1; }
grep -q '"user.id":"observer"' "$work/stdout" || { say "no request line names the token's subject"; failed=1; }
! grep -qF "${token##*.}" "$work/stdout" "$work/stderr" || { say "a token's signature was logged"; failed=1; }

((failed == 0)) || die "failed"
say "ok: /metrics is promtool-clean, /openapi.json is valid OpenAPI 3.1, every log line is JSON"
