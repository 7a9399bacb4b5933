"""The end-to-end container tests: the repository's own `make` targets on a real Docker engine.

One scratch copy of the repository (its files as a clone has them) serves every test module, with
a Compose project name, image tags and host ports of its own, so it never touches a developer's
stack, images or ports. Whatever happens, the session ends by removing everything the project
started (containers, networks, volumes, its two image tags) and then checks that nothing with its
name is left. The BuildKit cache is kept: a second run reuses it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The load generator the fleet tests run (a program of its own, tools/fleet_load.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from e2e_support import DEVELOPMENT, FINDINGS, TESTING, TIMINGS, Project, docker, docker_ok  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    if shutil.which("docker") is None or not docker_ok("info"):
        raise pytest.UsageError("these tests need a running Docker engine (`docker info` failed)")
    if not docker_ok("compose", "version"):
        raise pytest.UsageError("these tests need Docker Compose v2 (`docker compose version` failed)")


@pytest.fixture(scope="session")
def project() -> Iterator[Project]:
    project = Project.create()
    # Anonymous volumes (an image's VOLUME without a mount over it) carry no project label; the
    # ones that appear during the run and end up attached to nothing are counted as left behind.
    volumes_before = set(docker("volume", "ls", "-q").split())
    try:
        yield project
    finally:
        remove_everything(project, volumes_before)


def remove_everything(project: Project, volumes_before: set[str]) -> None:
    project.compose(
        DEVELOPMENT, "--profile", "monitoring", "down", "--volumes", "--remove-orphans", "--timeout", "5",
        check=False, timeout=300,
    )  # fmt: skip
    project.run(
        "docker",
        "compose",
        *TESTING,
        "down",
        "--volumes",
        "--remove-orphans",
        check=False,
        timeout=300,
        COMPOSE_PROJECT_NAME=f"{project.name}-test",
    )
    for image in project.images:
        project.run("docker", "image", "rm", "--force", image, check=False)
    shutil.rmtree(project.directory, ignore_errors=True)
    left = {**project.leftovers(), **{f"test {k}": v for k, v in project.leftovers(f"{project.name}-test").items()}}
    new_dangling = set(docker("volume", "ls", "-q", "--filter", "dangling=true").split()) - volumes_before
    anonymous = sorted(
        v for v in new_dangling if docker("volume", "inspect", "--format", "{{len .Labels}}", v).strip() == "0"
    )
    if anonymous:
        left["anonymous volumes"] = anonymous
        for volume in anonymous:  # removed all the same: a failed run leaves nothing either
            docker_ok("volume", "rm", volume)
    assert not left, f"left behind by the run: {left}"
    FINDINGS["left behind"] = "nothing (containers, networks, volumes, image tags)"


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.section("container e2e: timings")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}")
    if FINDINGS:
        terminalreporter.section("container e2e: observed")
        for name, value in FINDINGS.items():
            terminalreporter.write_line(f"{name}: {value}")
