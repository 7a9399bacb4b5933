#!/usr/bin/env bash
# `make up` and `make dev`: the stack in Docker, with the failures a newcomer meets said in words.
#   up   build the image, check the settings with it, start every service in the background and
#        wait until all are healthy
#   dev  the same with docker-compose.dev.yml (hot reload), in the foreground, without the check
# Before anything else, Compose v2 and a running engine must answer; if not, one line says what
# is missing and points to `make run` (the service without Docker), and no .env is created.
# Then .env is created from .env.example when missing (`make .env`: a fresh random DB_PASSWORD).
# `up` checks the settings before it touches a running stack: the new image's `gravity-bff check`
# runs in a throwaway container of api, then of migrate, each with the environment compose gives
# that service (.env as its env_file, the compose file's `environment:` over it). A bad setting
# ends `make up` there, with the binary's line naming it; whatever runs keeps running.
# When a start fails, scripts/stack-explain.sh names the failed service, the last lines of its
# log and the fix. Further arguments go to `docker compose up` (e.g. `up --scale api=3`).
# Usage: scripts/stack.sh up|dev [compose up options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-}"
case "$mode" in
    up) files=(-f docker-compose.yml) up_options=(-d --wait) ;;
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

compose() { scripts/compose.sh "${files[@]}" "$@"; }

# --- make up: the settings, checked by the new image before anything running is touched --------
# `check` validates the settings as `serve` would and connects to nothing: exit 0, or 2 with one
# line naming the bad setting. migrate is checked too: its environment differs (REDIS_HOST "").
check_settings() {
    local service output status
    for service in api migrate; do
        status=0
        output="$(compose run --rm --no-deps -T "$service" check 2>&1)" || status=$?
        ((status == 0)) && continue
        echo "make up: the settings do not pass $service's check; nothing was started or changed, a running stack keeps running:" >&2
        # The binary's own line when it wrote one, else all that compose said.
        grep '^gravity-bff: ' <<<"$output" >&2 || echo "$output" >&2
        echo "fix:   correct it in .env (or the environment), then run \`make up\` again" >&2
        exit "$status"
    done
}

# --- make dev: in the foreground, stopped by one `compose stop` ---------------------------------
# Compose's own Ctrl-C handling is racy: in Compose v2.40 one SIGINT reaches two handlers, and when
# the context cancellation is seen first the other takes the same signal for a second Ctrl-C and
# kills every container (SIGKILL: exit 137, no drain). So `compose up` runs in a process group of
# its own, out of the terminal's reach (its stdin is /dev/null: no keyboard menu, no SIGTTIN), and
# Ctrl-C, SIGTERM or a closed terminal here end that client first (a build or start still under
# way ends with it; the containers run on) and then run `compose stop`: each service gets SIGTERM
# and its stop_grace_period, and the script exits 0. Only a second Ctrl-C kills the services: a
# SIGTERM or SIGHUP sent while they stop is the same request again (a SIGTERM to make's whole
# process group arrives twice, directly and forwarded by make; a closed terminal may hang up twice).
up_pid=""
stopping=0
killed=0

# shellcheck disable=SC2329 # called by the traps of run_in_foreground
stop_all() {
    ((stopping == 0)) || return 0
    stopping=1
    trap 'killed=1; echo "make $mode: killing the services" >&2; compose kill >/dev/null 2>&1 || true' INT
    trap : TERM HUP
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
    trap stop_all INT TERM HUP
    # A trapped signal interrupts `wait` (status > 128) and runs its handler.
    while :; do
        status=0
        wait "$up_pid" 2>/dev/null || status=$?
        kill -0 "$up_pid" 2>/dev/null || break
    done
    trap - INT TERM HUP
    # Stopped on request: the normal end of `make dev` (so make reports no error), unless killed.
    ((stopping == 0)) || status=$((killed ? 130 : 0))
    return "$status"
}

status=0
if [[ "$mode" == dev ]]; then
    run_in_foreground "${up_options[@]}" "$@" || status=$?
else
    compose build
    check_settings
    if compose up "${up_options[@]}" "$@"; then
        published="$(compose port lb 8080 2>/dev/null || true)"
        [[ -z "$published" ]] || echo "make up: the stack is up: http://localhost:${published##*:} (\`make ps\`, \`make logs\`, \`make down\`)"
    else
        status=$?
    fi
fi
if ((status != 0 && stopping == 0)); then
    scripts/stack-explain.sh "$mode" "${files[@]}"
fi
exit "$status"
