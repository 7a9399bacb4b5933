"""Fixtures for the Kubernetes manifest tests.

Every manifest test runs once per rendering: the base, and each overlay under
deploy/k8s/overlays/. Rendering uses `kubectl kustomize` (or `kustomize build`);
without either, the base's listed files are read directly and the overlays are
skipped, loudly.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import k8slib  # noqa: E402


def _variants() -> list[str]:
    names = ["base"]
    if k8slib.OVERLAYS_DIR.is_dir():
        names += sorted(
            f"overlay:{p.name}"
            for p in k8slib.OVERLAYS_DIR.iterdir()
            if (p / "kustomization.yaml").is_file()
        )
    return names


@cache
def _docs(variant: str) -> tuple:
    if variant == "base":
        if k8slib.renderer() is None:
            return tuple(k8slib.load_files(k8slib.kustomization_resources(k8slib.BASE_DIR)))
        return tuple(k8slib.render(k8slib.BASE_DIR))
    name = variant.split(":", 1)[1]
    return tuple(k8slib.render(k8slib.OVERLAYS_DIR / name))


@pytest.fixture(params=_variants())
def variant(request) -> str:
    if request.param != "base" and k8slib.renderer() is None:
        pytest.skip(f"{request.param}: neither kubectl nor kustomize installed, cannot render")
    return request.param


@pytest.fixture
def docs(variant) -> list[dict]:
    return [dict(d) for d in _docs(variant)]


@pytest.fixture
def config(docs) -> dict[str, str]:
    return k8slib.find(docs, "ConfigMap", "gravity-bff-config")["data"]


@pytest.fixture
def deployment(docs) -> dict:
    return k8slib.find(docs, "Deployment", "gravity-bff")


@pytest.fixture
def job(docs) -> dict:
    return k8slib.find(docs, "Job", "gravity-bff-migrate")


@pytest.fixture(scope="session")
def dockerfile_stage() -> k8slib.Stage:
    if not k8slib.DOCKERFILE.is_file():
        pytest.skip("no Dockerfile at the repository root yet")
    return k8slib.runtime_stage(k8slib.parse_dockerfile(k8slib.DOCKERFILE.read_text()))
