#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/k8s (called by `make test`; runs alone too):
#   1. render the base and every overlay with `kubectl kustomize` (or `kustomize build`);
#      with neither installed, fall back to the base's plain files, and say so loudly
#   2. kubernetes-validate --strict (unknown fields fail) against pinned Kubernetes versions
#   3. checkov's Kubernetes checks; a skip needs a reason in a checkov.io/skipN annotation
#   4. pytest tests/k8s: what the schema cannot see (ports, probes, uid vs Dockerfile,
#      `migrate up`, placeholder-only secrets, grace periods, connection budget, docs)
# Exits non-zero on any failure. The pip tools (tools/requirements-k8s.txt) go into
# their own virtualenv outside the work tree, installed when missing or when that
# file changes: $GRAVITY_K8S_VENV, default ~/.cache/gravity-bff/k8s-tools.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REQ=tools/requirements-k8s.txt
K8S=deploy/k8s

# Kubernetes versions the schemas are checked against:
#   1.30 - the oldest this deployment supports: the preStop `sleep` action (the image has
#          no shell, so no exec `sleep`) is beta and on by default from 1.30 (GA in 1.34);
#          a 1.29-or-older schema rejects the field.
#   1.37 - the newest schema the pinned kubernetes-validate ships, to catch removed fields.
K8S_VERSIONS=(1.30.0 1.37.0)

VENV=${GRAVITY_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gravity-bff/k8s-tools}
PYTHON=${PYTHON:-python3}

started=$SECONDS
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ncheck-k8s: FAILED: %s\n' "$*" >&2; exit 1; }
banner() {
  printf '\n%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
  printf '!!! %s\n' "$@" >&2
  printf '%s\n\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
}

# ------------------------------------------------------------------------------ tools
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (Python >= 3.9 is needed for the check tools)"
want=$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$REQ")
have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
if [[ ! -x $VENV/bin/python || $want != "$have" ]]; then
  step "installing the check tools from $REQ into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create a virtualenv at $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" \
    || fail "pip could not install $REQ (no access to PyPI?)"
  echo "$want" >"$VENV/.requirements.sha256"
fi
step "tools"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m, platform
print(f"  python {platform.python_version()}: " + ", ".join(
    f"{p} {m.version(p)}" for p in ("kubernetes-validate", "checkov", "pytest", "PyYAML")))
EOF

OUT=$(mktemp -d "${TMPDIR:-/tmp}/check-k8s.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

# ------------------------------------------------------------------------------ render
# Each rendering lands in $OUT/<name>.yaml; $OUT/lint/<name>/ holds what checkov scans.
step "render"
render=()
if command -v kubectl >/dev/null; then
  render=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
  render=(kustomize build)
fi

renders=()
if ((${#render[@]})); then
  for dir in "$K8S/base" "$K8S"/overlays/*/; do
    dir=${dir%/}
    [[ -f $dir/kustomization.yaml ]] || continue
    name=$(basename "$dir")
    [[ $dir == "$K8S/base" ]] || name="overlay-$name"
    "${render[@]}" "$dir" >"$OUT/$name.yaml" || fail "${render[*]} $dir"
    printf '  %-24s %s objects (%s %s)\n' "$name" "$(grep -c '^kind:' "$OUT/$name.yaml")" "${render[*]}" "$dir"
    renders+=("$name")
  done
  fallback=0
else
  banner "neither kubectl nor kustomize is installed: the overlays CANNOT be rendered." \
    "Falling back to validating and linting the base's plain files as they are;" \
    "the overlays' patches, namespace and image are NOT checked." \
    "Install kubectl (it has kustomize built in) for the full check."
  # The base uses no generators or patches, so its listed files are its rendering.
  "$VENV/bin/python" - "$K8S/base" "$OUT/base.yaml" <<'EOF'
import sys, pathlib, yaml
base = pathlib.Path(sys.argv[1])
files = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
pathlib.Path(sys.argv[2]).write_text("\n---\n".join((base / f).read_text() for f in files))
print(f"  base (plain files)        {', '.join(files)}")
EOF
  renders=(base)
  fallback=1
fi

# ------------------------------------------------------------------------------ schema
step "kubernetes-validate --strict against Kubernetes ${K8S_VERSIONS[*]}"
targets=()
for r in "${renders[@]}"; do targets+=("$OUT/$r.yaml"); done
targets+=("$K8S/base/secret.example.yaml")
for v in "${K8S_VERSIONS[@]}"; do
  if ! log=$("$VENV/bin/kubernetes-validate" --strict -k "$v" "${targets[@]}" 2>&1); then
    printf '%s\n' "$log" | grep -v '^INFO' >&2 || true
    fail "kubernetes-validate --strict -k $v"
  fi
  printf '  %s: %s objects valid\n' "$v" "$(printf '%s\n' "$log" | grep -c 'passed for resource')"
done

# ------------------------------------------------------------------------------ lint
# checkov sees what `kubectl apply` would send: the overlays' renderings (the base alone
# has no namespace, so CKV_K8S_21 "default namespace" would fire on it by design), plus the
# example Secret. Each overlay is linted on its own so its objects don't mix with another's.
step "checkov --framework kubernetes"
lint=()
skip_args=()
if ((fallback)); then
  lint=(base)
  skip_args=(--skip-check CKV_K8S_21)
  banner "fallback: skipping CKV_K8S_21 (default namespace) - the namespace is set by an" \
    "overlay, which could not be rendered without kubectl/kustomize."
else
  for r in "${renders[@]}"; do [[ $r == overlay-* ]] && lint+=("$r"); done
  ((${#lint[@]})) || fail "no overlay under $K8S/overlays to lint"
fi
for r in "${lint[@]}"; do
  mkdir -p "$OUT/lint/$r"
  cp "$OUT/$r.yaml" "$OUT/lint/$r/rendered.yaml"
  cp "$K8S/base/secret.example.yaml" "$OUT/lint/$r/"
  rc=0
  "$VENV/bin/checkov" --directory "$OUT/lint/$r" --framework kubernetes --skip-download \
    --output json ${skip_args[@]+"${skip_args[@]}"} >"$OUT/lint/$r.json" 2>"$OUT/lint/$r.err" || rc=$?
  "$VENV/bin/python" - "$r" "$OUT/lint/$r.json" "$rc" <<'EOF' || { cat "$OUT/lint/$r.err" >&2; fail "checkov on $r"; }
import json, sys
name, path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(path).read().strip()
if not raw:
    sys.exit(f"  {name}: checkov printed nothing (exit {rc})")
data = json.loads(raw)
if isinstance(data, list):
    data = next(d for d in data if d.get("check_type") == "kubernetes")
res, summ = data.get("results", {}), data["summary"]
if not summ.get("resource_count"):
    sys.exit(f"  {name}: checkov found no Kubernetes resources to check")
ok = True
for c in res.get("failed_checks", []):
    ok = False
    print(f"  FAILED {c['check_id']} {c['check_name']}\n         {c['resource']}  ({c['file_path']}:{c['file_line_range']})")
for c in res.get("skipped_checks", []):
    why = (c.get("check_result") or {}).get("suppress_comment") or ""
    if not why.strip() or why == "No comment provided":
        ok = False
        print(f"  SKIPPED WITHOUT A REASON {c['check_id']} on {c['resource']}")
    else:
        print(f"  skipped {c['check_id']} on {c['resource']}: {why}")
for e in res.get("parsing_errors", []):
    ok = False
    print(f"  PARSE ERROR {e}")
ids = sorted({c["check_id"] for c in res.get("passed_checks", [])}, key=lambda s: (len(s), s))
print(f"  {name}: {summ['resource_count']} resources; passed {summ['passed']}, failed {summ['failed']}, "
      f"skipped {summ['skipped']} (checkov {summ.get('checkov_version', '?')})")
print(f"  checks that passed: {' '.join(ids)}")
if rc != 0 and ok:
    ok = False
    print(f"  checkov exited {rc}")
sys.exit(0 if ok else 1)
EOF
done

# ------------------------------------------------------------------------------ tests
step "pytest tests/k8s"
if ((fallback)); then
  banner "fallback: the pytest cases for overlays are skipped (nothing can render them)."
fi
"$VENV/bin/python" -m pytest tests/k8s -q -p no:cacheprovider -rs || fail "pytest tests/k8s"

printf '\ncheck-k8s: OK (%ss)\n' "$((SECONDS - started))"
