#!/usr/bin/env bash
# The API against its contract: schemathesis drives the live release binary with requests made
# from the OpenAPI document the service itself serves (GET /openapi.json, embedded from
# openapi.yaml at build time), and checks every response against it (--checks all: status codes,
# content types, headers, bodies, no 5xx, schema-valid input accepted and invalid input refused,
# Allow on 405, resources gone after DELETE ...). Phases: examples, coverage, fuzzing and the
# stateful phase that follows the document's links (create → read → patch → delete → list).
#
# The service runs on a fresh database of its own (created, migrated with `gravity-bff migrate
# up`, dropped afterwards) on the Postgres named by TEST_PG_HOST/PORT/USER/PASSWORD (default
# 127.0.0.1:5432 as postgres), and the Redis at TEST_REDIS_HOST/PORT with a key prefix of its
# own (its keys are deleted afterwards). Authentication is on, as it ships: tools/dev_issuer.py
# makes a key whose set the service reads from a file, and schemathesis sends a token of it
# with both scopes through the document's security scheme (tools/schemathesis.toml), and checks
# that the user operations refuse requests without it.
#
# Settings: GRAVITY_BFF_BIN (the binary; default from scripts/release-binary.sh),
# CONTRACT_SEED (default 20261124), CONTRACT_MAX_EXAMPLES per operation and phase (default 300;
# no time budget: with one, schemathesis keeps fuzzing until the budget is spent).
# The report (JUnit XML) and the service's log go to target/contract/. schemathesis comes from the
# project's virtualenv (scripts/python.sh, tools/requirements.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SEED=${CONTRACT_SEED:-20261124}
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-300}
OUT=target/contract
HOOKS=$PWD/tools/schemathesis_hooks.py
CONFIG=$PWD/tools/schemathesis.toml

PG_HOST=${TEST_PG_HOST:-127.0.0.1} PG_PORT=${TEST_PG_PORT:-5432}
PG_USER=${TEST_PG_USER:-postgres} PG_PASSWORD=${TEST_PG_PASSWORD:-}
REDIS_HOST=${TEST_REDIS_HOST:-127.0.0.1} REDIS_PORT=${TEST_REDIS_PORT:-6379}

fail() { printf 'check-api-contract: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

# ------------------------------------------------------------------------------ tools
command -v psql >/dev/null || fail "psql not found (apt-get install postgresql-client); it creates and drops the database"
command -v redis-cli >/dev/null || fail "redis-cli not found (apt-get install redis-tools); it removes the run's cache keys"
VENV_BIN=$(scripts/python.sh --bin) || fail "the Python tools did not install"
VENV=$(dirname "$VENV_BIN")
echo "schemathesis $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')"

step "the release binary"
BIN=$(scripts/release-binary.sh) || fail "no release binary (see the build output above)"
echo "$BIN"

# ------------------------------------------------------------------------------ the service
export PGPASSWORD=$PG_PASSWORD
psql_admin() { psql -v ON_ERROR_STOP=1 -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }
database=gravity_contract_$$
prefix=gravity-contract-$$
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
service_pid=
issuer=$(mktemp -d)
cleanup() {
    if [[ -n $service_pid ]]; then
        kill "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    rm -rf "$issuer"
    psql_admin -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$prefix:*" 2>/dev/null \
        | xargs -r -n 100 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "the service on 127.0.0.1:$port, database $database"
psql_admin -c "CREATE DATABASE $database" || fail "cannot create a database on $PG_HOST:$PG_PORT as $PG_USER"
export API_PORT=$port DB_HOST=$PG_HOST DB_PORT=$PG_PORT DB_USER=$PG_USER DB_PASSWORD=$PG_PASSWORD
export DB_NAME=$database REDIS_HOST=$REDIS_HOST REDIS_PORT=$REDIS_PORT CACHE_KEY_PREFIX=$prefix LOG_LEVEL=warn
command -v openssl >/dev/null || fail "openssl not found (apt-get install openssl); it makes the run's token issuer key"
"$VENV/bin/python" tools/dev_issuer.py keys "$issuer"
export AUTH_ISSUER=https://issuer.contract.test AUTH_AUDIENCE=gravity-bff-contract AUTH_JWKS_URL=file://$issuer/jwks.json
CONTRACT_TOKEN=$("$VENV/bin/python" tools/dev_issuer.py token "$issuer" "$AUTH_ISSUER" "$AUTH_AUDIENCE" "users:read users:write")
export CONTRACT_TOKEN # read by tools/schemathesis.toml
"$BIN" migrate up
mkdir -p "$OUT"
"$BIN" >"$OUT/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 1 100); do
    "$BIN" --health 2>/dev/null && break
    kill -0 "$service_pid" 2>/dev/null || fail "the service exited at start; see $OUT/service.log"
    sleep 0.1
done
"$BIN" --health || fail "the service did not become healthy; see $OUT/service.log"

# ------------------------------------------------------------------------------ schemathesis
step "schemathesis: --checks all, seed $SEED, at most $MAX_EXAMPLES examples per operation"
status=0
# One worker: with a fixed seed the run is then the same every time. It runs in $OUT, where
# schemathesis and Hypothesis keep their caches (.schemathesis/, .hypothesis/).
# tools/schemathesis_hooks.py gives every valid Idempotency-Key a fresh suffix, as the contract
# asks of clients (a reused key with another request is a 422).
(cd "$OUT" && SCHEMATHESIS_HOOKS="$HOOKS" "$VENV/bin/schemathesis" --config-file "$CONFIG" \
    run "http://127.0.0.1:$port/openapi.json" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --request-timeout 15 \
    --generation-database none \
    --report junit --report-dir . \
    --no-color) || status=$?

# A panic in a request task would show as a dropped connection to schemathesis; say so plainly.
if grep -q "panicked" "$OUT/service.log"; then
    grep -n -A3 "panicked" "$OUT/service.log" >&2
    fail "the service panicked during the run"
fi
((status == 0)) || fail "schemathesis found contract violations (above; JUnit report in $OUT)"
echo "check-api-contract: the service keeps its contract"
