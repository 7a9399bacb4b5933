"""The parts of scripts/check-k8s.sh that read YAML and JSON.

python tools/k8s_checks.py versions                    the check tools' versions, one line
python tools/k8s_checks.py render-base BASE_DIR OUT    the base's listed files as one stream
python tools/k8s_checks.py checkov NAME REPORT RC      judge checkov's JSON report (exit 1 if it fails)
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import Any

import yaml

TOOLS = ("kubernetes-validate", "checkov", "pytest", "PyYAML")


def versions() -> str:
    found = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in TOOLS)
    return f"  python {platform.python_version()}: {found}"


def render_base(base: Path) -> tuple[str, list[str]]:
    """The base uses no generators or patches, so its listed files, joined, are its rendering."""
    files = yaml.safe_load((base / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    return "\n---\n".join((base / f).read_text(encoding="utf-8") for f in files), files


def check_id_order(check_id: str) -> tuple[int, str]:
    # CKV_K8S_9 before CKV_K8S_10.
    return (len(check_id), check_id)


def judge_checkov(name: str, raw: str, rc: int) -> tuple[bool, list[str]]:
    """Whether checkov's JSON report passes, and the lines that say why.

    It fails on a failed check, a parse error, a skip without a reason (a checkov.io/skipN
    annotation must say why), a report without Kubernetes resources, or a non-zero exit.
    """
    raw = raw.strip()
    if not raw:
        return False, [f"  {name}: checkov printed nothing (exit {rc})"]
    data: Any = json.loads(raw)
    if isinstance(data, list):
        data = next(d for d in data if d.get("check_type") == "kubernetes")
    results, summary = data.get("results", {}), data["summary"]
    if not summary.get("resource_count"):
        return False, [f"  {name}: checkov found no Kubernetes resources to check"]
    ok = True
    lines = []
    for c in results.get("failed_checks", []):
        ok = False
        lines.append(f"  FAILED {c['check_id']} {c['check_name']}")
        lines.append(f"         {c['resource']}  ({c['file_path']}:{c['file_line_range']})")
    for c in results.get("skipped_checks", []):
        why = (c.get("check_result") or {}).get("suppress_comment") or ""
        if not why.strip() or why == "No comment provided":
            ok = False
            lines.append(f"  SKIPPED WITHOUT A REASON {c['check_id']} on {c['resource']}")
        else:
            lines.append(f"  skipped {c['check_id']} on {c['resource']}: {why}")
    for e in results.get("parsing_errors", []):
        ok = False
        lines.append(f"  PARSE ERROR {e}")
    passed = sorted({c["check_id"] for c in results.get("passed_checks", [])}, key=check_id_order)
    lines.append(
        f"  {name}: {summary['resource_count']} resources; passed {summary['passed']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']} "
        f"(checkov {summary.get('checkov_version', '?')})"
    )
    lines.append(f"  checks that passed: {' '.join(passed)}")
    if rc != 0 and ok:
        ok = False
        lines.append(f"  checkov exited {rc}")
    return ok, lines


def main(argv: list[str]) -> int:
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if command == "versions" and not args:
        print(versions())
        return 0
    if command == "render-base" and len(args) == 2:
        text, files = render_base(Path(args[0]))
        Path(args[1]).write_text(text, encoding="utf-8")
        print(f"  base (plain files)        {', '.join(files)}")
        return 0
    if command == "checkov" and len(args) == 3:
        ok, lines = judge_checkov(args[0], Path(args[1]).read_text(encoding="utf-8"), int(args[2]))
        print("\n".join(lines))
        return 0 if ok else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
