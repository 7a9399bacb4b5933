"""`make up`: the production-shaped stack, from a fresh .env, as docs/CONTAINERS.md describes it.

In order (each test builds on the one before): healthy services and migrate first; the API through
the published port; the image's revision and the address `make up` prints; the hardening as the
kernel sees it; a bad setting in .env that `make up` refuses while the running stack serves on;
`docker compose stop api` with a request in flight; a stale pgdata volume explained by `make up`;
a taken host port named by `make up`, with `make ps` listing every service; the data surviving
`make down` + `make up`; Redis killed under load.
"""

from __future__ import annotations

import re
import secrets
import socket
import stat
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from e2e_support import (
    FINDINGS,
    PRODUCTION,
    Project,
    Response,
    Timer,
    docker,
    free_ports,
    health,
    proc_status,
    request,
    root_mount_options,
    wait_for,
)

IMAGE_SIZE_LIMIT = 8_000_000
USER = {"name": "Ada Lovelace", "email": f"ada-{secrets.token_hex(4)}@example.com"}
# What the first `make up` printed (stdout and stderr).
FIRST_UP: dict[str, str] = {}


@pytest.fixture(scope="module")
def stack(project: Project) -> Project:
    (port,) = free_ports(1, project.ports)
    project.variables["API_PORT"] = str(port)
    assert not (project.directory / ".env").exists()
    with Timer("make up (fresh .env, image build included)"):
        completed = project.make("up")
    FIRST_UP["output"] = completed.stdout + completed.stderr
    return project


@pytest.fixture(scope="module")
def state() -> dict:
    """What one test leaves for the next (the id of a user that outlives the stack)."""
    return {}


def port(project: Project) -> int:
    return int(project.variables["API_PORT"])


def started(container: dict, key: str) -> datetime:
    # RFC 3339 with nanoseconds; microseconds are enough to order two events.
    text = re.sub(r"(\.\d{6})\d*", r"\1", container["State"][key]).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def test_make_up_creates_a_private_env_and_every_service_is_healthy(stack: Project) -> None:
    env = stack.directory / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{32}", stack.env_file()["DB_PASSWORD"])
    for service in ("api", "db", "cache"):
        container = stack.container(service)
        assert container["State"]["Status"] == "running", service
        assert health(container) == "healthy", service
    api = stack.container("api")
    # The api's health is the binary's own probe, and the engine ran it with success.
    assert api["Config"]["Healthcheck"]["Test"] == ["CMD", "/gravity-bff", "--health"]
    assert api["State"]["Health"]["Log"][-1]["ExitCode"] == 0
    assert api["Config"]["Image"] == f"gravity-bff:{stack.tag}"


def test_migrate_exited_0_before_the_api_started(stack: Project) -> None:
    migrate, api = stack.container("migrate"), stack.container("api")
    assert migrate["State"]["Status"] == "exited"
    assert migrate["State"]["ExitCode"] == 0
    assert started(migrate, "FinishedAt") <= started(api, "StartedAt")
    log = stack.compose(PRODUCTION, "logs", "--no-log-prefix", "migrate").stdout
    assert "applied 0001_initial_schema" in log or "up to date" in log, log


def test_crud_through_the_published_port(stack: Project, state: dict) -> None:
    api = port(stack)
    created = request(api, "POST", "/v1/users", USER, {"X-Request-Id": "e2e-create-1"})
    assert created.status == 201, created.body
    assert created.headers["x-request-id"] == "e2e-create-1"
    user = created.json()
    assert created.headers["location"] == f"/v1/users/{user['id']}"
    path = f"/v1/users/{user['id']}"

    first = request(api, "GET", path)
    assert (first.status, first.headers.get("x-cache")) == (200, "MISS")
    assert first.json() == user
    # The miss stored the body; the next read is served from Redis.
    hit: dict[str, Response] = {}
    wait_for(
        "a cache HIT",
        lambda: hit.update(r=request(api, "GET", path)) or hit["r"].headers.get("x-cache") == "HIT",
        5,
        0.1,
    )
    second = hit["r"]
    assert second.status == 200
    assert second.body == first.body
    # A request without an id of its own gets a fresh UUID.
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", second.headers["x-request-id"])

    listed = request(api, "GET", "/v1/users?limit=100")
    assert listed.status == 200
    assert user["id"] in [item["id"] for item in listed.json()["items"]]

    patched = request(api, "PATCH", path, {"name": "Ada King"})
    assert patched.status == 200 and patched.json()["name"] == "Ada King"
    after = request(api, "GET", path)
    assert (after.status, after.headers.get("x-cache"), after.json()["name"]) == (200, "MISS", "Ada King")

    assert request(api, "DELETE", path).status == 204
    assert request(api, "GET", path).status == 404

    ready = request(api, "GET", "/ready")
    assert ready.status == 200
    # A new .env turns authentication off (README, Authentication), and /ready says so.
    assert ready.json() == {"status": "ready", "postgres": "ok", "redis": "ok", "auth": "disabled"}


def test_make_up_stamps_the_revision_prints_the_address_and_builds_without_warnings(stack: Project) -> None:
    revision = stack.run("git", "rev-parse", "--short", "HEAD").stdout.strip()
    image = f"gravity-bff:{stack.tag}"
    assert f"(revision {revision})" in docker("run", "--rm", image, "--version")
    label = docker(
        "image", "inspect", "--format", '{{index .Config.Labels "org.opencontainers.image.revision"}}', image
    )
    assert label.strip() == revision
    output = FIRST_UP["output"]
    assert f"make up: the stack is up: http://localhost:{port(stack)}" in output, output[-2000:]
    assert "Bake" not in output and "buildx isn't installed" not in output, output[-2000:]


def test_the_api_runs_hardened(stack: Project) -> None:
    api = stack.container("api")
    pid = api["State"]["Pid"]
    if not Path(f"/proc/{pid}").is_dir():
        pytest.skip("the engine runs on another host: its /proc is not visible here")
    status = proc_status(pid)
    assert status["Uid"].split() == ["65532"] * 4, status["Uid"]
    assert status["Gid"].split() == ["65532"] * 4, status["Gid"]
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, f"{capabilities} {status[capabilities]}"
    assert status["NoNewPrivs"] == "1"
    assert "ro" in root_mount_options(pid)
    assert api["HostConfig"]["ReadonlyRootfs"] is True
    assert api["HostConfig"]["CapDrop"] == ["ALL"]
    FINDINGS["api process"] = f"uid/gid 65532, CapEff {status['CapEff']}, root mounted ro, NoNewPrivs 1"

    for service in ("db", "cache"):
        container = stack.container(service)
        bindings = container["NetworkSettings"]["Ports"] or {}
        assert all(not published for published in bindings.values()), f"{service} publishes {bindings}"
        assert not container["HostConfig"]["PortBindings"], service

    size = int(docker("image", "inspect", "--format", "{{.Size}}", f"gravity-bff:{stack.tag}"))
    FINDINGS["runtime image size"] = f"{size:,} bytes"
    assert size < IMAGE_SIZE_LIMIT


def test_make_up_with_a_bad_setting_leaves_the_running_stack_serving_and_names_it(stack: Project) -> None:
    before = {service: stack.container(service) for service in ("api", "migrate", "lb")}
    ttl = stack.env_file()["CACHE_TTL_SECONDS"]
    stack.set_env("CACHE_TTL_SECONDS", "5m")
    try:
        with Timer("make up refusing a bad setting (image cached)"):
            refused = stack.make("up", check=False)
    finally:
        stack.set_env("CACHE_TTL_SECONDS", ttl)
    assert refused.returncode != 0
    named = [line for line in refused.stderr.splitlines() if line.startswith("gravity-bff: ")]
    assert len(named) == 1 and "CACHE_TTL_SECONDS" in named[0] and '"5m"' in named[0], refused.stderr[-3000:]
    assert "nothing was started or changed" in refused.stderr
    for service, container in before.items():
        after = stack.container(service)
        assert (after["Id"], after["State"]["StartedAt"]) == (container["Id"], container["State"]["StartedAt"]), service
    assert stack.container("api")["State"]["Status"] == "running"
    assert request(port(stack), "GET", "/ready").status == 200
    FINDINGS["make up with CACHE_TTL_SECONDS=5m"] = f"refused: {named[0]}; api, migrate, lb untouched, /ready 200"


def psql(project: Project, sql: str, **kwargs) -> subprocess.CompletedProcess:
    env = project.env_file()
    return project.compose(
        PRODUCTION, "exec", "-T", "db", "psql", "-v", "ON_ERROR_STOP=1", "-U", env["DB_USER"], "-d", env["DB_NAME"],
        "-Atc", sql, **kwargs,
    )  # fmt: skip


def test_stop_lets_a_request_in_flight_finish_and_exits_0(stack: Project, state: dict) -> None:
    """A PATCH waits on a row that another Postgres session holds locked for 4 s; the api is
    stopped while it waits; the PATCH must still get its 200 and the api exit 0 in the grace."""
    api = port(stack)
    user = request(
        api, "POST", "/v1/users", {"name": "Grace", "email": f"grace-{secrets.token_hex(4)}@example.com"}
    ).json()
    state["user"] = user["id"]
    env = stack.env_file()
    locker = subprocess.Popen(
        ["docker", "compose", *PRODUCTION, "exec", "-T", "db", "psql", "-v", "ON_ERROR_STOP=1", "-U", env["DB_USER"],
         "-d", env["DB_NAME"], "-c",
         f"BEGIN; SELECT id FROM users WHERE id = '{user['id']}' FOR UPDATE; SELECT pg_sleep(4); COMMIT;"],
        cwd=stack.directory, env=stack.environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(
            "the row lock is held",
            lambda: psql(stack, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' "
                         "AND state = 'active' AND pid <> pg_backend_pid()").stdout.strip() == "1",
            timeout=20, interval=0.1,
        )  # fmt: skip
        answer: dict[str, object] = {}

        def patch() -> None:
            answer["response"] = request(api, "PATCH", f"/v1/users/{user['id']}", {"name": "Grace Hopper"}, timeout=30)
            answer["at"] = time.monotonic()

        writer = threading.Thread(target=patch)
        writer.start()
        wait_for(
            "the PATCH waits on the lock",
            lambda: psql(stack, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").stdout.strip()
            != "0",
            timeout=20, interval=0.1,
        )  # fmt: skip
        grace = int(env.get("SHUTDOWN_GRACE_SECONDS", "10"))
        stop_issued = time.monotonic()
        with Timer("docker compose stop api (a PATCH waiting on a row lock in flight)") as stopping:
            stack.compose(PRODUCTION, "stop", "api", timeout=60)
        writer.join(timeout=30)
    finally:
        locker.wait(timeout=30)

    response = answer["response"]
    assert isinstance(response, Response)
    assert response.status == 200, response.body
    assert response.json()["name"] == "Grace Hopper"
    assert answer["at"] > stop_issued, "the PATCH had finished before the stop: nothing was in flight"
    container = stack.container("api")
    assert container["State"]["Status"] == "exited"
    assert container["State"]["ExitCode"] == 0
    assert stopping.seconds < grace, f"stop took {stopping.seconds:.1f} s, SHUTDOWN_GRACE_SECONDS is {grace}"
    log = stack.compose(PRODUCTION, "logs", "--no-log-prefix", "api").stdout + container["State"].get("Error", "")
    assert "draining in-flight requests" in log and '"stopped"' in log, log[-2000:]
    FINDINGS["api stop with a request in flight"] = f"exit 0 after {stopping.seconds:.1f} s, the PATCH answered 200"


def test_make_up_over_a_volume_with_another_password_says_why_and_how_to_fix_it(stack: Project) -> None:
    stack.make("down")
    password = stack.env_file()["DB_PASSWORD"]
    stack.set_env("DB_PASSWORD", secrets.token_hex(16))
    try:
        with Timer("make up that fails in migrate (stale pgdata password)"):
            failed = stack.make("up", check=False)
    finally:
        stack.set_env("DB_PASSWORD", password)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "migrate" in output and "password authentication failed" in output, output[-3000:]
    assert "make down-volumes" in output, output[-3000:]


def test_make_up_with_its_port_taken_names_lb_the_port_and_api_port(stack: Project) -> None:
    stack.make("down")
    (taken,) = free_ports(1, stack.ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("0.0.0.0", taken))
        holder.listen()
        with Timer("make up with the published port taken"):
            failed = stack.make("up", check=False, API_PORT=str(taken))
        listed = stack.make("ps", API_PORT=str(taken)).stdout
    assert failed.returncode != 0
    assert "make up: lb was never started" in failed.stderr, failed.stderr[-3000:]
    assert f"host port {taken} is taken" in failed.stderr and "set API_PORT in .env" in failed.stderr
    for service in ("lb", "api", "migrate", "db", "cache"):
        assert f"{stack.name}-{service}-1" in listed, f"make ps hides {service}:\n{listed}"
    FINDINGS["make up with its port taken"] = next(line for line in failed.stderr.splitlines() if "is taken" in line)


def test_the_data_survives_make_down_and_make_up(stack: Project, state: dict) -> None:
    stack.make("down")
    assert not stack.containers()
    with Timer("make up (image cached, data volume kept)"):
        stack.make("up")
    user = request(port(stack), "GET", f"/v1/users/{state['user']}")
    assert user.status == 200
    assert user.json()["name"] == "Grace Hopper"


def test_requests_still_succeed_with_redis_killed(stack: Project, state: dict) -> None:
    api, path = port(stack), f"/v1/users/{state['user']}"
    assert request(api, "GET", path).status == 200
    stack.compose(PRODUCTION, "kill", "cache")
    assert stack.container("cache")["State"]["Running"] is False
    statuses: list[int] = []
    refused: list[str] = []
    redis_seen_down = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        statuses.append(request(api, "GET", path).status)
        created = request(api, "POST", "/v1/users", {"name": "No cache"})
        statuses.append(created.status)
        # A change of a user needs its cache fence, which a dead Redis cannot take: refused, and
        # said so (docs/API.md, Cache); a read or a create never needs Redis.
        patched = request(api, "PATCH", f"/v1/users/{created.json()['id']}", {"name": "Still no cache"})
        if patched.status == 503:
            refused.append(patched.json()["detail"])
        else:
            statuses.append(patched.status)
        ready = request(api, "GET", "/ready")
        statuses.append(ready.status)
        redis_seen_down |= ready.json().get("redis") == "down"
    assert set(statuses) <= {200, 201}, statuses
    assert all("nothing was written" in detail for detail in refused), refused
    assert redis_seen_down, "/ready never reported redis down: was it killed?"
    FINDINGS["Redis killed"] = (
        f"{len(statuses)} reads, creates and /ready in 5 s, all 200/201; {len(refused)} PATCHes refused, "
        "nothing written; /ready said redis down"
    )

    stack.compose(PRODUCTION, "start", "cache")
    recovered = wait_for(
        "the api uses Redis again", lambda: request(api, "GET", "/ready").json().get("redis") == "ok", timeout=60
    )
    FINDINGS["Redis back"] = f"/ready redis ok {recovered:.1f} s after the cache was started again"
