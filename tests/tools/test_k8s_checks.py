"""tools/k8s_checks.py: the verdict on checkov's report, and the base's plain rendering."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import k8s_checks

REPO = Path(__file__).resolve().parents[2]


def report(**results) -> str:
    summary = {"resource_count": 3, "passed": 2, "failed": 0, "skipped": 0, "checkov_version": "3.3.30"}
    return json.dumps({"check_type": "kubernetes", "results": results, "summary": summary})


PASSED = [{"check_id": "CKV_K8S_10"}, {"check_id": "CKV_K8S_9"}, {"check_id": "CKV_K8S_9"}]


def test_a_clean_report_passes_and_lists_the_checks_in_numeric_order():
    ok, lines = k8s_checks.judge_checkov("overlay-prod", report(passed_checks=PASSED), 0)
    assert ok
    assert lines[-1] == "  checks that passed: CKV_K8S_9 CKV_K8S_10"
    assert lines[-2].startswith("  overlay-prod: 3 resources; passed 2, failed 0, skipped 0 (checkov 3.3.30)")


def test_a_failed_check_fails_and_is_named():
    failed = [
        {
            "check_id": "CKV_K8S_8",
            "check_name": "Liveness",
            "resource": "Deployment.x",
            "file_path": "/rendered.yaml",
            "file_line_range": [1, 9],
        }
    ]
    ok, lines = k8s_checks.judge_checkov("o", report(failed_checks=failed), 1)
    assert not ok
    assert "  FAILED CKV_K8S_8 Liveness" in lines


def test_a_skip_needs_a_reason():
    def skipped(why: str | None) -> list[dict]:
        return [{"check_id": "CKV_K8S_43", "resource": "Deployment.x", "check_result": {"suppress_comment": why}}]

    ok, lines = k8s_checks.judge_checkov("o", report(skipped_checks=skipped("the tag is pinned by the overlay")), 0)
    assert ok and "  skipped CKV_K8S_43 on Deployment.x: the tag is pinned by the overlay" in lines
    for why in (None, "", "No comment provided"):
        ok, lines = k8s_checks.judge_checkov("o", report(skipped_checks=skipped(why)), 0)
        assert not ok and "  SKIPPED WITHOUT A REASON CKV_K8S_43 on Deployment.x" in lines


def test_nothing_checked_parse_errors_and_a_failing_exit_fail():
    assert k8s_checks.judge_checkov("o", "  \n", 2) == (False, ["  o: checkov printed nothing (exit 2)"])
    empty = json.dumps([{"check_type": "kubernetes", "results": {}, "summary": {"resource_count": 0}}])
    assert k8s_checks.judge_checkov("o", empty, 0) == (False, ["  o: checkov found no Kubernetes resources to check"])
    assert not k8s_checks.judge_checkov("o", report(parsing_errors=["x.yaml"]), 0)[0]
    ok, lines = k8s_checks.judge_checkov("o", report(passed_checks=PASSED), 1)
    assert not ok and lines[-1] == "  checkov exited 1"


def test_the_base_renders_as_its_listed_files():
    text, files = k8s_checks.render_base(REPO / "deploy" / "k8s" / "base")
    assert files and all((REPO / "deploy" / "k8s" / "base" / f).is_file() for f in files)
    kinds = {doc["kind"] for doc in yaml.safe_load_all(text) if doc}
    assert {"Deployment", "Job", "ConfigMap"} <= kinds
