"""scripts/swarm.sh (`make swarm-up` and friends) with a stand-in `docker` that records what it is
asked: the order of a deploy (migrations with the new image first, the api only once they have
completed), the secrets it makes, and what it says when it cannot go on. The real thing runs on
an engine in tests/containers_e2e/test_5_swarm.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from containers_support import REPO

TOOLS = (
    "bash",
    "awk",
    "cat",
    "cut",
    "dirname",
    "grep",
    "head",
    "od",
    "realpath",
    "sed",
    "seq",
    "sha256sum",
    "sleep",
    "tr",
    "xargs",
)
FILES = (
    "scripts/swarm.sh",
    "deploy/haproxy/haproxy.cfg",
    "deploy/swarm/prometheus.yml",
    "deploy/prometheus/alerts.yml",
)

# A swarm manager. $CURRENT is the api's image and replicas when it exists; $MIGRATION the state
# of the newest migrate task.
DOCKER = """
case "$*" in
  info) exit 0 ;;
  "info --format {{.Swarm.ControlAvailable}}") echo "${MANAGER:-true}" ;;
  "secret inspect "*) exit 1 ;;
  "secret create "*) echo "secret create ${@: -2:1} $(cat)" >>"$CALLS" ;;
  "service inspect "*"{{.Spec.TaskTemplate"*) [ -n "${CURRENT:-}" ] && echo "$CURRENT" ;;
  "service inspect "*) ;;
  "stack deploy --help") echo "  -d, --detach   Exit immediately instead of waiting for the stack services to converge" ;;
  "stack deploy "*jwks.yml*) echo "deploy api $API_IMAGE x $API_REPLICAS, migrate $MIGRATE_IMAGE, keys $JWKS_CONFIG" >>"$CALLS" ;;
  "stack deploy "*) echo "deploy api $API_IMAGE x $API_REPLICAS, migrate $MIGRATE_IMAGE" >>"$CALLS" ;;
  "service ps "*"-q"*) ;;
  "service ps "*) echo "$MIGRATE_IMAGE|${MIGRATION:-Complete 1 second ago}" ;;
  "service logs "*) echo "migrate: relation users: permission denied" ;;
  "service ls "*) echo "gravity_api $API_REPLICAS/$API_REPLICAS" ;;
  "stack services "*|"config ls "*) ;;
  *) echo "unexpected: docker $*" >&2; exit 3 ;;
esac
"""


class Ready(BaseHTTPRequestHandler):
    """The load balancer's /ready, answering 200."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def lb() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def swarm_sh(tmp_path: Path, mode: str, **environment: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    work, bin_dir = tmp_path / "repo", tmp_path / "bin"
    for name in FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "docker").write_text("#!" + shutil.which("bash") + "\n" + DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    completed = subprocess.run(
        [shutil.which("bash"), "scripts/swarm.sh", mode],
        cwd=work,
        env={
            "PATH": str(bin_dir),
            "HOME": os.environ.get("HOME", "/"),
            "CALLS": str(calls),
            "AUTH_DISABLED": "true",
            **environment,
        },  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    return completed, calls.read_text().splitlines() if calls.exists() else []


def test_a_first_deploy_makes_the_secrets_migrates_and_only_then_starts_the_api(tmp_path, lb) -> None:
    completed, calls = swarm_sh(tmp_path, "up", IMAGE="gravity-bff:new", API_PORT=str(lb))
    assert completed.returncode == 0, completed.stderr
    secrets = [call.split() for call in calls if call.startswith("secret create")]
    assert [name for _, _, name, _ in secrets] == ["gravity_db_password", "gravity_redis_password"]
    assert all(len(value) == 32 and int(value, 16) >= 0 for *_, value in secrets), secrets
    assert [call for call in calls if call.startswith("deploy")] == [
        "deploy api gravity-bff:new x 0, migrate gravity-bff:new",
        "deploy api gravity-bff:new x 3, migrate gravity-bff:new",
    ]


def test_a_new_image_migrates_while_the_api_keeps_its_image_and_count_then_rolls(tmp_path, lb) -> None:
    completed, calls = swarm_sh(
        tmp_path, "up", IMAGE="gravity-bff:new", API_PORT=str(lb), CURRENT="gravity-bff:old 5", API_REPLICAS="4"
    )
    assert completed.returncode == 0, completed.stderr
    assert [call for call in calls if call.startswith("deploy")] == [
        "deploy api gravity-bff:old x 5, migrate gravity-bff:new",
        "deploy api gravity-bff:new x 4, migrate gravity-bff:new",
    ]


def test_failed_migrations_leave_the_api_as_it_was_and_show_their_log(tmp_path, lb) -> None:
    completed, calls = swarm_sh(
        tmp_path,
        "up",
        IMAGE="gravity-bff:new",
        API_PORT=str(lb),
        CURRENT="gravity-bff:old 3",
        MIGRATION="Failed 2 seconds ago",
    )
    assert completed.returncode == 1
    assert "the migrations did not complete" in completed.stderr and "permission denied" in completed.stderr
    assert [call for call in calls if call.startswith("deploy")] == [
        "deploy api gravity-bff:old x 3, migrate gravity-bff:new"
    ]


def test_an_engine_that_is_no_swarm_manager_gets_one_line_naming_swarm_init(tmp_path) -> None:
    completed, calls = swarm_sh(tmp_path, "up", MANAGER="false")
    assert completed.returncode == 1 and calls == []
    (line,) = completed.stderr.strip().splitlines()
    assert line.startswith("make swarm-up: ") and "docker swarm init" in line


def test_a_deploy_with_neither_an_issuer_nor_authentication_off_is_refused_before_anything_is_done(
    tmp_path, lb
) -> None:
    completed, calls = swarm_sh(tmp_path, "up", IMAGE="gravity-bff:new", API_PORT=str(lb), AUTH_DISABLED="")
    assert completed.returncode == 1
    assert "AUTH_ISSUER" in completed.stderr and "AUTH_DISABLED=true" in completed.stderr, completed.stderr
    assert calls == [], "nothing was created or deployed"


def test_authentication_off_beside_half_an_issuer_configuration_is_refused_before_anything_is_done(
    tmp_path, lb
) -> None:
    completed, calls = swarm_sh(tmp_path, "up", IMAGE="gravity-bff:new", API_PORT=str(lb), AUTH_AUDIENCE="gravity-bff")
    assert completed.returncode == 1
    assert "AUTH_DISABLED=true is refused beside" in completed.stderr, completed.stderr
    assert calls == [], "nothing was created or deployed"


def test_an_issuers_key_set_file_is_deployed_as_a_config_named_by_its_digest(tmp_path, lb) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text('{"keys": []}\n')
    completed, calls = swarm_sh(
        tmp_path, "up", IMAGE="gravity-bff:new", API_PORT=str(lb), AUTH_DISABLED="",
        AUTH_ISSUER="https://id.example.com", AUTH_AUDIENCE="gravity-bff", AUTH_JWKS_FILE=str(keys),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    digest = subprocess.run(["sha256sum", str(keys)], capture_output=True, text=True, check=True).stdout[:12]
    assert [call for call in calls if call.startswith("deploy")][-1].endswith(f"keys {digest}"), calls
