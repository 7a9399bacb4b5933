#!/usr/bin/env bash
# Checks the container system without a Docker engine, and says what it checked:
#   1. hadolint on the Dockerfile (rules and the one justified exception in .hadolint.yaml)
#   2. shellcheck on the container scripts, ruff on tests/containers
#   3. each compose file against the Compose Specification's JSON Schema, alone, and
#      docker-compose.yml + docker-compose.dev.yml merged and interpolated as compose would
#   4. `docker compose config` on the same files, where Compose v2 is installed (skipped otherwise)
#   5. the fleet's files: `haproxy -c` on deploy/haproxy/haproxy.cfg; the Swarm stack file against
#      the same schema, and `docker stack config` where the docker CLI has it; promtool's
#      `check config` on both Prometheus configurations, `check rules` and `test rules` on the
#      alerts. haproxy and promtool run from the PATH, else from their images (haproxy:2.6,
#      prom/prometheus:v2.42.0) when a Docker engine answers; with neither, the check fails and
#      says how to get one
#   6. pytest tests/containers: what the schema cannot see (dependency conditions, exec-form
#      healthchecks, published ports, hardening, Dockerfile stages, .env.example, .dockerignore,
#      scripts/compose.sh, the Makefile's docker targets, the load balancer's and the Swarm
#      stack's settings)
# The Python tools come from the project's virtualenv (scripts/python.sh, tools/requirements.txt).
# Exits non-zero if any check fails (all checks run either way).
# The schema is the vendored tools/compose-spec.json; COMPOSE_SPEC=path names another.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# --- tools -------------------------------------------------------------------------------------
# hadolint, shellcheck, ruff, check-jsonschema and pytest, from the project's virtualenv.
venv_bin="$(scripts/python.sh --bin)" || { echo "check-containers: the Python tools did not install" >&2; exit 1; }
export PATH="$venv_bin:$PATH"
python="$venv_bin/python"
export COMPOSE_SPEC="${COMPOSE_SPEC:-tools/compose-spec.json}"
spec="$COMPOSE_SPEC"

# --- checks ------------------------------------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
passed=()
failed=()

# Usage: check "what is checked" command args...
check() {
    local description="$1"
    shift
    echo
    echo "==> $description"
    echo "    \$ $*"
    if "$@"; then
        echo "    ok"
        passed+=("$description")
    else
        failed+=("$description")
        echo "    FAILED: $description" >&2
    fi
}

check "hadolint: Dockerfile (config .hadolint.yaml)" \
    hadolint --config .hadolint.yaml Dockerfile

container_scripts=(scripts/compose.sh scripts/check-containers.sh scripts/chroot-smoke.sh scripts/stack.sh scripts/image.sh scripts/dev-watch.sh scripts/test-containers.sh scripts/swarm.sh)
check "shellcheck: ${container_scripts[*]}" shellcheck "${container_scripts[@]}"

check "ruff: tests/containers and tests/containers_e2e lint and format (their ruff.toml)" \
    bash -c 'ruff check --quiet tests/containers tests/containers_e2e && ruff format --check --quiet tests/containers tests/containers_e2e'

for file in docker-compose.yml docker-compose.dev.yml docker-compose.test.yml deploy/swarm/stack.yml; do
    check "compose schema ($spec): $file alone" \
        check-jsonschema --schemafile "$spec" "$file"
done

merge() {
    "$python" tests/containers/compose_model.py --env-file .env.example "$@" >"$work/merged.json" \
        && check-jsonschema --schemafile "$spec" "$work/merged.json"
}
check "compose schema: docker-compose.yml + docker-compose.dev.yml, merged and interpolated from .env.example" \
    merge docker-compose.yml docker-compose.dev.yml

# Compose itself, where it exists (not on the CI machines). Run on copies beside a .env made
# from .env.example, so a developer's own .env (or its absence) does not change the verdict.
compose_config() {
    local copy="$work/compose-config"
    mkdir -p "$copy"
    cp docker-compose.yml docker-compose.dev.yml docker-compose.test.yml Dockerfile "$copy/"
    cp .env.example "$copy/.env"
    (
        cd "$copy"
        docker compose -f docker-compose.yml config --quiet \
            && docker compose -f docker-compose.yml -f docker-compose.dev.yml config --quiet \
            && docker compose -f docker-compose.test.yml config --quiet
    )
}
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    check "docker compose config: each stack, as Compose v2 itself reads it" compose_config
else
    echo
    echo "==> docker compose config: skipped (Compose v2 is not installed; the schema and model checks above stand in)"
fi

# Usage: tool NAME IMAGE PACKAGE ARGS... runs NAME from the PATH, else from IMAGE with $work
# mounted at the same path (ARGS name files there); with neither, says how to get it and fails.
tool() {
    local name="$1" image="$2" package="$3"
    shift 3
    if type -P "$name" >/dev/null; then
        command "$name" "$@"
    elif docker info >/dev/null 2>&1; then
        docker run --rm --user "$(id -u)" -v "$work:$work:ro" --env CORS_ALLOWED_ORIGINS --entrypoint "$name" "$image" "$@"
    else
        echo "    $name is not installed and no Docker engine answers to run $image: install it (Debian, Ubuntu: apt-get install $package) or start Docker" >&2
        return 1
    fi
}
mkdir -p "$work/haproxy" "$work/compose" "$work/swarm"
cp deploy/haproxy/haproxy.cfg "$work/haproxy/"
cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml deploy/prometheus/alerts.test.yml "$work/compose/"
cp deploy/swarm/prometheus.yml deploy/prometheus/alerts.yml "$work/swarm/"
run_promtool() { tool promtool prom/prometheus:v2.42.0 prometheus "$@"; }
# haproxy -c with CORS_ALLOWED_ORIGINS as given ("" unset): the configuration reads it at run time.
haproxy_reads() { (
    if [[ -n "$1" ]]; then export CORS_ALLOWED_ORIGINS="$1"; else unset CORS_ALLOWED_ORIGINS; fi
    tool haproxy haproxy:2.6 haproxy -c -dW -f "$work/haproxy/haproxy.cfg"
); }
check "haproxy -c (warnings fail too): deploy/haproxy/haproxy.cfg" haproxy_reads ""
check "haproxy -c: deploy/haproxy/haproxy.cfg with CORS_ALLOWED_ORIGINS a list of two" \
    haproxy_reads "https://app.example,http://localhost:5173"
check "promtool check config: deploy/prometheus/prometheus.yml and deploy/swarm/prometheus.yml" \
    run_promtool check config "$work/compose/prometheus.yml" "$work/swarm/prometheus.yml"
check "promtool check rules: deploy/prometheus/alerts.yml" run_promtool check rules "$work/compose/alerts.yml"
check "promtool test rules: deploy/prometheus/alerts.test.yml (each alert fires, and stays quiet)" \
    run_promtool test rules "$work/compose/alerts.test.yml"
stack_config() {
    API_IMAGE=gravity-bff:check MIGRATE_IMAGE=gravity-bff:check docker stack config -c deploy/swarm/stack.yml >/dev/null
}
if command -v docker >/dev/null 2>&1 && docker stack config --help >/dev/null 2>&1; then
    check "docker stack config: deploy/swarm/stack.yml, as the docker CLI reads it" stack_config
else
    echo
    echo "==> docker stack config: skipped (this docker CLI has no \`stack config\`; the schema check above stands in)"
fi

pytest_run() {
    "$python" -m pytest -q -p no:cacheprovider tests/containers
}
check "pytest tests/containers: what the schema cannot see" pytest_run

echo
echo "check-containers: ${#passed[@]} checks passed, ${#failed[@]} checks failed"
for description in "${failed[@]}"; do
    echo "  failed: $description" >&2
done
[[ ${#failed[@]} -eq 0 ]]
