"""`make up` (scripts/stack.sh, scripts/stack-explain.sh) against a stand-in `docker`: the
settings are checked by the new image before anything running is touched, and a failed start names
the service, what the engine or its log said and the fix."""

from __future__ import annotations

import shutil

import pytest

from containers_support import calls, run, scratch

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# An engine that answers as its environment says: CHECK_STATUS/CHECK_OUTPUT for `run … check`,
# UP_STATUS for `up`, PS for `ps -a` (service|state|health|exit code|id lines), INSPECT for the
# engine's error of a container, LOG for any service's log. Every call is recorded in $CALLS.
ENGINE = """
echo "docker $*" >>"$CALLS"
case "$*" in
  "compose version") echo "Docker Compose version v2.40.3"; exit 0 ;;
  "buildx version") exit 1 ;;
  info*) exit 0 ;;
  *" run --rm --no-deps -T "*" check") printf '%s\\n' "${CHECK_OUTPUT:-settings ok}"; exit "${CHECK_STATUS:-0}" ;;
  *" up "*) exit "${UP_STATUS:-0}" ;;
  *" ps -a "*) printf '%b' "$PS" ;;
  *" port lb 8080") echo 0.0.0.0:8080 ;;
  "inspect "*) printf '%s\\n' "$INSPECT" ;;
  *" logs "*) printf '%s\\n' "$LOG" ;;
esac
exit 0
"""
BAD_TTL = 'gravity-bff: CACHE_TTL_SECONDS must be a whole number from 0 to 604800, got "5m"'


def recorded_compose(environment: dict[str, str]) -> list[str]:
    """The compose commands, without the global -f options."""
    prefix = "docker compose -f docker-compose.yml "
    return [line[len(prefix) :] for line in calls(environment).splitlines() if line.startswith(prefix)]


def test_up_builds_then_checks_the_settings_of_api_and_migrate_then_starts(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert completed.returncode == 0, completed.stderr
    commands = recorded_compose(environment)
    assert commands[:4] == [
        "build",
        "run --rm --no-deps -T api check",
        "run --rm --no-deps -T migrate check",
        "up -d --wait",
    ], commands
    assert "make up: the stack is up: http://localhost:8080" in completed.stdout


def test_up_with_a_bad_setting_touches_nothing_and_prints_the_binarys_line(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    environment |= {"CHECK_STATUS": "2", "CHECK_OUTPUT": f" Network gravity-bff_default  Creating\n{BAD_TTL}"}
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert completed.returncode == 2
    commands = recorded_compose(environment)
    assert commands == ["build", "run --rm --no-deps -T api check"], "the running stack was touched"
    assert f"\n{BAD_TTL}\n" in completed.stderr
    assert "Network" not in completed.stderr, "compose's own progress lines are not the cause"
    assert "nothing was started or changed" in completed.stderr and "fix:" in completed.stderr


def test_a_taken_host_port_names_the_service_the_port_and_api_port(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    environment |= {
        "UP_STATUS": "1",
        "PS": "api|running|healthy|0|a1\\ncache|running|healthy|0|c1\\ndb|running|healthy|0|d1\\n"
        "lb|created||0|l1\\nmigrate|exited||0|m1\\n",
        "INSPECT": "driver failed programming external connectivity on endpoint gravity-bff-lb-1 (3be5): "
        "Error starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use",
    }
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert completed.returncode == 1
    assert "make up: lb was never started" in completed.stderr, completed.stderr
    assert "address already in use" in completed.stderr
    assert "host port 8080 is taken" in completed.stderr and "set API_PORT in .env" in completed.stderr
    for service in ("api", "db", "cache", "migrate"):
        assert f"make up: {service}" not in completed.stderr, f"{service} is not to blame"


def test_a_container_that_waits_on_a_failed_one_is_not_blamed(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    environment |= {
        "UP_STATUS": "1",
        "PS": "api|created||0|a1\\ndb|running|healthy|0|d1\\nmigrate|exited||1|m1\\n",
        "INSPECT": "",
        "LOG": "gravity-bff: migration 0003 failed: syntax error",
    }
    completed = run(work, environment, "scripts/stack.sh", "up")
    assert "make up: migrate" in completed.stderr and "migration 0003 failed" in completed.stderr
    assert "make up: api" not in completed.stderr
