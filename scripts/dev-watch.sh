#!/usr/bin/env bash
# The dev api's command (docker-compose.dev.yml; the Dockerfile's dev stage), run from the source
# bind-mounted on /app: `cargo watch` with the given arguments, and a clean stop.
# cargo-watch does not hand SIGTERM on to the server it runs: `docker compose stop` (or Ctrl-C
# on `make dev`) ended the container with exit 143 and no drain. Here SIGTERM/SIGINT first go to
# the server (the `gravity-bff` process cargo-watch started, which lets in-flight requests finish
# for SHUTDOWN_GRACE_SECONDS, logs `stopped` and exits 0); once it is gone cargo-watch is stopped
# and the script exits 0. In the container PID 1 is compose's init (`init: true`), which passes
# the signal on to this script.
# Usage: scripts/dev-watch.sh [cargo watch arguments]
set -euo pipefail

cargo watch "$@" &
watcher=$!

# Every process below PID $1, from the parent PIDs in /proc/*/stat.
descendants() {
    local -A parent=()
    local stat line pid current
    for stat in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$stat" || continue
        pid="${line%% *}"
        line="${line##*) }" # after "(comm) ": state, ppid, ...
        line="${line#* }"
        parent[$pid]="${line%% *}"
    done
    local -a queue=("$1")
    while ((${#queue[@]} > 0)); do
        current="${queue[0]}"
        queue=("${queue[@]:1}")
        for pid in "${!parent[@]}"; do
            if [[ "${parent[$pid]}" == "$current" ]]; then
                queue+=("$pid")
                echo "$pid"
            fi
        done
    done
}

# The running server: a gravity-bff below cargo-watch that is no --health probe or other command.
servers() {
    local pid
    local -a words
    for pid in $(descendants "$watcher"); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == gravity-bff ]] || continue
        mapfile -d "" -t words 2>/dev/null <"/proc/$pid/cmdline" || continue
        case " ${words[*]:1} " in
            *" --health "* | *" migrate "* | *" --version "* | *" --help "*) ;;
            *) echo "$pid" ;;
        esac
    done
}

stop() {
    local pid deadline
    trap '' TERM INT
    deadline=$((SECONDS + ${SHUTDOWN_GRACE_SECONDS:-10} + 5))
    for pid in $(servers); do
        kill -TERM "$pid" 2>/dev/null || continue
        while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
            sleep 0.2
        done
    done
    kill -TERM "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    exit 0
}
trap stop TERM INT

wait "$watcher"
