"""Shared fixtures for the container-system tests: the repo's files, parsed once.

The tests check what a JSON Schema cannot see (dependency conditions, exec-form healthchecks,
published ports, hardening, the Dockerfile's stages) on the files as Docker Compose would read
them: YAML anchors and merge keys resolved, ${...} interpolated from .env.example, and
docker-compose.dev.yml merged over docker-compose.yml by the Compose Specification's rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose_model  # noqa: E402  (needs the path above)
import dockerfile_model  # noqa: E402
from containers_support import ALL_COMPOSE_FILES, DEVELOPMENT, PRODUCTION, REPO, TESTING, compose_spec_path  # noqa: E402


@pytest.fixture(scope="session")
def compose_spec() -> dict[str, Any]:
    return json.loads(compose_spec_path().read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def example_env() -> dict[str, str]:
    return compose_model.parse_env_file(REPO / ".env.example")


@pytest.fixture(scope="session")
def raw() -> dict[str, dict[str, Any]]:
    """Each compose file as written (anchors resolved, nothing interpolated), by file name."""
    return {path.name: compose_model.load_yaml(path) for path in ALL_COMPOSE_FILES}


@pytest.fixture(scope="session")
def production(example_env: dict[str, str]) -> dict[str, Any]:
    return compose_model.load_model([PRODUCTION], example_env)


@pytest.fixture(scope="session")
def development(example_env: dict[str, str]) -> dict[str, Any]:
    return compose_model.load_model([PRODUCTION, DEVELOPMENT], example_env)


@pytest.fixture(scope="session")
def testing() -> dict[str, Any]:
    # No env at all: the test file must not depend on .env or the caller's environment.
    return compose_model.load_model([TESTING], {})


@pytest.fixture(scope="session")
def dockerfile() -> dockerfile_model.Dockerfile:
    return dockerfile_model.parse((REPO / "Dockerfile").read_text(encoding="utf-8"))
