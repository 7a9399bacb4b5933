#!/usr/bin/env bash
# After a failed `make up` or `make dev` (scripts/stack.sh): names each service that failed, with
# the last lines of its log (or the engine's error, for one it never started) and the fix:
#   - a one-off that exited non-zero (migrate): what its log says; a pgdata volume initialised with
#     another DB_PASSWORD (Postgres keeps the password of its first start) gets `make down-volumes`
#   - a service the engine could not start because a host port is taken: the port and the setting
#     that picks it (API_PORT for lb; PROMETHEUS_PORT, DEV_DB_PORT, DEV_REDIS_PORT)
#   - anything else exited non-zero or unhealthy: its log
# Usage: scripts/stack-explain.sh up|dev [compose file options, e.g. -f docker-compose.yml]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="$1"
shift
compose() { scripts/compose.sh "$@"; }
say() { echo "make $mode: $*" >&2; }

# Prints the last lines of a service's log, indented.
tail_log() {
    compose "$@" logs --no-color --no-log-prefix --tail 15 "$service" 2>&1 | sed 's/^/    /' >&2
}

# The setting that picks a service's host port.
port_setting() {
    case "$1" in
        lb) echo API_PORT ;;
        prometheus) echo PROMETHEUS_PORT ;;
        db) echo DEV_DB_PORT ;;
        cache) echo DEV_REDIS_PORT ;;
        *) echo "the port mapping of $1" ;;
    esac
}

found=0
while IFS='|' read -r service state health exit_code id; do
    [[ -n "$service" ]] || continue
    error=""
    [[ "$state" == created && -n "$id" ]] && error="$(docker inspect --format '{{.State.Error}}' "$id" 2>/dev/null || true)"
    if [[ -n "$error" ]]; then
        found=1
        echo >&2
        say "$service was never started; the engine said: $error"
        port="$(grep -oE '(Bind for|listen tcp[46]?) [^ ]*:[0-9]+' <<<"$error" | grep -oE '[0-9]+$' | head -n 1 || true)"
        if [[ -n "$port" ]]; then
            echo "fix:   host port $port is taken (by another program, or another stack): set $(port_setting "$service") in .env to a free port, or stop what holds $port; then \`make $mode\` again" >&2
        fi
        continue
    fi
    if [[ "$state" == exited && "$exit_code" != 0 ]] || [[ "$health" == unhealthy ]]; then
        found=1
        echo >&2
        say "$service ${health:+is $health, }${state} (exit code $exit_code); the last lines of its log:"
        tail_log "$@"
    fi
    if [[ "$service" == migrate && "$state" == exited && "$exit_code" != 0 ]]; then
        log="$(compose "$@" logs --no-color --no-log-prefix --tail 50 migrate 2>&1 || true)"
        if grep -qi 'password authentication failed' <<<"$log"; then
            cat >&2 <<MSG
cause: the pgdata volume was initialised with another DB_PASSWORD than the one in .env (Postgres
keeps the password of its first start; a new .env gets a new random one).
fix:   \`make down-volumes\` drops the volume and its data, then \`make $mode\` starts afresh; or put the
       old password back into .env's DB_PASSWORD.
MSG
        else
            cat >&2 <<MSG
fix:   migrate applies the schema before the api may start; correct what its log names, then run
       \`make $mode\` again (\`make down-volumes\` starts over with an empty database).
MSG
        fi
    fi
done < <(compose "$@" ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}|{{.ID}}' 2>/dev/null || true)
if ((found == 0)); then
    say "the stack did not come up; \`make ps\` and \`make logs\` show its state"
else
    echo "(\`make ps\` lists every service, exited ones too; \`make logs\` follows them)" >&2
fi
