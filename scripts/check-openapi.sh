#!/usr/bin/env bash
# Validate openapi.yaml: OpenAPI 3.1 structure (openapi-spec-validator), then the project's own
# rules for the document and that schemathesis loads it (tools/openapi_rules.py, which says what
# the rules are). Exit 0 when the spec is sound, 1 when not.
#
#   scripts/check-openapi.sh            OPENAPI_SPEC=path names another document
#
# The tools come from the project's virtualenv (scripts/python.sh, tools/requirements.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

spec="${OPENAPI_SPEC:-openapi.yaml}"
say() { printf 'check-openapi: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

case "${1:-}" in
    "") ;;
    -h | --help)
        sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac
[[ -f "$spec" ]] || die "missing $spec"
bin="$(scripts/python.sh --bin)" || die "the Python tools did not install"
say "$("$bin/st" --version), $("$bin/openapi-spec-validator" --version 2>&1 | head -n1)"

# 1. The document is valid OpenAPI 3.1.
"$bin/openapi-spec-validator" --schema 3.1 --validation-errors all "$spec" \
    || die "openapi-spec-validator rejected $spec"

# 2. The project's own rules, and schemathesis loads it.
scripts/python.sh python tools/openapi_rules.py "$spec"
