"""scripts/compose.sh, driven with stand-in `docker` / `docker-compose` commands on a PATH of
their own: which Compose it picks, what it refuses, and that it passes arguments through."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from containers_support import REPO

WRAPPER = REPO / "scripts" / "compose.sh"


def make_path(
    tmp_path: Path, *, docker: str | None = None, docker_compose: str | None = None, tools: tuple[str, ...] = ()
) -> str:
    """A PATH holding bash, timeout, `tools` and the given stand-ins, and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "timeout", *tools):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name, body in (("docker", docker), ("docker-compose", docker_compose)):
        if body is not None:
            script = bin_dir / name
            script.write_text("#!" + shutil.which("bash") + "\n" + body)
            script.chmod(0o755)
    return str(bin_dir)


def run(path: str, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("bash"), str(WRAPPER), *arguments],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/"), **environment},
        capture_output=True,
        text=True,
        timeout=30,
    )


# A docker CLI whose compose plugin works and whose engine answers when ENGINE_UP is set.
DOCKER_WITH_PLUGIN = """
case "$1 $2" in
  "compose version") echo "Docker Compose version v2.29.7"; exit 0 ;;
  "info "*|"info") [ -n "$ENGINE_UP" ] && exit 0; echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;
esac
echo "docker $*"
"""
DOCKER_WITHOUT_PLUGIN = """
case "$1" in
  compose) echo "docker: unknown command: docker compose" >&2; exit 1 ;;
  info) exit 0 ;;
esac
"""


def test_no_compose_at_all_fails_with_one_line(tmp_path) -> None:
    completed = run(make_path(tmp_path, docker=DOCKER_WITHOUT_PLUGIN), "up", "-d")
    assert completed.returncode != 0
    assert completed.stderr.count("\n") == 1 and "Docker Compose v2 is not installed" in completed.stderr


def test_compose_v1_is_refused_with_one_line(tmp_path) -> None:
    v1 = 'if [ "$1 $2" = "version --short" ]; then echo 1.29.2; exit 0; fi; echo "docker-compose $*"\n'
    completed = run(make_path(tmp_path, docker=DOCKER_WITHOUT_PLUGIN, docker_compose=v1), "ps")
    assert completed.returncode != 0
    assert completed.stderr.count("\n") == 1 and "1.29.2 is not Compose v2" in completed.stderr


def test_an_engine_that_does_not_answer_fails_with_one_line(tmp_path) -> None:
    completed = run(
        make_path(tmp_path, docker=DOCKER_WITH_PLUGIN), "-f", "docker-compose.test.yml", "up", "-d", "--wait"
    )
    assert completed.returncode != 0
    assert completed.stderr.count("\n") == 1 and "engine does not answer" in completed.stderr
    assert "docker compose" not in completed.stdout  # compose itself never ran


@pytest.mark.parametrize(
    "command", [["config"], ["-f", "a.yml", "-f", "b.yml", "config", "-q"], ["--profile", "x", "config", "--services"]]
)
def test_commands_that_only_read_files_need_no_engine(tmp_path, command: list[str]) -> None:
    completed = run(make_path(tmp_path, docker=DOCKER_WITH_PLUGIN), *command)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "docker compose " + " ".join(command)


def test_the_plugin_gets_the_arguments_verbatim_when_the_engine_answers(tmp_path) -> None:
    path = make_path(tmp_path, docker="export ENGINE_UP=1\n" + DOCKER_WITH_PLUGIN)
    arguments = ["-f", "docker-compose.yml", "-f", "docker-compose.dev.yml", "up", "--build", "--scale", "api=2"]
    completed = run(path, *arguments)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "docker compose " + " ".join(arguments)


def test_a_standalone_compose_v2_is_used_when_the_plugin_is_missing(tmp_path) -> None:
    v2 = 'if [ "$1 $2" = "version --short" ]; then echo 2.29.7; exit 0; fi; echo "docker-compose $*"\n'
    completed = run(
        make_path(tmp_path, docker="export ENGINE_UP=1\n" + DOCKER_WITHOUT_PLUGIN, docker_compose=v2), "down", "-v"
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "docker-compose down -v"


# --- what every build gets: the source revision, and no Bake without buildx ----------------------------

# The engine answers; buildx exists when HAS_BUILDX is set; compose prints what it was given.
DOCKER_REPORTING = """
case "$1 $2" in
  "compose version") exit 0 ;;
  "buildx version") [ -n "$HAS_BUILDX" ] && exit 0; echo "docker: unknown command: docker buildx" >&2; exit 1 ;;
  "info "*|"info ") exit 0 ;;
esac
echo "REVISION=$REVISION COMPOSE_BAKE=${COMPOSE_BAKE-unset}"
"""


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_every_build_is_stamped_with_the_checked_out_revision(tmp_path) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = make_path(tmp_path, docker=DOCKER_REPORTING, tools=("git",))
    assert f"REVISION={head} " in run(path, "up", "-d", "--build").stdout
    assert "REVISION=1.2.3-ci " in run(path, "build", REVISION="1.2.3-ci").stdout, "the environment's wins"


@pytest.mark.parametrize(
    ("buildx", "given", "expected"),
    [("", None, "false"), ("1", None, "unset"), ("", "true", "true")],
    ids=["no buildx: no Bake", "buildx: compose decides", "set by the caller: kept"],
)
def test_without_buildx_compose_builds_without_bake_and_so_without_its_warning(
    tmp_path, buildx: str, given: str | None, expected: str
) -> None:
    path = make_path(tmp_path, docker=DOCKER_REPORTING)
    extra = {"HAS_BUILDX": buildx} | ({"COMPOSE_BAKE": given} if given else {})
    completed = run(path, "-f", "docker-compose.yml", "up", "-d", "--wait", **extra)
    assert completed.returncode == 0, completed.stderr
    assert f"COMPOSE_BAKE={expected}" in completed.stdout
