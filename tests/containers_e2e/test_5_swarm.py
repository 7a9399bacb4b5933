"""`make swarm-up`: the stack on a real orchestrator, a one-node Docker Swarm (these tests make the
engine one when it is not, and leave it again), with authentication on: the issuer's key set
deployed as a config (AUTH_JWKS_FILE, tools/dev_issuer.py's key), and every request, the load's
too, with a token of both scopes. Under a steady load of reads and keyed writes
through the load balancer (tools/fleet_load.py, 200 requests/s): a rolling update of every
replica, an update whose replicas never get ready (rolled back), a replica killed with SIGKILL, scaling 3 → 5 → 2 and Redis killed and restarted. After
each, every answer is held against the database. In order; each test leaves three replicas.
Everything the stack made (services, containers, networks, volumes, secrets, configs, image tags)
is removed at the end, pass or fail, and checked gone."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import dev_issuer
from e2e_support import FINDINGS, Project, Timer, bearer_token, docker, free_ports, request, wait_for
from fleet_support import (
    assert_database_agrees,
    assert_every_request_succeeded,
    assert_reads_follow_patches,
    lb_counter,
    record,
    under_load,
)
from swarm_support import Stack, Swarm

REPLICAS = 3
READS = {"get", "head", "list"}
ISSUER, AUDIENCE = "https://issuer.gravity.test", "gravity-bff"


@pytest.fixture(scope="module")
def stack(project: Project) -> Iterator[Stack]:
    swarm = Swarm.ensure()
    (port,) = free_ports(1, project.ports)
    # A name of its own: a Compose project's network would take the stack's `<name>_default`.
    stack = Stack(project, name=f"{project.name}-swarm", port=port)
    keys = project.directory / "target" / "swarm-issuer"
    dev_issuer.make_keys(keys)
    claims = dev_issuer.claims(ISSUER, AUDIENCE, "users:read users:write", "fleet-tests", 3600, int(time.time()))
    bearer_token(dev_issuer.token(keys, claims))
    settings = {
        "STACK_NAME": stack.name, "API_PORT": str(port), "API_REPLICAS": str(REPLICAS),
        "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_JWKS_FILE": str(keys / "jwks.json"),
    }  # fmt: skip
    try:
        with Timer(f"make swarm-up ({REPLICAS} replicas: migrations first, then the api)"):
            project.make("swarm-up", **settings)
        yield stack
    finally:
        try:
            project.make("swarm-down-volumes", check=False, **settings)
            for image in stack.leftovers().get("images", []):
                docker("image", "rm", image)
            left = stack.leftovers()
        finally:
            bearer_token(None)
            swarm.leave()
        assert not left, f"left behind by the Swarm stack: {left}"
        FINDINGS["fleet (swarm): left behind"] = "nothing" + (
            " (and the engine left the swarm it joined)" if swarm.joined else ""
        )


def retries(stack: Stack) -> tuple[float, float]:
    metrics = stack.lb_metrics()
    return (
        lb_counter(metrics, "haproxy_backend_retry_warnings_total"),
        lb_counter(metrics, "haproxy_backend_redispatch_warnings_total"),
    )


def under_load_counting_retries(stack: Stack, action) -> tuple:
    before = retries(stack)
    tally, took = under_load(stack.port, action)
    after = retries(stack)
    return (
        tally,
        took,
        f"; the load balancer retried {after[0] - before[0]:.0f} and redispatched {after[1] - before[1]:.0f}",
    )


def test_the_stack_serves_through_the_load_balancer_with_passwords_read_from_secret_files(stack: Stack) -> None:
    stack.wait_for_fleet(REPLICAS)
    spec = stack.service("api")["Spec"]["TaskTemplate"]["ContainerSpec"]
    environment = dict(entry.split("=", 1) for entry in spec["Env"])
    assert environment["DB_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert environment["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
    assert "DB_PASSWORD" not in environment and "REDIS_PASSWORD" not in environment
    assert {secret["File"]["Name"] for secret in spec["Secrets"]} == {"db_password", "redis_password"}
    # Both servers require the passwords: "ok" for each means the files were read.
    assert request(stack.port, "GET", "/ready").json() == {
        "status": "ready", "postgres": "ok", "redis": "ok", "auth": "ok",
    }  # fmt: skip
    assert spec["Configs"][0]["File"]["Name"] == "/etc/gravity-bff/jwks.json", spec["Configs"]
    # Tokens are checked: one that is not the issuer's gets nothing.
    assert request(stack.port, "GET", "/v1/users", headers={"Authorization": "Bearer not-a-token"}).status == 401

    user = request(stack.port, "POST", "/v1/users", {"name": "Ada", "email": "ada-swarm@example.com"})
    assert user.status == 201, user.body
    path = user.headers["location"]
    assert request(stack.port, "GET", path).json()["name"] == "Ada"
    assert user.json()["id"] in [u["id"] for u in request(stack.port, "GET", "/v1/users?limit=100").json()["items"]]
    assert request(stack.port, "PATCH", path, {"name": "Ada King"}).json()["name"] == "Ada King"
    assert request(stack.port, "DELETE", path).status == 204
    assert request(stack.port, "GET", path).status == 404
    served = Counter(request(stack.port, "GET", "/ready").headers["x-served-by"] for _ in range(30))
    assert len(served) == REPLICAS and min(served.values()) >= 5, served
    FINDINGS["fleet (swarm): replicas answering"] = dict(sorted(served.items()))


def test_prometheus_scrapes_every_task_and_evaluates_the_alert_rules(stack: Stack) -> None:
    def get(path: str) -> dict:
        return json.loads(
            docker("exec", stack.one("prometheus"), "wget", "-q", "-O", "-", f"http://127.0.0.1:9090{path}")
        )

    def tasks_up() -> bool:
        targets = get("/api/v1/targets?state=active")["data"]["activeTargets"]
        return Counter(t["labels"]["job"] for t in targets if t["health"] == "up") == {
            "gravity-bff": REPLICAS, "haproxy": 1, "prometheus": 1,
        }  # fmt: skip

    seconds = wait_for("Prometheus scrapes every replica and the load balancer", tasks_up, timeout=90, interval=2)
    rules = [rule for group in get("/api/v1/rules")["data"]["groups"] for rule in group["rules"]]
    assert len(rules) >= 10 and all(rule["health"] == "ok" for rule in rules), rules
    FINDINGS["fleet (swarm): Prometheus"] = (
        f"every task scraped after {seconds:.0f} s, {len(rules)} alert rules healthy"
    )


def test_no_read_is_older_than_a_patch_acknowledged_before_it(stack: Stack) -> None:
    found: dict = {}

    def patch_then_read() -> None:
        found["reads"], found["served"] = assert_reads_follow_patches(stack.port)

    tally, took = under_load(stack.port, patch_then_read)
    assert len(found["served"]) == REPLICAS, found["served"]
    assert_every_request_succeeded(tally, "the load beside it")
    FINDINGS["fleet (swarm): PATCH then reads"] = (
        f"{found['reads']} reads in {took:.1f} s, none older than its PATCH, beside {tally.summary()}"
    )


def test_a_rolling_update_of_every_replica_fails_no_request_and_loses_no_write(stack: Stack) -> None:
    before = set(stack.containers("api"))
    tally, took, retried = under_load_counting_retries(
        stack, lambda: docker("service", "update", "--force", "--detach=false", f"{stack.name}_api", timeout=600)
    )
    stack.wait_for_fleet(REPLICAS)
    assert not before & set(stack.containers("api")), "some replica was not replaced"
    assert_every_request_succeeded(tally, "rolling update")
    rows = assert_database_agrees(tally, stack.psql)
    record(
        "rolling update of 3 replicas (start-first)", tally, took, f"{retried}; {rows} users checked in the database"
    )


def test_an_update_that_never_gets_ready_replaces_no_replica_and_is_rolled_back(stack: Stack) -> None:
    missing = "AUTH_JWKS_URL=file:///etc/gravity-bff/no-such-jwks.json"
    before = set(stack.containers("api"))

    def update() -> None:
        # Its tasks run and answer /health, but never hold the issuer's keys, so are never ready.
        docker("service", "update", "--detach", "--env-add", missing, f"{stack.name}_api")
        wait_for(
            "Swarm rolled the update back",
            lambda: (stack.service("api").get("UpdateStatus") or {}).get("State") == "rollback_completed",
            timeout=300,
        )

    tally, took, retried = under_load_counting_retries(stack, update)
    stack.wait_for_fleet(REPLICAS)
    assert missing not in stack.service("api")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert before == set(stack.containers("api")), "a replica was replaced by one that was never ready"
    assert_every_request_succeeded(tally, "an update that never gets ready")
    rows = assert_database_agrees(tally, stack.psql)
    record("an update that never gets ready, rolled back", tally, took, f"{retried}; {rows} users checked")


def test_a_replica_killed_with_sigkill_costs_no_idempotent_request_and_comes_back(stack: Stack) -> None:
    victim = stack.one("api")
    back: dict = {}

    def kill() -> None:
        docker("kill", "--signal", "KILL", victim)
        back["seconds"] = stack.wait_for_fleet(REPLICAS)

    tally, took, retried = under_load_counting_retries(stack, kill)
    assert victim not in stack.containers("api")
    assert_every_request_succeeded(tally, "a replica killed")
    rows = assert_database_agrees(tally, stack.psql)
    record(
        "SIGKILL of 1 of 3 replicas",
        tally,
        took,
        f"{retried}; back to {REPLICAS} in {back['seconds']:.1f} s; {rows} users checked",
    )


def test_scaling_3_to_5_to_2_fails_no_request(stack: Stack) -> None:
    def scale() -> None:
        for replicas in (5, 2):
            docker("service", "scale", "--detach=false", f"{stack.name}_api={replicas}", timeout=300)
            stack.wait_for_fleet(replicas)

    tally, took, retried = under_load_counting_retries(stack, scale)
    assert_every_request_succeeded(tally, "scaling 3 → 5 → 2")
    rows = assert_database_agrees(tally, stack.psql)
    record("scale 3 → 5 → 2", tally, took, f"{retried}; {rows} users checked")
    docker("service", "scale", "--detach=false", f"{stack.name}_api={REPLICAS}", timeout=300)
    stack.wait_for_fleet(REPLICAS)


def test_redis_killed_and_restarted_under_load_fails_no_read_and_every_write_tells_the_truth(stack: Stack) -> None:
    victim = stack.one("cache")
    back: dict = {}

    def kill_and_wait() -> None:
        docker("kill", "--signal", "KILL", victim)
        started = time.monotonic()

        def every_replica_uses_redis() -> bool:
            answers = [request(stack.port, "GET", "/ready").json() for _ in range(2 * REPLICAS)]
            return victim not in stack.containers("cache") and all(a.get("redis") == "ok" for a in answers)

        wait_for("Redis restarted and every replica using it again", every_replica_uses_redis, timeout=120)
        back["seconds"] = time.monotonic() - started

    tally, took, retried = under_load_counting_retries(stack, kill_and_wait)
    reads_failed = [o for o in tally.outcomes if o.kind in READS and o.verdict != "ok"]
    assert not reads_failed, f"{len(reads_failed)} reads failed: {tally.failures()}"
    # A write may be refused (nothing written) or have an unknown outcome while Redis is away,
    # said so in its answer; it may never fail otherwise.
    assert tally.count("failed") == 0, tally.failures()
    rows = assert_database_agrees(tally, stack.psql)
    writes = tally.count(kinds={"create", "patch", "delete"})
    record(
        "Redis SIGKILLed and restarted",
        tally,
        took,
        f"{retried}; Redis back and used by every replica after {back['seconds']:.1f} s; of {writes} writes "
        f"{tally.count('refused')} refused (nothing written), {tally.count('unknown')} outcome unknown; {rows} users checked",
    )
