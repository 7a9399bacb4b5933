#!/usr/bin/env bash
# The runtime image's promise, proven without Docker: the gravity-bff binary, alone in an empty
# directory (no libc, no /etc, no /dev, no shell: less than even distroless static gives it),
# chroot'ed and running as the image's non-root uid 65532, must
#   * be statically linked (`file`, `ldd`),
#   * answer --version, and exit 2 with one line on a bad setting,
#   * serve GET /health -> 200 {"status":"ok"} to a client outside the chroot,
#   * pass `--health` (the image's HEALTHCHECK) from inside the chroot,
#   * stop on SIGTERM with exit code 0,
#   * fail `--health` with exit code 1 (and one line on stderr) once nothing listens.
# Usage: scripts/chroot-smoke.sh PATH/TO/gravity-bff   (as root: chroot needs CAP_SYS_CHROOT)
# Needs Postgres on 127.0.0.1:5432 (user and database postgres) only if the server insists on
# reaching it before it serves /health; no Redis (REDIS_HOST is empty).
set -euo pipefail

readonly RUNTIME_UID=65532
# Longer than the server's default SHUTDOWN_GRACE_SECONDS (10), so a clean shutdown has time.
readonly STOP_TIMEOUT_SECONDS=15
readonly START_TIMEOUT_SECONDS=15

fail() {
    echo "FAIL $*" >&2
    exit 1
}
ok() {
    echo "ok   $*"
}

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH/TO/gravity-bff" >&2
    exit 2
fi
binary="$1"
[[ -f "$binary" && -x "$binary" ]] || fail "no executable binary at $binary (build it with: make build-musl)"

if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n -- "$0" "$@"
    fi
    fail "must run as root: chroot needs CAP_SYS_CHROOT (try: sudo $0 $binary)"
fi
for tool in chroot curl file ldd python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done
chroot_bin="$(command -v chroot)"

echo "chroot smoke test of $binary ($(stat -c %s "$binary") bytes)"

# --- static linking ----------------------------------------------------------------------------
file_output="$(file -b "$binary")"
case "$file_output" in
    *"statically linked"* | *"static-pie linked"*) ok "file: $file_output" ;;
    *) fail "file says the binary is not static: $file_output" ;;
esac
# ldd exits non-zero for a static binary ("not a dynamic executable"); its words are what count.
ldd_output="$(ldd "$binary" 2>&1 || true)"
case "$ldd_output" in
    *"not a dynamic executable"* | *"statically linked"*) ok "ldd: $(echo "$ldd_output" | tr -s '[:space:]' ' ')" ;;
    *) fail "ldd lists shared libraries: $ldd_output" ;;
esac

# --- the jail: one directory holding the binary and nothing else --------------------------------
jail="$(mktemp -d "${TMPDIR:-/tmp}/gravity-chroot.XXXXXX")"
logs="$(mktemp -d "${TMPDIR:-/tmp}/gravity-chroot-logs.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf -- "$jail" "$logs"
}
trap cleanup EXIT
# An interrupted run still goes through the EXIT trap above.
trap 'exit 130' INT
trap 'exit 143' TERM

# mktemp makes the directory 0700; uid 65532 must be able to enter its own root.
chmod 0755 "$jail"
install -m 0555 "$binary" "$jail/gravity-bff"
[[ "$(ls -A "$jail")" == "gravity-bff" ]] || fail "the jail holds more than the binary"

# The command that runs /gravity-bff inside the jail as 65532:65532 with exactly the environment
# given after it (env -i: nothing leaks in from this shell, as in a container). Each element of
# it execs the next, so a background job's $! is the server process itself.
jail_command=(env -i)
jail_exec=("$chroot_bin" --userspec="$RUNTIME_UID:$RUNTIME_UID" --groups="$RUNTIME_UID" "$jail" /gravity-bff)

# A one-shot run, bounded in time. Usage: in_jail [VAR=value ...] -- ARGS...
in_jail() {
    local environment=()
    while [[ "$1" != "--" ]]; do
        environment+=("$1")
        shift
    done
    shift
    timeout --kill-after=2 10 "${jail_command[@]}" "${environment[@]}" "${jail_exec[@]}" "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="$(free_port)"

# --- one-shot invocations ------------------------------------------------------------------------
version_output="$(in_jail -- --version)" \
    || fail "--version exited non-zero inside the chroot"
[[ -n "$version_output" ]] || fail "--version printed nothing"
ok "--version in the chroot as uid $RUNTIME_UID: $version_output"

set +e
in_jail API_PORT=not-a-port -- serve \
    >"$logs/bad.out" 2>"$logs/bad.err"
status=$?
set -e
[[ $status -eq 2 ]] || fail "a bad API_PORT must exit 2, got $status: $(cat "$logs/bad.err")"
[[ "$(wc -l <"$logs/bad.err")" -eq 1 ]] || fail "a bad setting must print exactly one line on stderr, got: $(cat "$logs/bad.err")"
ok "bad setting (API_PORT=not-a-port) -> exit 2: $(cat "$logs/bad.err")"

# --- the server --------------------------------------------------------------------------------
"${jail_command[@]}" API_PORT="$port" DB_HOST=127.0.0.1 DB_USER=postgres DB_NAME=postgres REDIS_HOST= \
    "${jail_exec[@]}" serve \
    >"$logs/server.out" 2>"$logs/server.err" &
server_pid=$!

show_server_output() {
    echo "--- server stderr:" >&2
    tail -n 20 "$logs/server.err" >&2 || true
    echo "--- server stdout:" >&2
    tail -n 20 "$logs/server.out" >&2 || true
}

health_url="http://127.0.0.1:$port/health"
deadline=$((SECONDS + START_TIMEOUT_SECONDS))
http_status=""
while :; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        show_server_output
        fail "the server exited before serving /health"
    fi
    http_status="$(curl --silent --max-time 2 --output "$logs/health.body" --dump-header "$logs/health.headers" \
        --write-out '%{http_code}' "$health_url" || true)"
    [[ "$http_status" == "200" ]] && break
    if ((SECONDS >= deadline)); then
        show_server_output
        fail "GET $health_url gave no 200 within ${START_TIMEOUT_SECONDS}s (last status: ${http_status:-none})"
    fi
    sleep 0.2
done
python3 - "$logs/health.body" <<'PY' || fail "GET /health body is not {\"status\":\"ok\"}: $(cat "$logs/health.body")"
import json, sys
with open(sys.argv[1], encoding="utf-8") as body:
    sys.exit(0 if json.load(body) == {"status": "ok"} else 1)
PY
grep -qi '^content-type: application/json' "$logs/health.headers" \
    || fail "GET /health is not served as application/json: $(grep -i '^content-type' "$logs/health.headers" || echo 'no Content-Type')"
ok "GET /health from outside the chroot -> 200 $(cat "$logs/health.body")"

# The process really is the jailed, unprivileged one.
read -r _ real_uid effective_uid saved_uid fs_uid < <(grep '^Uid:' "/proc/$server_pid/status")
for id in "$real_uid" "$effective_uid" "$saved_uid" "$fs_uid"; do
    [[ "$id" == "$RUNTIME_UID" ]] || fail "the server runs with uid $id, not $RUNTIME_UID: $(grep '^Uid:' "/proc/$server_pid/status")"
done
process_root="$(readlink "/proc/$server_pid/root")"
[[ "$process_root" == "$jail" ]] || fail "the server's root is $process_root, not the jail $jail"
ok "server pid $server_pid runs as uid $RUNTIME_UID with / = the jail"

set +e
in_jail API_PORT="$port" -- --health \
    >"$logs/health-up.out" 2>"$logs/health-up.err"
status=$?
set -e
[[ $status -eq 0 ]] || fail "--health inside the chroot exited $status while the server is up: $(cat "$logs/health-up.err")"
ok "--health inside the chroot -> exit 0"

# --- graceful stop -------------------------------------------------------------------------------
kill -TERM "$server_pid"
deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
while kill -0 "$server_pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    show_server_output
    fail "the server was still running ${STOP_TIMEOUT_SECONDS}s after SIGTERM"
fi
set +e
wait "$server_pid"
status=$?
set -e
server_pid=""
if [[ $status -ne 0 ]]; then
    show_server_output
    fail "after SIGTERM the server exited $status, not 0"
fi
ok "SIGTERM -> the server exited 0"

set +e
in_jail API_PORT="$port" -- --health \
    >"$logs/health-down.out" 2>"$logs/health-down.err"
status=$?
set -e
[[ $status -eq 1 ]] || fail "--health with nothing listening must exit 1, got $status"
[[ "$(wc -l <"$logs/health-down.err")" -eq 1 ]] || fail "--health must say why in one stderr line, got: $(cat "$logs/health-down.err")"
ok "--health with nothing listening -> exit 1: $(cat "$logs/health-down.err")"

echo "chroot smoke test passed"
