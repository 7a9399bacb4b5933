#!/usr/bin/env bash
# `make run`: the service without Docker, against a Postgres and Redis you already run.
# Settings come from the environment; a .env file (see .env.example) fills in what is not set.
# Local defaults point at 127.0.0.1 rather than the compose service names db and cache.
# Any arguments are passed to the binary (`make migrate` runs `migrate up` this way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -f .env ]]; then
    # Only variables not already set are taken from .env: the environment wins. A value is all
    # after the first `=`, taken literally (a base64 secret's trailing `=` included).
    while IFS= read -r line; do
        name="${line%%=*}" value="${line#*=}"
        [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
        [[ -n "${!name+x}" ]] || export "$name=$value"
    done < <(grep -E '^[A-Z_][A-Z0-9_]*=' .env)
fi
# The compose host names mean nothing outside compose.
[[ "${DB_HOST:-db}" == "db" ]] && export DB_HOST=127.0.0.1
[[ "${REDIS_HOST-cache}" == "cache" ]] && export REDIS_HOST=127.0.0.1
export DB_USER="${DB_USER:-postgres}" DB_NAME="${DB_NAME:-gravity_db}"
# A local run checks no token unless it is given an AUTH_* setting (the service then names any
# that is missing); it refuses to serve with neither AUTH_ISSUER nor AUTH_DISABLED=true, so the
# choice is made here, and said loudly.
[[ -n "${AUTH_ISSUER:-}${AUTH_AUDIENCE:-}${AUTH_JWKS_URL:-}${AUTH_DISABLED:-}" ]] || export AUTH_DISABLED=true
if [[ $# -eq 0 && "${AUTH_DISABLED:-}" == true ]]; then
    echo "make run: authentication is off (AUTH_DISABLED=true): anyone who reaches port ${API_PORT:-8080} may read and change every user; README, Authentication, says how to turn it on" >&2
fi

# The build first, with cargo's progress shown (the first release build takes a few minutes on
# two cores); the runs below then start at once.
echo "==> cargo build --release (the first build takes a few minutes)" >&2
cargo build --release --locked --bin gravity-bff

if [[ $# -eq 0 ]]; then
    # The binary itself creates the database if it is missing and applies the migrations: no
    # client tools needed, and any failure names the setting it came from.
    cargo run --release --quiet -- migrate up --create-database
fi
exec cargo run --release --quiet -- "$@"
