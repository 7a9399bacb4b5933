#!/usr/bin/env bash
# The project's own tooling, checked like its code (the first suite of `make test`; `make lint`
# runs it too):
#   1. shellcheck on every script: scripts/* and .ci/run; none in scripts/ over 150 lines (what
#      outgrows that is a program: a Python tool in tools/ with tests, or Rust)
#   2. ruff check on every Python file of the repository (ruff.toml, tests/containers/ruff.toml),
#      and ruff format --check on tools/ and tests/tools
#   3. pytest tests/tools: the pure parts of the Python tools in tools/
#   4. tools/import_graph.py: the crate's modules import one another one way only (no cycle)
# The tools come from the project's virtualenv (scripts/python.sh, tools/requirements.txt).
# Exits non-zero if any check fails (all checks run either way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="$(scripts/python.sh --bin)" || { echo "check-tooling: the Python tools did not install" >&2; exit 1; }
export PATH="$bin:$PATH"

failed=0
check() {
    echo "==> $*"
    "$@" || { echo "check-tooling: FAILED: $*" >&2; failed=1; }
}

shell_scripts=(scripts/*)
check shellcheck "${shell_scripts[@]}" .ci/run
short() {
    local file too_long=0
    for file in "$@"; do
        (($(wc -l <"$file") <= 150)) || { echo "$file: $(wc -l <"$file") lines, over 150" >&2; too_long=1; }
    done
    ((too_long == 0))
}
check short "${shell_scripts[@]}"
check ruff check --quiet .
check ruff format --check --quiet tools tests/tools
check pytest -q -p no:cacheprovider tests/tools
check python tools/import_graph.py src

if ((failed)); then
    exit 1
fi
echo "check-tooling: ${#shell_scripts[@]} scripts and .ci/run shellcheck-clean, Python ruff-clean, tests/tools pass, no import cycle in src/"
