#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/k8s (called by `make test`; runs alone too):
#   1. render the base and every overlay with `kubectl kustomize` (or `kustomize build`);
#      with neither installed, fall back to the base's plain files, and say so loudly
#   2. kubernetes-validate --strict (unknown fields fail) against pinned Kubernetes versions
#   3. checkov's Kubernetes checks; a skip needs a reason in a checkov.io/skipN annotation
#   4. pytest tests/k8s: what the schema cannot see (ports, probes, uid vs Dockerfile,
#      `migrate up`, placeholder-only secrets, grace periods, connection budget, docs)
# Exits non-zero on any failure. The pip tools come from the project's virtualenv
# (scripts/python.sh, tools/requirements.txt); tools/k8s_checks.py reads what they print.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
K8S=deploy/k8s

# Kubernetes versions the schemas are checked against:
#   1.30 - the oldest this deployment supports: the preStop `sleep` action (the image has
#          no shell, so no exec `sleep`) is beta and on by default from 1.30 (GA in 1.34);
#          a 1.29-or-older schema rejects the field.
#   1.37 - the newest schema the pinned kubernetes-validate ships, to catch removed fields.
K8S_VERSIONS=(1.30.0 1.37.0)

started=$SECONDS
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ncheck-k8s: FAILED: %s\n' "$*" >&2; exit 1; }
banner() {
  printf '\n%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
  printf '!!! %s\n' "$@" >&2
  printf '%s\n\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
}

# ------------------------------------------------------------------------------ tools
VENV_BIN=$(scripts/python.sh --bin) || fail "the Python tools did not install"
VENV=$(dirname "$VENV_BIN")
step "tools"
"$VENV/bin/python" tools/k8s_checks.py versions

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
  "$VENV/bin/python" tools/k8s_checks.py render-base "$K8S/base" "$OUT/base.yaml"
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
  "$VENV/bin/python" tools/k8s_checks.py checkov "$r" "$OUT/lint/$r.json" "$rc" \
    || { cat "$OUT/lint/$r.err" >&2; fail "checkov on $r"; }
done

# ------------------------------------------------------------------------------ tests
step "pytest tests/k8s"
if ((fallback)); then
  banner "fallback: the pytest cases for overlays are skipped (nothing can render them)."
fi
"$VENV/bin/python" -m pytest tests/k8s -q -p no:cacheprovider -rs || fail "pytest tests/k8s"

printf '\ncheck-k8s: OK (%ss)\n' "$((SECONDS - started))"
