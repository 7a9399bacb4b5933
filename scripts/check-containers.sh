#!/usr/bin/env bash
# Checks the container system without a Docker engine, and says what it checked:
#   1. hadolint on the Dockerfile (rules and the one justified exception in .hadolint.yaml)
#   2. shellcheck on the container scripts, ruff on tests/containers
#   3. each compose file against the Compose Specification's JSON Schema, alone, and
#      docker-compose.yml + docker-compose.dev.yml merged and interpolated as compose would
#   4. `docker compose config` on the same files, where Compose v2 is installed (skipped otherwise)
#   5. pytest tests/containers: what the schema cannot see (dependency conditions, exec-form
#      healthchecks, published ports, hardening, Dockerfile stages, .env.example, .dockerignore,
#      scripts/compose.sh, the Makefile's docker targets)
# Installs its pinned Python tools from tools/requirements-containers.txt when they are missing.
# Exits non-zero if any check fails (all checks run either way).
# The schema is ../shared/compose-spec.json beside the repo when present (CI), else the vendored
# tools/compose-spec.json; COMPOSE_SPEC=path overrides both.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
requirements="tools/requirements-containers.txt"
python="${PYTHON:-python3}"

# --- tools -------------------------------------------------------------------------------------
requirements_met() {
    "$python" - "$requirements" <<'PY'
import re, sys
from importlib import metadata
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PY
}

if ! requirements_met; then
    echo "==> installing the pinned tools from $requirements"
    if ! "$python" -m pip install -q --disable-pip-version-check -r "$requirements"; then
        # An "externally managed" system Python (PEP 668) refuses pip; use a private venv instead.
        venv="${XDG_CACHE_HOME:-$HOME/.cache}/gravity-bff/containers-venv"
        echo "==> pip refused; installing into the virtual environment $venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
        python="$venv/bin/python"
    fi
    requirements_met || { echo "check-containers: the tools in $requirements did not install" >&2; exit 1; }
fi
# pip puts hadolint, shellcheck and check-jsonschema in the interpreter's scripts directory (or
# the user's, for a --user install), which need not be on PATH.
scripts_dirs="$("$python" -c 'import os, sysconfig; print(sysconfig.get_path("scripts") + os.pathsep + sysconfig.get_path("scripts", f"{os.name}_user"))')"
export PATH="$scripts_dirs:$PATH"

spec="${COMPOSE_SPEC:-}"
if [[ -z "$spec" ]]; then
    spec="$(git rev-parse --show-toplevel 2>/dev/null || echo "$repo")/../shared/compose-spec.json"
    [[ -f "$spec" ]] || spec="tools/compose-spec.json"
fi
export COMPOSE_SPEC="$spec"

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

check "shellcheck: scripts/compose.sh scripts/check-containers.sh scripts/chroot-smoke.sh" \
    shellcheck scripts/compose.sh scripts/check-containers.sh scripts/chroot-smoke.sh

check "ruff: tests/containers lint and format (tests/containers/ruff.toml)" \
    bash -c 'ruff check --quiet tests/containers && ruff format --check --quiet tests/containers'

for file in docker-compose.yml docker-compose.dev.yml docker-compose.test.yml; do
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
