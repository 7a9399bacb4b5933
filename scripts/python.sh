#!/usr/bin/env bash
# Runs one of the project's Python tools from the project's one virtualenv, target/venv:
#   scripts/python.sh TOOL [ARGS...]    e.g. scripts/python.sh pytest tests/k8s
#                                            scripts/python.sh python tools/openapi_rules.py openapi.yaml
#   scripts/python.sh --bin             print the virtualenv's bin directory
# The virtualenv is created when missing, and rebuilt from scratch when tools/requirements.txt
# changes (its sha256 is kept in target/venv/.requirements.sha256), never in the global
# interpreter. The first install takes one to two minutes. The tool runs with the virtualenv's bin
# directory first on PATH, so what it starts (hadolint, shellcheck, ...) comes from there too.
# Settings: PYTHON, the interpreter the virtualenv is made with (default python3; CPython 3.11 is
# tested); GRAVITY_VENV, another place for the virtualenv (default target/venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/tools/requirements.txt"
venv="${GRAVITY_VENV:-$root/target/venv}"
python="${PYTHON:-python3}"

die() {
    echo "python.sh: $*" >&2
    exit 1
}

[[ $# -ge 1 ]] || die "usage: scripts/python.sh TOOL [ARGS...] | --bin"
[[ -f "$requirements" ]] || die "missing $requirements"

current() {
    [[ -x "$venv/bin/python" && "$(cat "$venv/.requirements.sha256" 2>/dev/null)" == "$want" ]]
}

install() {
    command -v "$python" >/dev/null || die "$python not found (set PYTHON=...)"
    echo "python.sh: installing tools/requirements.txt into ${venv#"$root"/} (one to two minutes the first time)" >&2
    if [[ -e "$venv" ]]; then
        # Only ever remove a virtualenv, never whatever else GRAVITY_VENV may name.
        [[ -f "$venv/pyvenv.cfg" ]] || die "$venv exists and is not a virtualenv; set GRAVITY_VENV elsewhere"
        rm -rf -- "$venv"
    fi
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" || die "could not create a virtualenv with $python -m venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
        || die "pip could not install tools/requirements.txt (no access to PyPI?)"
    printf '%s\n' "$want" >"$venv/.requirements.sha256"
}

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if ! current; then
    mkdir -p "$(dirname "$venv")"
    # Scripts may start side by side: one installs while the others wait, then find it current
    # (flock is util-linux's; without it, the install simply runs).
    exec 9>"$venv.lock"
    if command -v flock >/dev/null; then flock 9; fi
    current || install
    exec 9>&-
fi

if [[ "$1" == "--bin" ]]; then
    printf '%s\n' "$venv/bin"
    exit 0
fi
tool="$1"
shift
[[ -x "$venv/bin/$tool" ]] || die "no tool '$tool' in ${venv#"$root"/}/bin (is it in tools/requirements.txt?)"
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
exec "$venv/bin/$tool" "$@"
