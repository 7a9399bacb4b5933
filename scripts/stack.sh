#!/usr/bin/env bash
# `make up` and `make dev`: the stack in Docker, with the failures a newcomer meets said in words.
#   up   build the image, start every service in the background, wait until all are healthy
#   dev  the same with docker-compose.dev.yml (hot reload), in the foreground
# Before anything else, Compose v2 and a running engine must answer; if not, one line says what
# is missing and points to `make run` (the service without Docker), and no .env is created.
# Then .env is created from .env.example when missing (`make .env`: a fresh random DB_PASSWORD).
# When `up` fails, the failed service is named with the last lines of its log; a failed one-off
# `migrate` also gets the fix (a pgdata volume initialised with another DB_PASSWORD: `make down-volumes`).
# Further arguments go to `docker compose up` (e.g. `scripts/stack.sh up --scale api=3`).
# Usage: scripts/stack.sh up|dev [compose up options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-}"
case "$mode" in
    up) files=(-f docker-compose.yml) up_options=(-d --build --wait) ;;
    dev) files=(-f docker-compose.yml -f docker-compose.dev.yml) up_options=(--build) ;;
    *)
        echo "usage: scripts/stack.sh up|dev [docker compose up options]" >&2
        exit 2
        ;;
esac
shift

without_docker() {
    echo "make $mode: $1; without Docker, \`make run\` runs the service against a Postgres and Redis of your own" >&2
    exit 1
}

# --- Docker first: nothing is written when it is not there --------------------------------------
command -v docker >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
    without_docker "Docker is not installed (no docker command)"
if ! why="$(scripts/compose.sh version 2>&1 >/dev/null)"; then
    without_docker "${why#compose.sh: }"
fi
probe=(docker info)
command -v timeout >/dev/null 2>&1 && probe=(timeout 20 docker info)
if command -v docker >/dev/null 2>&1 && ! "${probe[@]}" >/dev/null 2>&1; then
    without_docker "the Docker engine does not answer ('docker info' failed): start it, or check DOCKER_HOST and your permissions on its socket"
fi

[[ -f .env ]] || make --no-print-directory -s .env
# Said on every start, not only when .env is made: the stack then checks no token at all.
if grep -qE '^AUTH_DISABLED=true[[:space:]]*$' .env; then
    echo "make $mode: authentication is off (AUTH_DISABLED=true in .env): anyone who reaches the api may read and change every user; README, Authentication, says how to turn it on" >&2
fi

# --- run, and on failure say why ----------------------------------------------------------------
compose() { scripts/compose.sh "${files[@]}" "$@"; }

# Prints the last lines of a service's log, indented.
tail_log() {
    compose logs --no-color --no-log-prefix --tail "${2:-15}" "$1" 2>&1 | sed 's/^/    /'
}

# After a failed `up`: which services exited non-zero or are unhealthy, and why.
explain() {
    local service state health exit_code log found=0
    while IFS='|' read -r service state health exit_code; do
        [[ -n "$service" ]] || continue
        if [[ "$state" == exited && "$exit_code" != 0 ]] || [[ "$health" == unhealthy ]]; then
            found=1
            echo >&2
            echo "make $mode: $service ${health:+is $health, }${state} (exit code $exit_code); the last lines of its log:" >&2
            tail_log "$service" >&2
        fi
        if [[ "$service" == migrate && "$state" == exited && "$exit_code" != 0 ]]; then
            log="$(compose logs --no-color --no-log-prefix --tail 50 migrate 2>&1 || true)"
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
    done < <(compose ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}' 2>/dev/null || true)
    if ((found == 0)); then
        echo "make $mode: the stack did not come up; \`make ps\` and \`make logs\` show its state" >&2
    fi
}

# `make dev` in the foreground, stopped by one `compose stop`. Compose's own Ctrl-C handling is
# racy: in Compose v2.40 one SIGINT reaches two handlers, and when the context cancellation is seen
# first the other takes the same signal for a second Ctrl-C and kills every container (SIGKILL:
# exit 137, no drain). So `compose up` runs in a process group of its own, out of the terminal's
# reach (its stdin is /dev/null: no keyboard menu, no SIGTTIN), and Ctrl-C, SIGTERM or a closed
# terminal here end that client first (a build or start still under way ends with it; the
# containers run on) and then run `compose stop`: each service gets SIGTERM and its
# stop_grace_period. A second Ctrl-C while stopping kills the services instead.
up_pid=""
signal_status=0

# The handler of the first Ctrl-C, SIGTERM or hangup; $1 is the exit status it stands for.
# shellcheck disable=SC2329 # called by the traps of run_in_foreground
stop_all() {
    signal_status=$1
    trap 'echo "make $mode: killing the services" >&2; compose kill >/dev/null 2>&1 || true' INT TERM HUP
    echo "make $mode: stopping the services (Ctrl-C again to kill them)" >&2
    kill -KILL -- "-$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    compose stop || true
}

run_in_foreground() {
    local status
    set -m # job control: the background job below gets a process group of its own
    COMPOSE_MENU=false compose up "$@" </dev/null &
    up_pid=$!
    set +m
    trap 'stop_all 130' INT
    trap 'stop_all 143' TERM
    trap 'stop_all 129' HUP
    # A trapped signal interrupts `wait` (status > 128) and runs its handler.
    while :; do
        status=0
        wait "$up_pid" 2>/dev/null || status=$?
        kill -0 "$up_pid" 2>/dev/null || break
    done
    trap - INT TERM HUP
    return $((signal_status != 0 ? signal_status : status))
}

status=0
if [[ "$mode" == dev ]]; then
    run_in_foreground "${up_options[@]}" "$@" || status=$?
else
    compose up "${up_options[@]}" "$@" || status=$?
fi
# 129/130/143: stopped with a hangup, Ctrl-C or SIGTERM (the normal end of `make dev`).
if ((status != 0 && status != 129 && status != 130 && status != 143)); then
    explain
fi
exit "$status"
