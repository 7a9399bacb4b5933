"""The fleet's files beyond what `haproxy -c`, promtool and the Compose schema check: the load
balancer's settings (deploy/haproxy/haproxy.cfg) against the service and the orchestrators, the
Swarm stack (deploy/swarm/), and Prometheus's discovery of the replicas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import compose_model
from containers_support import REPO, contract_settings

HAPROXY = REPO / "deploy" / "haproxy" / "haproxy.cfg"
STACK = REPO / "deploy" / "swarm" / "stack.yml"
SETTINGS = REPO / "deploy" / "swarm" / "settings.env"
# The service answers every request within this deadline (docs/API.md, Operations: Timeouts).
SERVICE_DEADLINE_SECONDS = 10
STACK_ENV = {"API_IMAGE": "gravity-bff:new", "MIGRATE_IMAGE": "gravity-bff:new"}


def haproxy_sections() -> dict[str, list[str]]:
    """`section name` -> its directive lines, comments and blank lines dropped."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if raw[0].isspace():
            current.append(line)
        else:
            current = sections.setdefault(line, [])
    return sections


def directives(section: str, keyword: str) -> list[str]:
    return [line for line in haproxy_sections()[section] if line.split()[0] == keyword]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert match, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 0.001}[match.group(2)]


def timeout(section: str, name: str) -> float:
    (line,) = [line for line in directives(section, "timeout") if line.split()[1] == name]
    return seconds(line.split()[2])


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose_model.load_model([STACK], STACK_ENV)


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    return compose_model.parse_env_file(SETTINGS)


# --- the load balancer -----------------------------------------------------------------------------


def test_every_replica_is_found_through_dockers_dns_and_checked_on_ready() -> None:
    (nameserver,) = directives("resolvers docker", "nameserver")
    assert nameserver.split()[2] == "127.0.0.11:53"
    (template,) = directives("backend api", "server-template")
    _, prefix, slots, address = template.split()
    assert address == "api:8080" and int(slots) >= 10
    (defaults,) = directives("backend api", "default-server")
    for word in ("check", "resolvers docker", "init-addr none"):
        assert word in defaults, word
    assert directives("backend api", "option") and "option httpchk" in haproxy_sections()["backend api"]
    (send,) = directives("backend api", "http-check")[:1]
    assert "uri /ready" in send
    assert "http-check expect status 200" in haproxy_sections()["backend api"]


def test_only_a_request_safe_to_repeat_is_retried_after_it_may_have_reached_a_replica() -> None:
    backend = haproxy_sections()["backend api"]
    (retry_on,) = directives("backend api", "retry-on")
    kinds = retry_on.split()[1:]
    assert "conn-failure" in kinds
    # A status is a replica's answer: never retried (no codes, no all-retryable-errors).
    assert not [kind for kind in kinds if kind[0].isdigit() or kind == "all-retryable-errors"], kinds
    assert "acl safe_to_repeat method GET HEAD" in backend
    assert "acl safe_to_repeat req.hdr(idempotency-key) -m found" in backend
    assert "http-request disable-l7-retry unless safe_to_repeat" in backend
    assert [line for line in backend if line.startswith("option redispatch")]
    assert int(directives("backend api", "retries")[0].split()[1]) >= 2


def test_timeouts_fit_the_service_deadline_and_the_stop_grace_periods(stack) -> None:
    assert timeout("defaults", "server") > SERVICE_DEADLINE_SECONDS
    assert timeout("defaults", "connect") <= 2, "a vanished replica must be given up soon"
    (hard_stop,) = directives("global", "hard-stop-after")
    production = compose_model.load_model(
        [REPO / "docker-compose.yml"], compose_model.parse_env_file(REPO / ".env.example")
    )
    for lb in (production["services"]["lb"], stack["services"]["lb"]):
        assert seconds(hard_stop.split()[1]) < seconds(lb["stop_grace_period"]), "the engine's SIGKILL would come first"


def test_the_load_balancers_own_errors_are_problem_json_saying_whether_anything_was_written() -> None:
    errors = {line.split()[2]: line for line in directives("defaults", "http-error")}
    for status, sayings in {
        # Its last attempt was never sent, but a keyed write (retried after an empty response or a
        # timeout) may have reached a replica on an earlier one: never "nothing was written".
        "503": ("without an Idempotency-Key reached none", "outcome is unknown", "same Idempotency-Key"),
        "502": ("outcome of a write is unknown",),
        "504": ("outcome of a write is unknown",),
    }.items():
        assert "content-type application/problem+json" in errors[status], status
        assert all(words in errors[status] for words in sayings) and "X-Request-Id" in errors[status], status
    assert "nothing was written" not in errors["503"]


def max_connections(command: list[str]) -> int:
    (setting,) = re.findall(r"max_connections=(\d+)", " ".join(command))
    return int(setting)


def test_postgres_has_room_for_every_replica_slot_of_the_load_balancer(stack, settings) -> None:
    (template,) = directives("backend api", "server-template")
    slots = int(template.split()[2])
    compose = compose_model.load_model(
        [REPO / "docker-compose.yml"], compose_model.parse_env_file(REPO / ".env.example")
    )
    example = compose_model.parse_env_file(REPO / ".env.example")
    for name, model, values, surge in (("compose", compose, example, 0), ("swarm", stack, settings, 1)):
        per_replica = int(values["DB_POOL_SIZE"]) + int(values["DB_EXTRA_WRITE_CONNECTIONS"])
        needed = (slots + surge) * per_replica + 1  # + migrate
        allowed = max_connections(model["services"]["db"]["command"])
        assert needed <= allowed, (name, needed, allowed)


def test_the_ports_agree_between_haproxy_compose_swarm_and_prometheus(stack) -> None:
    assert "bind :8080" in haproxy_sections()["frontend api"]
    assert "bind :8404" in haproxy_sections()["frontend observability"]
    production = compose_model.load_model(
        [REPO / "docker-compose.yml"], compose_model.parse_env_file(REPO / ".env.example")
    )
    assert production["services"]["lb"]["ports"] == ["127.0.0.1:8080:8080"]
    (published,) = stack["services"]["lb"]["ports"]
    assert (published["target"], published["mode"]) == (8080, "host")
    for lb in (production["services"]["lb"], stack["services"]["lb"]):
        assert "/dev/tcp/127.0.0.1/8404" in lb["healthcheck"]["test"][3]
    compose_lb = production["services"]["lb"]
    assert compose_lb["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert "GET /ready " in compose_lb["healthcheck"]["test"][3], "make up --wait returns once a replica takes requests"
    assert "GET /alive " in stack["services"]["lb"]["healthcheck"]["test"][3], "Swarm restarts an unhealthy lb"


@pytest.mark.parametrize(("path", "names", "lb"), [
    (REPO / "deploy" / "prometheus" / "prometheus.yml", ["api"], {"static_configs": [{"targets": ["lb:8404"]}]}),
    (REPO / "deploy" / "swarm" / "prometheus.yml", ["tasks.api"], {"dns_sd_configs": [{"names": ["tasks.lb"], "type": "A", "port": 8404, "refresh_interval": "5s"}]}),
])  # fmt: skip
def test_prometheus_finds_every_replica_by_dns_and_loads_the_alerts(path: Path, names: list[str], lb: dict) -> None:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (discovery,) = jobs["gravity-bff"]["dns_sd_configs"]
    assert (discovery["names"], discovery["type"], discovery["port"]) == (names, "A", 8080)
    assert {k: v for k, v in jobs["haproxy"].items() if k != "job_name"} == lb


def test_compose_and_the_stack_mount_the_repositorys_files_where_the_images_read_them(stack) -> None:
    production = compose_model.load_model(
        [REPO / "docker-compose.yml"], compose_model.parse_env_file(REPO / ".env.example")
    )
    targets = {"haproxy": "/usr/local/etc/haproxy/haproxy.cfg", "prometheus": "/etc/prometheus/prometheus.yml"}
    for model, base in ((production, REPO), (stack, STACK.parent)):
        for service in ("lb", "prometheus"):
            for config in model["services"][service]["configs"]:
                assert (base / model["configs"][config["source"]]["file"]).is_file(), config
        mounted = {c["source"]: c["target"] for c in model["services"]["lb"]["configs"]}
        assert mounted == {"haproxy": targets["haproxy"]}


# --- the Swarm stack ---------------------------------------------------------------------------------


def test_every_service_resolves_by_dns_round_robin_and_has_a_memory_limit(stack) -> None:
    # No IPVS on some kernels (and no need for it): names resolve to each task.
    for name, service in stack["services"].items():
        assert service["deploy"].get("endpoint_mode", "dnsrr") == "dnsrr" and (
            name == "migrate" or "endpoint_mode" in service["deploy"]
        ), name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    published = [name for name, service in stack["services"].items() if service.get("ports")]
    assert published == ["lb"]


def test_the_api_rolls_one_replica_at_a_time_the_new_one_first_and_rolls_back_on_failure(stack, settings) -> None:
    api = stack["services"]["api"]
    update = api["deploy"]["update_config"]
    assert (update["parallelism"], update["order"], update["failure_action"]) == (1, "start-first", "rollback")
    assert api["deploy"]["rollback_config"]["order"] == "start-first"
    assert api["deploy"]["restart_policy"]["condition"] == "any"
    assert api["deploy"]["replicas"] == "3"
    # Started means ready once: a release that never gets ready replaces no replica.
    assert api["healthcheck"]["test"] == ["CMD", "/gravity-bff", "--health", "--started"]
    assert seconds(api["stop_grace_period"]) > int(settings["SHUTDOWN_GRACE_SECONDS"])
    assert api["read_only"] is True and api["cap_drop"] == ["ALL"]


def test_migrations_are_a_one_off_of_the_new_image_retried_only_on_failure(stack) -> None:
    migrate = stack["services"]["migrate"]
    assert migrate["command"] == ["migrate", "up"] and migrate["image"] == STACK_ENV["MIGRATE_IMAGE"]
    policy = migrate["deploy"]["restart_policy"]
    assert policy["condition"] in {"on-failure", "none"} and int(policy.get("max_attempts", 0)) <= 20
    assert migrate["environment"]["REDIS_HOST"] == ""


def test_passwords_are_docker_secrets_read_from_files_never_environment(stack, settings) -> None:
    assert all(secret["external"] is True for secret in stack["secrets"].values())
    for name in ("api", "migrate"):
        service = stack["services"][name]
        environment = {**settings, **service["environment"]}
        assert not {"DB_PASSWORD", "REDIS_PASSWORD"} & set(environment), name
        mounted = {f"/run/secrets/{secret}" for secret in service["secrets"]}
        files = {value for key, value in environment.items() if key.endswith("_PASSWORD_FILE")}
        assert files and files == mounted, name
    assert "db_password" in stack["services"]["db"]["command"][2]


def test_settings_env_holds_only_the_services_own_non_secret_settings(settings) -> None:
    assert set(settings) <= contract_settings(), set(settings) - contract_settings()
    assert not {"DB_PASSWORD", "REDIS_PASSWORD", "DB_HOST", "REDIS_HOST", "API_PORT"} & set(settings)


def test_the_stack_uses_the_images_of_the_compose_stack(stack) -> None:
    production = compose_model.load_model(
        [REPO / "docker-compose.yml"], compose_model.parse_env_file(REPO / ".env.example")
    )
    third_party = {s["image"] for s in production["services"].values() if not s["image"].startswith("gravity-bff:")}
    assert {s["image"] for s in stack["services"].values()} - {STACK_ENV["API_IMAGE"]} == third_party
    assert stack["networks"]["default"] == {"driver": "overlay", "attachable": True}
