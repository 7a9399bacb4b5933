"""Helpers for the Kubernetes manifest tests: rendering, lookups, Dockerfile parsing
and the small linters (placeholder secrets, numbers without a reason).

Pure functions over plain dicts/strings, so test_k8slib.py can show that each check
rejects what it is meant to reject.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
BASE_DIR = K8S_DIR / "base"
OVERLAYS_DIR = K8S_DIR / "overlays"
DOCKERFILE = ROOT / "Dockerfile"

SSL_MODES = {"disable", "require", "verify-full"}

# Every environment variable the service reads: the names of the one table of settings in the
# code (src/config/table.rs), read from there so that no list of them is kept here.
# A row there is `required("DB_HOST").means(…)`, `number("DB_POOL_SIZE", …)` and the like.
SERVICE_SETTINGS = set(
    re.findall(
        r'^\s*(?:required|number|port|one_of|text)\(\s*"([A-Z_]+)"',
        (ROOT / "src" / "config" / "table.rs").read_text(),
        re.M,
    )
)
# Found none: the table's syntax changed and this reader must follow it, or every check below
# would compare against nothing.
assert {"API_PORT", "DB_HOST", "REDIS_HOST"} <= SERVICE_SETTINGS, "src/config/table.rs: no settings found"
# Read by the runtime the service is built on, not by its settings (docs/OPERATIONS.md, Tuning).
RUNTIME_SETTINGS = {"TOKIO_WORKER_THREADS"}


# --------------------------------------------------------------------------- rendering


def renderer() -> list[str] | None:
    """The command that renders a kustomization directory, or None when neither
    kubectl nor kustomize is installed."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(directory: Path) -> list[dict[str, Any]]:
    cmd = renderer()
    if cmd is None:
        raise RuntimeError("neither kubectl nor kustomize is installed")
    out = subprocess.run(
        [*cmd, str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kustomization_resources(directory: Path) -> list[Path]:
    """The files a plain (generator- and patch-free) kustomization lists."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [directory / r for r in kust.get("resources", [])]


def load_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for p in paths:
        docs.extend(d for d in yaml.safe_load_all(p.read_text()) if d)
    return docs


# --------------------------------------------------------------------------- lookups


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = [
        d
        for d in docs
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]
    if len(hits) != 1:
        raise AssertionError(
            f"expected exactly one {kind}{' ' + name if name else ''}, found {len(hits)}"
        )
    return hits[0]


def find_all(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def only_container(workload: dict) -> dict:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: expected one container"
    return containers[0]


def resolve_container_port(container: dict, port: int | str) -> int:
    """A probe's / Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def selector_matches(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def label_selector_excludes(obj: dict, key: str, value: str) -> bool:
    """Whether `kubectl -l key!=value` keeps obj (objects without the key are kept)."""
    return obj.get("metadata", {}).get("labels", {}).get(key) != value


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    user: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with comments dropped and backslash continuations joined."""
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        lines.append(buf.strip())
        buf = ""
    if buf.strip():
        lines.append(buf.strip())
    return lines


def _exec_or_shell(arg: str) -> list[str]:
    arg = arg.strip()
    if arg.startswith("["):
        value = json.loads(arg)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value
    return ["/bin/sh", "-c", arg]


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in _logical_lines(text):
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        arg = arg.strip()
        if instr == "FROM":
            words = [w for w in arg.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if not stages or instr in {"ARG"}:
            continue
        st = stages[-1]
        if instr == "USER":
            st.user = arg
        elif instr == "ENTRYPOINT":
            st.entrypoint = _exec_or_shell(arg)
            st.cmd = None  # Docker resets an inherited CMD when ENTRYPOINT is set
        elif instr == "CMD":
            st.cmd = _exec_or_shell(arg)
        elif instr == "EXPOSE":
            st.expose.extend(arg.split())
        elif instr == "ENV":
            if "=" in arg.split()[0]:
                for tok in shlex.split(arg):
                    k, _, v = tok.partition("=")
                    st.env[k] = v
            else:  # legacy `ENV KEY value`
                k, _, v = arg.partition(" ")
                st.env[k] = v.strip()
    return stages


def runtime_stage(stages: list[Stage]) -> Stage:
    """The stage that ships: the one named `runtime`, else the last one."""
    if not stages:
        raise ValueError("no FROM in Dockerfile")
    named = [s for s in stages if s.name == "runtime"]
    return named[-1] if named else stages[-1]


def numeric_user(user: str | None) -> tuple[int, int | None]:
    """uid and gid of a USER value; Kubernetes' runAsNonRoot can only verify numbers."""
    if user is None:
        raise ValueError("the runtime stage sets no USER")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise ValueError(f"USER {user!r} is not numeric uid[:gid]")
    return int(uid), int(gid) if gid else None


# --------------------------------------------------------------------------- secrets

# Values a committed Secret may hold: empty, or an unmistakable placeholder.
PLACEHOLDER = re.compile(
    r"^(|CHANGE[_-]?ME.*|change[_-]?me.*|REPLACE[_-]?ME.*|<[^<>]+>|\$\{[A-Z0-9_]+\})$"
)


def non_placeholder_values(secret: dict) -> list[str]:
    """Keys of a Secret whose value is not a placeholder (data is base64)."""
    import base64

    bad: list[str] = []
    for key, value in (secret.get("stringData") or {}).items():
        if not PLACEHOLDER.match(str(value)):
            bad.append(key)
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded = base64.b64decode(str(value), validate=True).decode()
        except Exception:  # noqa: BLE001 - undecodable is as bad as real
            bad.append(key)
            continue
        if not PLACEHOLDER.match(decoded):
            bad.append(key)
    return bad


SECRETISH_KEY = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE)", re.I)


# --------------------------------------------------------------------------- numbers


# A YAML `key: value` line whose value is a number or a Kubernetes quantity
# (8080, "8080", 100m, 32Mi, 0.5), optionally followed by a comment.
NUMBER_LINE = re.compile(
    r"""^\s*(?:-\s+)?(?P<key>[A-Za-z0-9_.\-/]+):\s+
        (?P<q>["']?)(?P<num>\d+(?:\.\d+)?(?:[A-Za-z]{1,2})?)(?P=q)
        \s*(?P<comment>\#.*)?$""",
    re.X,
)


def numbers_without_reason(text: str) -> list[tuple[int, str]]:
    """Lines with a number that has neither a comment on the line nor a comment
    line directly above it. Returns (line number, line)."""
    lines = text.splitlines()
    bad: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = NUMBER_LINE.match(line)
        if not m or m.group("comment"):
            continue
        prev = lines[i - 1].strip() if i > 0 else ""
        if prev.startswith("#"):
            continue
        bad.append((i + 1, line))
    return bad
