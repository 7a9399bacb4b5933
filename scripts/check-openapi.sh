#!/usr/bin/env bash
# Validate openapi.yaml: OpenAPI 3.1 structure (openapi-spec-validator), the project's own rules
# for the document (below), and that schemathesis can load it.
#
#   scripts/check-openapi.sh              validate; exit 0 when the spec is sound, 1 when not
#   scripts/check-openapi.sh --print-bin  only install the tools, then print their bin directory
#                                         (where `st`, schemathesis's CLI, lives)
#
# The tools pinned in tools/requirements-openapi.txt are installed, when missing or when the pins
# change, into a private virtualenv outside the work tree:
#   $OPENAPI_TOOLS_VENV (default: ${XDG_CACHE_HOME:-$HOME/.cache}/gravity-bff/openapi-tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEC="${OPENAPI_SPEC:-$ROOT/openapi.yaml}"
REQS="$ROOT/tools/requirements-openapi.txt"
VENV="${OPENAPI_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gravity-bff/openapi-tools}"
PYTHON="${PYTHON:-python3}"

say() { printf 'check-openapi: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

print_bin=0
case "${1:-}" in
  "") ;;
  --print-bin) print_bin=1 ;;
  -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

[[ -f "$REQS" ]] || die "missing $REQS"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"

# --- install the pinned tools when missing ------------------------------------------------------
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [[ ! -x "$VENV/bin/python" || ! -x "$VENV/bin/st" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  say "installing the tools of ${REQS#"$ROOT"/} into $VENV"
  if [[ -e "$VENV" ]]; then
    # Only ever remove a virtualenv (one this script made), never whatever else the variable names.
    [[ -f "$VENV/pyvenv.cfg" ]] || die "$VENV exists and is not a virtualenv; set OPENAPI_TOOLS_VENV elsewhere"
    rm -rf "$VENV"
  fi
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv with $PYTHON -m venv"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" \
    || die "pip could not install ${REQS#"$ROOT"/}"
  printf '%s\n' "$want" >"$stamp"
fi

if [[ $print_bin == 1 ]]; then
  printf '%s\n' "$VENV/bin"
  exit 0
fi

[[ -f "$SPEC" ]] || die "missing $SPEC"
say "$("$VENV/bin/st" --version), $("$VENV/bin/openapi-spec-validator" --version 2>&1 | head -n1)"

# --- 1. the document is valid OpenAPI 3.1 -------------------------------------------------------
"$VENV/bin/openapi-spec-validator" --schema 3.1 --validation-errors all "$SPEC" \
  || die "openapi-spec-validator rejected ${SPEC#"$ROOT"/}"

# --- 2. the project's own rules, and schemathesis loads it --------------------------------------
"$VENV/bin/python" - "$SPEC" <<'PY'
import json
import re
import sys

import jsonschema
import jsonschema_rs
import referencing
import referencing.jsonschema
import schemathesis
import yaml

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    doc = yaml.safe_load(f)

problems = []


def fail(msg):
    problems.append(msg)


METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")
BOOL_KEYS = {"required", "additionalProperties", "unevaluatedProperties", "deprecated",
             "explode", "allowReserved", "allowEmptyValue", "uniqueItems", "nullable"}

# The served /openapi.json is this file converted: it must be plain JSON data. YAML 1.1 readers turn
# unquoted on/off/yes/no into booleans and timestamps into dates; catch either before a client does.
try:
    json.dumps(doc, allow_nan=False)
except (TypeError, ValueError) as exc:
    fail(f"not convertible to JSON: {exc}")


def walk(node, where, key=None):
    if isinstance(node, bool) and key not in BOOL_KEYS:
        fail(f"{where}: boolean {node!r} where text was probably meant (quote it)")
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, f"{where}/{k}", k)
            if k == "pattern" and isinstance(v, str):
                try:
                    re.compile(v)
                    jsonschema_rs.validator_for({"pattern": v})
                except Exception as exc:  # noqa: BLE001
                    fail(f"{where}/pattern: does not compile in both Python and Rust regex: {exc}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, f"{where}/{i}")


walk(doc, "#")

if doc.get("openapi") != "3.1.0":
    fail(f"openapi must be '3.1.0', not {doc.get('openapi')!r}")


def deref(node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            fail(f"external $ref {ref!r}")
            return {}
        target = doc
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        node = target
        seen += 1
        if seen > 20:
            fail(f"$ref loop at {ref}")
            return {}
    return node


# Operations, ids, required responses and headers.
operations = {}  # operationId -> (method, path, operation, path item)
for p, item in (doc.get("paths") or {}).items():
    for method in METHODS:
        op = item.get(method)
        if op is None:
            continue
        where = f"{method.upper()} {p}"
        oid = op.get("operationId")
        if not oid:
            fail(f"{where}: no operationId")
        elif oid in operations:
            fail(f"{where}: operationId {oid!r} also used by {operations[oid][0].upper()} {operations[oid][1]}")
        else:
            operations[oid] = (method, p, op, item)
        responses = op.get("responses") or {}
        for code in ("500", "503"):
            if code not in responses:
                fail(f"{where}: does not document {code} (any route may answer it)")
        if "requestBody" in op:
            for code in ("400", "413", "415", "422"):
                if code not in responses:
                    fail(f"{where}: takes a body but does not document {code}")
        params = [deref(x) for x in (item.get("parameters") or []) + (op.get("parameters") or [])]
        names = {(x.get("in"), x.get("name")) for x in params}
        if ("path", "id") in names:
            for code in ("400", "404"):
                if code not in responses:
                    fail(f"{where}: has a path id but does not document {code}")
        if any(loc == "query" for loc, _ in names) and "400" not in responses:
            fail(f"{where}: has query parameters but does not document 400")
        if ("header", "X-Request-Id") not in names:
            fail(f"{where}: does not take the X-Request-Id request header")
        for code, resp in responses.items():
            r = deref(resp)
            hdr = deref((r.get("headers") or {}).get("X-Request-Id", {}))
            if hdr.get("required") is not True:
                fail(f"{where} {code}: no required X-Request-Id response header")
            if code == "503" and "Retry-After" not in (r.get("headers") or {}):
                fail(f"{where} 503: no Retry-After header")
            if method == "head" and r.get("content"):
                fail(f"{where} {code}: a HEAD response has no body")
            if method != "head" and code not in ("204",) and not r.get("content"):
                fail(f"{where} {code}: documents no body")
            for media in (r.get("content") or {}):
                if code.startswith(("4", "5")) and media != "application/problem+json":
                    fail(f"{where} {code}: errors are application/problem+json, not {media}")
    if "get" in item and "head" not in item:
        fail(f"{p}: GET without the HEAD operation every GET route answers")

# Links point at real operations and at their parameters.
for oid, (method, p, op, item) in operations.items():
    for code, resp in (op.get("responses") or {}).items():
        for name, link in (deref(resp).get("links") or {}).items():
            link = deref(link)
            where = f"{method.upper()} {p} {code} link {name}"
            target = operations.get(link.get("operationId"))
            if target is None:
                fail(f"{where}: unknown operationId {link.get('operationId')!r}")
                continue
            t_params = [deref(x) for x in (target[3].get("parameters") or []) + (target[2].get("parameters") or [])]
            t_names = {x.get("name") for x in t_params}
            for pname, expr in (link.get("parameters") or {}).items():
                if pname.split(".")[-1] not in t_names:
                    fail(f"{where}: {target[1]} has no parameter {pname!r}")
                if not isinstance(expr, str) or not expr.startswith("$"):
                    fail(f"{where}: parameter {pname!r} is not a runtime expression")

# Examples agree with their schemas (formats checked too).
registry = referencing.Registry().with_resource(
    "urn:gravity-openapi", referencing.jsonschema.DRAFT202012.create_resource(doc)
)


def check_example(pointer, value, where):
    validator = jsonschema.Draft202012Validator(
        {"$ref": "urn:gravity-openapi#" + pointer},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    for err in validator.iter_errors(value):
        fail(f"{where}: example does not match its schema: {err.message}")


def collect_examples(node, pointer):
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict):
            # A parameter, header or media type: `example` and `examples/*/value` follow `schema`.
            values = [node["example"]] if "example" in node else []
            values += [deref(ex)["value"] for ex in (node.get("examples") or {}).values() if "value" in deref(ex)]
            for i, value in enumerate(values):
                check_example(pointer + "/schema", value, f"#{pointer} example {i}")
        if pointer.startswith("/components/schemas/") and pointer.count("/") == 3:
            for i, value in enumerate(node.get("examples") or []):
                check_example(pointer, value, f"#{pointer}/examples/{i}")
        for k, v in node.items():
            collect_examples(v, f"{pointer}/{k.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            collect_examples(v, f"{pointer}/{i}")


collect_examples(doc, "")

# schemathesis reads every operation.
try:
    schema = schemathesis.openapi.from_dict(doc)
    loaded = []
    for result in schema.get_all_operations():
        loaded.append(result.ok().label)
    if len(loaded) != len(operations):
        fail(f"schemathesis loaded {len(loaded)} operations, the document has {len(operations)}")
except Exception as exc:  # noqa: BLE001
    fail(f"schemathesis could not load the document: {exc}")

if problems:
    for msg in problems:
        print(f"check-openapi: {msg}", file=sys.stderr)
    print(f"check-openapi: {len(problems)} problem(s) in {path}", file=sys.stderr)
    sys.exit(1)
print(f"check-openapi: {path}: valid OpenAPI 3.1, {len(operations)} operations, project rules hold")
PY
