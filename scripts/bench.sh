#!/usr/bin/env bash
# `make bench`: load-test gravity-bff with oha and print a table of what it reaches, each figure
# next to the physical limit measured on the same machine in the same run.
#
# By default it builds the static release binary and the "bare hyper" ceiling
# (examples/bare_hyper.rs), creates a database of its own, migrates and seeds it with one SQL
# statement, and starts the service against the local Postgres and Redis. With BENCH_URL it
# benchmarks an already running stack instead (`make up`'s) and skips what needs a process of
# its own. Everything it starts is stopped on exit, Ctrl-C included. See docs/BENCHMARKS.md.
#
# Settings (environment):
#   BENCH_DURATION      seconds per scenario (10)            BENCH_CONNECTIONS  oha connections (64)
#   BENCH_USERS         users seeded (10000)                 BENCH_HOT_IDS      ids read by get_hot (100)
#   BENCH_URL           benchmark this running stack instead (e.g. http://127.0.0.1:8080)
#   BENCH_COLD_URL      with BENCH_URL: an instance of the same stack with CACHE_TTL_SECONDS=0
#   BENCH_PID           with BENCH_URL: the service's pid on this host, for its memory figures
#   BENCH_PORT          first of the three local ports used (18181: service, +1 cache off, +2 bare)
#   BENCH_PG_CLIENTS    pgbench clients (8; see docs/BENCHMARKS.md for why not 64)
#   BENCH_SKIP_BUILD=1  use the binaries already built      BENCH_BIN  the service binary to run
#   BENCH_SERVICE_LOG   where the service's request log goes (/dev/null; level stays info)
#   BENCH_SCENARIOS     a subset, e.g. "health get_hot" (all)
#   DB_HOST DB_PORT DB_USER DB_PASSWORD REDIS_HOST REDIS_PORT   where Postgres and Redis are
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${BENCH_DURATION:-10}"
DURATION="${DURATION%s}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
USERS="${BENCH_USERS:-10000}"
HOT_IDS="${BENCH_HOT_IDS:-100}"
BENCH_URL="${BENCH_URL:-}"
BENCH_URL="${BENCH_URL%/}"
COLD_URL="${BENCH_COLD_URL:-}"
COLD_URL="${COLD_URL%/}"
PORT="${BENCH_PORT:-18181}"
PG_CLIENTS="${BENCH_PG_CLIENTS:-8}"
SERVICE_LOG="${BENCH_SERVICE_LOG:-/dev/null}"
SCENARIOS="${BENCH_SCENARIOS:-health get_hot get_cold list create mixed}"
MUSL_TARGET=x86_64-unknown-linux-musl
BIN="${BENCH_BIN:-target/$MUSL_TARGET/release/gravity-bff}"
BARE_BIN="target/$MUSL_TARGET/release/examples/bare_hyper"

export DB_HOST="${DB_HOST:-127.0.0.1}" DB_PORT="${DB_PORT:-5432}" DB_USER="${DB_USER:-postgres}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}" REDIS_PORT="${REDIS_PORT:-6379}"
export PGHOST="$DB_HOST" PGPORT="$DB_PORT" PGUSER="$DB_USER"
[[ -n "${DB_PASSWORD:-}" ]] && export PGPASSWORD="$DB_PASSWORD"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="bench/results/$RUN_ID"
TAG="gravity_bench_$$"
DB_NAME="$TAG"
PGBENCH_DB="${TAG}_pgbench"
CACHE_PREFIX="gravity-bench-$$"

log() { printf '\033[2m[bench %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- cleanup: every process started here is stopped, the databases and cache keys removed ----------

PIDS=()
CREATED_DBS=()
CLEANED=0
cleanup() {
    [[ "$CLEANED" == 1 ]] && return
    CLEANED=1
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # The service drains for up to its grace period; give it a few seconds, then insist.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local db
    for db in "${CREATED_DBS[@]}"; do
        dropdb --if-exists --force "$db" 2>/dev/null || log "could not drop database $db"
    done
    if [[ -z "$BENCH_URL" ]] && have redis-cli; then
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$CACHE_PREFIX:*" 2>/dev/null |
            xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'log "interrupted; stopping everything"; exit 130' INT
trap 'exit 143' TERM

# Starts a command in the background and remembers its pid for cleanup; the pid is in $STARTED.
start_bg() {
    local out="$1"
    shift
    "$@" >"$out" 2>>"$RESULTS/stderr.log" &
    STARTED=$!
    PIDS+=("$STARTED")
}

# Stops one process started by start_bg and forgets it.
stop_bg() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# VmRSS / VmHWM of a pid in KiB, or "null".
mem_kib() {
    local value
    value="$(awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status" 2>/dev/null || true)"
    echo "${value:-null}"
}

wait_http() {
    local url="$1"
    for _ in $(seq 100); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --- CPU accounting: where the cores went during each scenario --------------------------------

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
# The processes whose CPU time is reported per scenario: "service:PID" "redis:PID …" "postgres:PID …".
ACCOUNT_SERVICE=""
ACCOUNT_REDIS=""

proc_ticks() {
    local sum=0 pid value
    for pid in "$@"; do
        value="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)"
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}

# Busy and idle ticks of the whole machine.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }

# CPU time of this shell's finished children (oha), in milliseconds. `times` must run in this
# shell, not in a command substitution (a subshell has children of its own), hence the file.
children_ms() {
    tail -n 1 "$RESULTS/.times" | awk '{
        total = 0
        for (i = 1; i <= 2; i++) { split($i, part, "m"); sub("s", "", part[2]); total += part[1] * 60 + part[2] }
        printf "%d", total * 1000
    }'
}

# Backends of the bench database plus the WAL writer, checkpointer and background writer.
postgres_pids() {
    [[ -z "$BENCH_URL" ]] || return 0
    psql -d postgres -Atc "SELECT pid FROM pg_stat_activity
        WHERE (datname = '$DB_NAME' AND pid <> pg_backend_pid())
           OR backend_type IN ('walwriter', 'checkpointer', 'background writer')" 2>/dev/null || true
}

ACCOUNT_START=()
account_start() {
    ACCOUNT_PG_PIDS="$(postgres_pids | tr '\n' ' ')"
    local busy idle
    read -r busy idle < <(machine_ticks)
    times >"$RESULTS/.times"
    # shellcheck disable=SC2086
    ACCOUNT_START=(
        "$(date +%s%N)" "$(proc_ticks $ACCOUNT_SERVICE)" "$(proc_ticks $ACCOUNT_REDIS)"
        "$(proc_ticks $ACCOUNT_PG_PIDS)" "$(children_ms)" "$busy" "$idle"
    )
}

# Writes $RESULTS/<name>.cpu: milliseconds of CPU per process group over the scenario.
account_stop() {
    local name="$1" end service redis postgres oha busy idle
    end="$(date +%s%N)"
    times >"$RESULTS/.times"
    # shellcheck disable=SC2086
    service="$(proc_ticks $ACCOUNT_SERVICE)" redis="$(proc_ticks $ACCOUNT_REDIS)"
    # shellcheck disable=SC2086
    postgres="$(proc_ticks $ACCOUNT_PG_PIDS)" oha="$(children_ms)"
    read -r busy idle < <(machine_ticks)
    local tick_ms=$((1000 / CLK_TCK))
    {
        echo "wall_ms=$(((end - ACCOUNT_START[0]) / 1000000))"
        [[ -n "$ACCOUNT_SERVICE" ]] && echo "service_ms=$(((service - ACCOUNT_START[1]) * tick_ms))"
        [[ -n "$ACCOUNT_REDIS" ]] && echo "redis_ms=$(((redis - ACCOUNT_START[2]) * tick_ms))"
        [[ -n "$ACCOUNT_PG_PIDS" ]] && echo "postgres_ms=$(((postgres - ACCOUNT_START[3]) * tick_ms))"
        echo "oha_ms=$((oha - ACCOUNT_START[4]))"
        echo "machine_busy_ms=$(((busy - ACCOUNT_START[5]) * tick_ms))"
        echo "machine_idle_ms=$(((idle - ACCOUNT_START[6]) * tick_ms))"
    } >"$RESULTS/$name.cpu"
}

# --- preflight --------------------------------------------------------------------------------

for tool in curl python3; do have "$tool" || die "$tool is needed"; done
if [[ -z "$BENCH_URL" ]]; then
    for tool in psql createdb dropdb pgbench redis-cli redis-benchmark; do
        have "$tool" || die "$tool is needed (postgresql-client, postgresql-contrib for pgbench, redis-tools)"
    done
fi
if ! have oha; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! have oha; then
    log "oha is missing: cargo install oha --locked (several minutes on a small machine)"
    cargo install oha --locked
fi
oha --help | grep -q -- '--output-format' || die "this oha has no --output-format; cargo install oha --locked --force"

mkdir -p "$RESULTS"
: >"$RESULTS/stderr.log"
log "results in $RESULTS"

if [[ -z "$BENCH_URL" ]]; then
    pg_isready -q -h "$DB_HOST" -p "$DB_PORT" || die "Postgres does not answer on $DB_HOST:$DB_PORT"
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "Redis does not answer on $REDIS_HOST:$REDIS_PORT"
    if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
        log "building the static release binary and the bare hyper ceiling"
        make --no-print-directory build-musl >&2
        cargo build --release --locked --target "$MUSL_TARGET" --example bare_hyper >&2
    fi
    [[ -x "$BIN" ]] || die "no service binary at $BIN (make build-musl)"
    [[ -x "$BARE_BIN" ]] || die "no bare hyper binary at $BARE_BIN"
fi

# --- the machine, as the report records it ----------------------------------------------------

{
    echo "run_id=$RUN_ID"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "mem_total_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "oha=$(oha --version | head -n 1)"
    echo "duration_s=$DURATION"
    echo "connections=$CONNECTIONS"
    echo "users=$USERS"
    echo "hot_ids=$HOT_IDS"
    echo "pg_clients=$PG_CLIENTS"
    echo "mode=$([[ -n "$BENCH_URL" ]] && echo "external $BENCH_URL" || echo local)"
    if [[ -z "$BENCH_URL" ]]; then
        echo "binary=$BIN"
        echo "binary_bytes=$(stat -c %s "$BIN")"
        echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src modified)')"
        echo "postgres=$(psql -d postgres -Atc 'SHOW server_version')"
        echo "redis=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server | awk -F: '/^redis_version/ { print $2 }' | tr -d '\r')"
    fi
} >"$RESULTS/meta.env"
# What else was running: the busiest processes over one second (top's second sample; ps's
# %CPU is a lifetime average).
busiest() {
    if have top; then
        top -b -n 2 -d 1 | awk '/^top -/ { sample++ } sample == 2' | sed -n '7,18p'
    else
        ps -eo pcpu,rss,comm --sort=-pcpu | head -n 12
    fi
}
busiest >"$RESULTS/ps_before.txt"

# --- the data: a database of its own, seeded in one statement ---------------------------------

if [[ -z "$BENCH_URL" ]]; then
    log "creating database $DB_NAME, migrating, seeding $USERS users"
    createdb "$DB_NAME"
    CREATED_DBS+=("$DB_NAME")
    DB_NAME="$DB_NAME" "$BIN" migrate up >/dev/null
    psql -q -v ON_ERROR_STOP=1 -d "$DB_NAME" <<SQL
INSERT INTO users (name, email, avatar_url, created_at, updated_at)
SELECT 'Bench User ' || i,
       'bench.user' || i || '@example.com',
       'https://avatars.example.com/' || i || '.png',
       now() - i * interval '1 second',
       now() - i * interval '1 second'
FROM generate_series(1, $USERS) AS i;
ANALYZE users;
SQL
    psql -Atc "SELECT id FROM users ORDER BY md5(id::text)" -d "$DB_NAME" >"$RESULTS/ids.txt"
    TARGET="http://127.0.0.1:$PORT"
else
    # An external stack: its database may not be reachable from here, so ids come from the API.
    log "collecting ids from $BENCH_URL (creating up to $HOT_IDS users if it has fewer)"
    python3 bench/ids.py "$BENCH_URL" "$USERS" "$HOT_IDS" >"$RESULTS/ids.txt"
    TARGET="$BENCH_URL"
fi
[[ -s "$RESULTS/ids.txt" ]] || die "no user ids to read"
head -n "$HOT_IDS" "$RESULTS/ids.txt" | sed "s|^|$TARGET/v1/users/|" >"$RESULTS/urls_hot.txt"
sed "s|^|$TARGET/v1/users/|" "$RESULTS/ids.txt" >"$RESULTS/urls_all.txt"
rm -f "$RESULTS/ids.txt"

# --- scenarios ---------------------------------------------------------------------------------

wanted() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# oha with the run's duration and connections; the JSON goes to $RESULTS/<name>.json.
# -w lets requests in flight at the deadline finish, so they are not counted as errors.
# oha catches Ctrl-C and exits normally, and bash then skips its own INT trap for a foreground
# command; so oha runs in the background and the shell waits for it, which Ctrl-C interrupts.
oha_run() {
    local name="$1" pid status=0
    shift
    oha --no-tui --output-format json -z "${DURATION}s" -w "$@" >"$RESULTS/$name.json" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    forget "$pid"
    return "$status"
}

forget() {
    local kept=() other
    for other in "${PIDS[@]}"; do [[ "$other" == "$1" ]] || kept+=("$other"); done
    PIDS=("${kept[@]}")
}

run_scenario() {
    local name="$1"
    shift
    log "$name: ${DURATION}s at $CONNECTIONS connections"
    account_start
    oha_run "$name" -c "$CONNECTIONS" "$@"
    account_stop "$name"
}

CREATE_ARGS=(-m POST -H 'Content-Type: application/json' -d '{"name":"Bench Created"}')

# mixed: oha sends one method per run, so reads and writes are two oha processes at once, the
# connections split 9:1. The request mix that results is reported as measured.
run_mixed() {
    local read_connections write_connections read_pid write_pid
    write_connections=$(( (CONNECTIONS + 5) / 10 ))
    ((write_connections >= 1)) || write_connections=1
    read_connections=$((CONNECTIONS - write_connections))
    log "mixed: ${DURATION}s, reads on $read_connections connections + writes on $write_connections at once"
    account_start
    oha --no-tui --output-format json -z "${DURATION}s" -w -c "$read_connections" \
        --urls-from-file "$RESULTS/urls_hot.txt" >"$RESULTS/mixed_reads.json" &
    read_pid=$!
    PIDS+=("$read_pid")
    oha --no-tui --output-format json -z "${DURATION}s" -w -c "$write_connections" \
        "${CREATE_ARGS[@]}" "$TARGET/v1/users" >"$RESULTS/mixed_writes.json" &
    write_pid=$!
    PIDS+=("$write_pid")
    local status=0
    wait "$read_pid" || status=$?
    wait "$write_pid" || status=$?
    account_stop mixed
    forget "$read_pid"
    forget "$write_pid"
    return "$status"
}

# Reads every hot id once so get_hot measures a warm cache.
warm_cache() {
    local url misses=0
    while read -r url; do
        curl -fsS -o /dev/null "$url" || misses=$((misses + 1))
    done <"$RESULTS/urls_hot.txt"
    local hits
    hits=$(while read -r url; do curl -fsS -D - -o /dev/null "$url"; done <"$RESULTS/urls_hot.txt" | grep -ci '^x-cache: HIT' || true)
    echo "cache_warm_hits=$hits/$HOT_IDS" >>"$RESULTS/meta.env"
    ((misses == 0)) || log "warning: $misses hot ids did not answer 2xx"
}

start_service() {
    local name="$1" port="$2" ttl="$3"
    start_bg "$SERVICE_LOG" env API_PORT="$port" DB_NAME="$DB_NAME" CACHE_KEY_PREFIX="$CACHE_PREFIX" \
        CACHE_TTL_SECONDS="$ttl" LOG_LEVEL=info "$BIN"
    wait_http "http://127.0.0.1:$port/ready" || die "the $name service did not become ready on port $port"
}

if [[ -z "$BENCH_URL" ]]; then
    # Physical limits first, with nothing else of ours running.
    log "limit: redis-benchmark -t get at $CONNECTIONS connections"
    redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -t get -c "$CONNECTIONS" \
        -n "$((DURATION * 60000))" --csv >"$RESULTS/limit_redis.csv" 2>>"$RESULTS/stderr.log"
    # pgbench gets a copy of the seeded database (users and all) plus its own scale-1 tables.
    createdb -T "$DB_NAME" "$PGBENCH_DB"
    CREATED_DBS+=("$PGBENCH_DB")
    pgbench -i -s 1 -q "$PGBENCH_DB" >/dev/null 2>&1
    PGBENCH=(pgbench -M prepared -c "$PG_CLIENTS" -j "$(nproc)" -T "$DURATION")
    log "limit: pgbench -S -M prepared, scale 1, $PG_CLIENTS clients, ${DURATION}s"
    "${PGBENCH[@]}" -S "$PGBENCH_DB" >"$RESULTS/limit_pgbench.txt" 2>>"$RESULTS/stderr.log"
    log "limit: pgbench, the list query, $PG_CLIENTS clients, ${DURATION}s"
    "${PGBENCH[@]}" -n -f bench/pgbench_list.sql "$PGBENCH_DB" >"$RESULTS/limit_pgbench_list.txt" 2>>"$RESULTS/stderr.log"
    log "limit: pgbench, the insert, $PG_CLIENTS clients, ${DURATION}s"
    "${PGBENCH[@]}" -n -f bench/pgbench_insert.sql "$PGBENCH_DB" >"$RESULTS/limit_pgbench_insert.txt" 2>>"$RESULTS/stderr.log"
    dropdb --force "$PGBENCH_DB"

    ACCOUNT_REDIS="$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server | awk -F: '/^process_id/ { print $2 }' | tr -d '\r')"
    [[ -r "/proc/${ACCOUNT_REDIS:-0}/stat" ]] || ACCOUNT_REDIS=""
    start_service cached "$PORT" 300
    SERVICE_PID="$STARTED"
    ACCOUNT_SERVICE="$SERVICE_PID"
    sleep 1
    echo "idle_rss_kib=$(mem_kib "$SERVICE_PID" VmRSS)" >>"$RESULTS/meta.env"

    if wanted health; then
        log "bare_hyper: the ceiling"
        start_bg /dev/null env BARE_PORT="$((PORT + 2))" "$BARE_BIN"
        BARE_PID="$STARTED"
        wait_http "http://127.0.0.1:$((PORT + 2))/health" || die "bare_hyper did not start"
        ACCOUNT_SERVICE="$BARE_PID"
        run_scenario bare_hyper "http://127.0.0.1:$((PORT + 2))/health"
        ACCOUNT_SERVICE="$SERVICE_PID"
        stop_bg "$BARE_PID"
        run_scenario health "$TARGET/health"
    fi
    if wanted get_hot; then
        warm_cache
        run_scenario get_hot --urls-from-file "$RESULTS/urls_hot.txt"
    fi
    wanted list && run_scenario list "$TARGET/v1/users?limit=20"
    if wanted get_cold; then
        # A second instance with the cache off; the cached one idles meanwhile.
        start_service "cache-off" "$((PORT + 1))" 0
        COLD_PID="$STARTED"
        sed "s|$TARGET|http://127.0.0.1:$((PORT + 1))|" "$RESULTS/urls_all.txt" >"$RESULTS/urls_cold.txt"
        ACCOUNT_SERVICE="$COLD_PID"
        run_scenario get_cold --urls-from-file "$RESULTS/urls_cold.txt"
        ACCOUNT_SERVICE="$SERVICE_PID"
        echo "cold_peak_rss_kib=$(mem_kib "$COLD_PID" VmHWM)" >>"$RESULTS/meta.env"
        stop_bg "$COLD_PID"
    fi
    wanted create && run_scenario create "${CREATE_ARGS[@]}" "$TARGET/v1/users"
    wanted mixed && run_mixed
    echo "end_rss_kib=$(mem_kib "$SERVICE_PID" VmRSS)" >>"$RESULTS/meta.env"
    echo "peak_rss_kib=$(mem_kib "$SERVICE_PID" VmHWM)" >>"$RESULTS/meta.env"
    stop_bg "$SERVICE_PID"
else
    if [[ -n "${BENCH_PID:-}" ]]; then
        echo "idle_rss_kib=$(mem_kib "$BENCH_PID" VmRSS)" >>"$RESULTS/meta.env"
        ACCOUNT_SERVICE="$BENCH_PID"
    fi
    wanted health && run_scenario health "$TARGET/health"
    if wanted get_hot; then
        warm_cache
        run_scenario get_hot --urls-from-file "$RESULTS/urls_hot.txt"
    fi
    wanted list && run_scenario list "$TARGET/v1/users?limit=20"
    if wanted get_cold; then
        if [[ -n "$COLD_URL" ]]; then
            sed "s|$TARGET|$COLD_URL|" "$RESULTS/urls_all.txt" >"$RESULTS/urls_cold.txt"
            run_scenario get_cold --urls-from-file "$RESULTS/urls_cold.txt"
        else
            log "get_cold skipped: it needs an instance with the cache off (BENCH_COLD_URL)"
        fi
    fi
    wanted create && run_scenario create "${CREATE_ARGS[@]}" "$TARGET/v1/users"
    wanted mixed && run_mixed
    if [[ -n "${BENCH_PID:-}" ]]; then
        echo "peak_rss_kib=$(mem_kib "$BENCH_PID" VmHWM)" >>"$RESULTS/meta.env"
    fi
fi
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/meta.env"
rm -f "$RESULTS/.times"
busiest >"$RESULTS/ps_after.txt"

python3 bench/report.py "$RESULTS"
