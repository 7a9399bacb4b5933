"""`API_REPLICAS=3 make up`, as docs/DEPLOY.md says, with the `monitoring` profile and CORS on:
three replicas behind the load balancer (the one published port), every replica answering,
Prometheus scraping each of them, the load balancer retrying only what is safe to repeat, no read
through it older than a PATCH acknowledged through it, and its own answers readable by a page."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from e2e_support import FINDINGS, PRODUCTION, Project, Timer, free_ports, health, request, wait_for
from fleet_support import assert_only_safe_requests_are_retried, assert_reads_follow_patches, lb_counter

REPLICAS = 3
ALLOWED_ORIGIN = "https://app.example.test"
OTHER_ORIGIN = "http://localhost:5173"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def fleet(project: Project) -> Project:
    project.make("down")
    port, prometheus = free_ports(2, project.ports)
    project.variables.update(
        API_PORT=str(port), API_REPLICAS=str(REPLICAS), PROMETHEUS_PORT=str(prometheus), COMPOSE_PROFILES="monitoring"
    )
    # In .env, where an operator sets it: the replicas and the load balancer read the one value.
    project.make(".env")
    origins = project.env_file().get("CORS_ALLOWED_ORIGINS", "")
    # Two origins: a comma-separated list, as operators write it (the balancer once failed on it).
    project.set_env("CORS_ALLOWED_ORIGINS", f"{OTHER_ORIGIN},{ALLOWED_ORIGIN}")
    with Timer(f"API_REPLICAS={REPLICAS} make up (monitoring profile)"):
        project.make("up")
    yield project
    project.make("down")
    project.set_env("CORS_ALLOWED_ORIGINS", origins)
    for name in ("API_REPLICAS", "PROMETHEUS_PORT", "COMPOSE_PROFILES"):
        project.variables.pop(name)


def port(project: Project) -> int:
    return int(project.variables["API_PORT"])


def psql(project: Project, sql: str) -> str:
    env = project.env_file()
    return project.compose(
        PRODUCTION, "exec", "-T", "db", "psql", "-v", "ON_ERROR_STOP=1", "-U", env["DB_USER"], "-d", env["DB_NAME"],
        "-Atc", sql,
    ).stdout  # fmt: skip


def lb_metrics(project: Project) -> str:
    script = 'exec 3<>/dev/tcp/127.0.0.1/8404 && printf "GET /metrics HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3'
    return project.compose(PRODUCTION, "exec", "-T", "lb", "bash", "-c", script).stdout


def test_three_healthy_replicas_serve_every_route_behind_the_one_published_port(fleet: Project) -> None:
    replicas = fleet.containers("api")
    assert len(replicas) == REPLICAS and all(health(r) == "healthy" for r in replicas)
    assert health(fleet.container("lb")) == "healthy"
    published = {
        c["Config"]["Labels"]["com.docker.compose.service"]
        for c in fleet.containers()
        if c["HostConfig"]["PortBindings"]
    }
    assert published == {"lb", "prometheus"}, published
    assert fleet.container("prometheus")["HostConfig"]["PortBindings"]["9090/tcp"][0]["HostIp"] == "127.0.0.1"

    api = port(fleet)
    user = request(api, "POST", "/v1/users", {"name": "Ada", "email": "ada-fleet@example.com"})
    assert user.status == 201, user.body
    path = user.headers["location"]
    assert request(api, "GET", path).json()["name"] == "Ada"
    assert user.json()["id"] in [u["id"] for u in request(api, "GET", "/v1/users?limit=100").json()["items"]]
    assert request(api, "PATCH", path, {"name": "Ada King"}).json()["name"] == "Ada King"
    assert request(api, "DELETE", path).status == 204
    assert request(api, "GET", path).status == 404
    served = Counter(request(api, "GET", "/ready").headers["x-served-by"] for _ in range(30))
    assert len(served) == REPLICAS and min(served.values()) >= 5, served
    assert lb_counter(lb_metrics(fleet), "haproxy_backend_active_servers") == REPLICAS
    FINDINGS["fleet (compose): replicas answering"] = dict(sorted(served.items()))


def test_the_published_port_keeps_metrics_inside_and_passes_the_replicas_cors_untouched(fleet: Project) -> None:
    api = port(fleet)
    metrics = request(api, "GET", "/metrics")
    assert metrics.status == 404 and metrics.headers["content-type"] == "application/problem+json", metrics
    assert b"gravity_" not in metrics.body
    # A value HAProxy's `hdr` would split at its comma ("ok-1", then `"x y`): the balancer's own
    # answer names a fresh id, as a replica would, never the unchecked tail.
    forged = request(api, "GET", "/metrics", headers={"X-Request-Id": 'ok-1, "x y'})
    assert forged.status == 404 and re.fullmatch(UUID, forged.headers["x-request-id"]), forged.headers
    allowed = request(api, "GET", "/v1/users", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.status == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = request(api, "GET", "/v1/users", headers={"Origin": "https://elsewhere.example"})
    assert other.status == 200 and "access-control-allow-origin" not in other.headers, other.headers


def test_prometheus_scrapes_every_replica_and_evaluates_the_alert_rules(fleet: Project) -> None:
    prometheus = int(fleet.variables["PROMETHEUS_PORT"])

    def replicas_up() -> bool:
        targets = request(prometheus, "GET", "/api/v1/targets?state=active").json()["data"]["activeTargets"]
        return sum(t["labels"]["job"] == "gravity-bff" and t["health"] == "up" for t in targets) == REPLICAS

    seconds = wait_for("Prometheus scrapes the three replicas", replicas_up, timeout=90, interval=2)
    groups = request(prometheus, "GET", "/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 10 and all(rule["health"] == "ok" for rule in rules), rules
    FINDINGS["fleet (compose): Prometheus"] = (
        f"{REPLICAS} replicas scraped after {seconds:.0f} s, {len(rules)} alert rules healthy"
    )


def test_the_load_balancer_retries_a_request_only_when_repeating_it_is_safe(fleet: Project) -> None:
    frozen = fleet.containers("api")[0]["Id"]
    with Timer("a replica frozen: creates with and without an Idempotency-Key"):
        found = assert_only_safe_requests_are_retried(
            port(fleet),
            pause=lambda: fleet.run("docker", "pause", frozen),
            unpause=lambda: fleet.run("docker", "unpause", frozen),
            psql=lambda sql: psql(fleet, sql),
        )
    FINDINGS["fleet (compose): retries"] = found


def test_no_read_through_the_load_balancer_is_older_than_an_acknowledged_patch(fleet: Project) -> None:
    wait_for(
        "every replica is back in the pool",
        lambda: lb_counter(lb_metrics(fleet), "haproxy_backend_active_servers") == REPLICAS,
        30,
    )
    reads, served = assert_reads_follow_patches(port(fleet))
    assert len(served) == REPLICAS, served
    FINDINGS["fleet (compose): PATCH then reads"] = f"{reads} reads over {REPLICAS} replicas, none older than its PATCH"


def test_with_every_replica_stopped_a_write_without_a_key_is_told_it_reached_none(fleet: Project) -> None:
    fleet.compose(PRODUCTION, "stop", "api", timeout=120)
    wait_for(
        "no replica left in the pool", lambda: lb_counter(lb_metrics(fleet), "haproxy_backend_active_servers") == 0, 30
    )
    headers = {"X-Request-Id": "fleet-none-1", "Origin": ALLOWED_ORIGIN}
    answer = request(port(fleet), "POST", "/v1/users", {"name": "nobody"}, headers)
    assert answer.status == 503 and answer.headers["content-type"] == "application/problem+json"
    assert "a write without an Idempotency-Key reached none and was not carried out" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "1" and answer.headers["x-request-id"] == "fleet-none-1"
    # A page can read it: CORS headers of the balancer's own, as docs/DEPLOY.md says.
    assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN, answer.headers
    exposed = {name.strip() for name in answer.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "x-request-id"} <= exposed, exposed
    FINDINGS["fleet (compose): no replica"] = (
        "503 problem+json, a keyless write reached none, Retry-After 1, the client's X-Request-Id, readable by a page"
    )
