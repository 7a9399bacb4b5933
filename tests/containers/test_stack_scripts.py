"""scripts/stack.sh (`make up`, `make dev`), scripts/image.sh (`make image`) and
scripts/dev-watch.sh (the dev api's command), each run in a scratch directory with stand-in
`docker` / `cargo` commands: what they say when Docker is missing or a service fails, which build
they pick, and that a stop reaches the server before cargo-watch."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from containers_support import REPO, calls, kill_group, run, scratch

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# --- make up / make dev without Docker --------------------------------------------------------------

ENGINE_DOWN = """
case "$1 $2" in
  "compose version") echo "Docker Compose version v2.40.3"; exit 0 ;;
  "info "*|"info ") echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;
esac
echo "docker $*" >>"$CALLS"
"""


@pytest.mark.parametrize("mode", ["up", "dev"])
@pytest.mark.parametrize("docker", [None, ENGINE_DOWN], ids=["no docker", "engine down"])
def test_without_docker_one_line_points_to_make_run_and_no_env_is_left(tmp_path, mode, docker) -> None:
    work, environment = scratch(tmp_path, docker)
    completed = run(work, environment, "scripts/stack.sh", mode)
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(f"make {mode}: ") and "`make run`" in lines[0]
    assert not (work / ".env").exists()
    assert calls(environment) == ""


# --- make up: a failed service is explained ----------------------------------------------------------

# An engine whose `up` fails in migrate; ps and logs say what a real one would.
FAILING_UP = """
case "$*" in
  "compose version") echo "Docker Compose version v2.40.3"; exit 0 ;;
  info*) exit 0 ;;
  *" up "*) echo "docker $*" >>"$CALLS"; echo 'service "migrate" didn'"'"'t complete successfully: exit 1' >&2; exit 1 ;;
  *" ps "*) printf 'cache|running|healthy|0\\ndb|running|healthy|0\\nmigrate|exited||1\\n' ;;
  *" logs "*) printf '%s\\n' "$MIGRATE_LOG" ;;
esac
"""


def test_up_creates_a_private_env_then_runs_compose_up_and_waits(tmp_path) -> None:
    work, environment = scratch(tmp_path, FAILING_UP.replace('exit 1 ;;\n  *" ps', 'exit 0 ;;\n  *" ps'))
    completed = run(work, environment, "scripts/stack.sh", "up", "--scale", "api=3")
    assert completed.returncode == 0, completed.stderr
    assert stat.S_IMODE((work / ".env").stat().st_mode) == 0o600
    assert "compose -f docker-compose.yml up -d --wait --scale api=3" in calls(environment)


def test_up_warns_on_every_start_while_authentication_is_off(tmp_path) -> None:
    work, environment = scratch(tmp_path, FAILING_UP.replace('exit 1 ;;\n  *" ps', 'exit 0 ;;\n  *" ps'))
    fresh = run(work, environment, "scripts/stack.sh", "up")
    assert fresh.returncode == 0, fresh.stderr
    assert "AUTH_DISABLED=true" in (work / ".env").read_text()
    assert "make up: authentication is off (AUTH_DISABLED=true in .env)" in fresh.stderr
    again = run(work, environment, "scripts/stack.sh", "up")
    assert "authentication is off" in again.stderr, "said on every start"
    (work / ".env").write_text("AUTH_ISSUER=https://issuer.example.com\nAUTH_AUDIENCE=api\n")
    checked = run(work, environment, "scripts/stack.sh", "up")
    assert "authentication is off" not in checked.stderr


def test_dev_runs_both_files_in_the_foreground(tmp_path) -> None:
    work, environment = scratch(tmp_path, FAILING_UP.replace('exit 1 ;;\n  *" ps', 'exit 0 ;;\n  *" ps'))
    completed = run(work, environment, "scripts/stack.sh", "dev")
    assert completed.returncode == 0, completed.stderr
    assert "compose -f docker-compose.yml -f docker-compose.dev.yml up --build" in calls(environment)


def test_a_migrate_refused_by_a_stale_volume_gets_the_cause_and_the_fix(tmp_path) -> None:
    work, environment = scratch(tmp_path, FAILING_UP)
    environment["MIGRATE_LOG"] = 'gravity-bff: password authentication failed for user "gravity"'
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert completed.returncode == 1
    assert "migrate" in completed.stderr and "exit code 1" in completed.stderr
    assert 'password authentication failed for user "gravity"' in completed.stderr
    assert "another DB_PASSWORD" in completed.stderr and "make down-volumes" in completed.stderr
    # Healthy services are not blamed.
    assert "make up: db" not in completed.stderr and "make up: cache" not in completed.stderr


def test_any_other_migrate_failure_gets_its_log_and_what_to_do(tmp_path) -> None:
    work, environment = scratch(tmp_path, FAILING_UP)
    environment["MIGRATE_LOG"] = "gravity-bff: migration 0003 failed: syntax error"
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert completed.returncode == 1
    assert "migration 0003 failed" in completed.stderr
    assert "another DB_PASSWORD" not in completed.stderr and "make down-volumes" in completed.stderr


# --- make image ---------------------------------------------------------------------------------------

WITH_BUILDX = """
case "$1 $2" in
  "buildx version") exit 0 ;;
esac
echo "docker $*" >>"$CALLS"
"""
COMPOSE_ONLY = """
case "$1 $2" in
  "buildx version") echo "docker: unknown command: docker buildx" >&2; exit 1 ;;
  "compose version") exit 0 ;;
esac
echo "docker $*" >>"$CALLS"
[ "$1" = compose ] && cat >>"$CALLS"
exit 0
"""
NEITHER = """
case "$1" in
  buildx|compose) echo "docker: unknown command: docker $1" >&2; exit 1 ;;
esac
echo "docker $*" >>"$CALLS"
"""


def test_image_uses_buildx_when_present(tmp_path) -> None:
    work, environment = scratch(tmp_path, WITH_BUILDX)
    completed = run(work, environment, "scripts/image.sh")
    assert completed.returncode == 0, completed.stderr
    assert "docker buildx build --load --target runtime -t gravity-bff:latest --build-arg VERSION=" in calls(
        environment
    )


def test_image_builds_through_compose_without_buildx(tmp_path) -> None:
    work, environment = scratch(tmp_path, COMPOSE_ONLY)
    environment["IMAGE_TAG"] = "mine"
    completed = run(work, environment, "scripts/image.sh")
    assert completed.returncode == 0, completed.stderr
    recorded = calls(environment)
    assert "docker compose --project-name gravity-bff-image --project-directory . -f - build" in recorded
    assert 'image: "gravity-bff:mine"' in recorded and "target: runtime" in recorded
    assert "docker image ls gravity-bff:mine" in recorded


def test_image_without_buildx_or_compose_says_so_in_one_line(tmp_path) -> None:
    work, environment = scratch(tmp_path, NEITHER)
    completed = run(work, environment, "scripts/image.sh")
    assert completed.returncode == 1
    assert len(completed.stderr.strip().splitlines()) == 1 and "buildx" in completed.stderr
    assert calls(environment) == ""


# --- the dev api's stop ------------------------------------------------------------------------------

# cargo-watch's part: start the server, then wait; a SIGTERM ends it at once (as it ends cargo-watch).
FAKE_CARGO = """
echo "$@" >"$OUT/args"
gravity-bff &
gravity-bff --health &
while true; do sleep 0.1; done
"""
# The server: drains for a second on SIGTERM, then says so. A --health probe only waits.
FAKE_SERVER = """
[ "$1" = --health ] && { trap 'echo signalled >"$OUT/probe"; exit 1' TERM; while true; do sleep 0.1; done; }
trap 'sleep 1; echo stopped >"$OUT/stopped"; exit 0' TERM
echo listening >"$OUT/listening"
while true; do sleep 0.1; done
"""


def test_dev_watch_stops_the_server_first_and_exits_0(tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("cargo", FAKE_CARGO), ("gravity-bff", FAKE_SERVER)):
        # The kernel names a process after the file it ran, so the server's comm is gravity-bff.
        (bin_dir / name).write_text("#!" + shutil.which("bash") + "\n" + body)
        (bin_dir / name).chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(tmp_path)}
    watch = subprocess.Popen(
        [str(REPO / "scripts" / "dev-watch.sh"), "--poll", "-x", "run"], env=environment, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "listening").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "listening").exists()
        time.sleep(0.3)
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=20) == 0
    finally:
        # Whatever is left of the stand-ins (the probe outlives its killed parent) dies with the group.
        kill_group(watch)
    assert (tmp_path / "args").read_text().split() == ["watch", "--poll", "-x", "run"]
    assert (tmp_path / "stopped").read_text().strip() == "stopped"
    assert not (tmp_path / "probe").exists(), "a --health probe was signalled as if it were the server"
