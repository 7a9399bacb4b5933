"""What the Compose Specification's schema cannot see in docker-compose*.yml."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import compose_model
from containers_support import (
    ALL_COMPOSE_FILES,
    APP_IMAGE_NAME,
    DEVELOPMENT,
    PRODUCTION,
    REPO,
    TESTING,
    embedded_files,
    is_app_service,
)

# --- schema -------------------------------------------------------------------------------------


def schema_errors(spec: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(spec)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", ALL_COMPOSE_FILES, ids=lambda p: p.name)
def test_each_compose_file_alone_matches_the_compose_spec(path: Path, compose_spec, example_env) -> None:
    assert schema_errors(compose_spec, compose_model.load_yaml(path)) == []
    # As compose reads it, too: interpolated ("8080:8080" rather than "${API_PORT:-8080}:8080").
    assert schema_errors(compose_spec, compose_model.load_model([path], example_env)) == []


def test_production_and_development_merged_match_the_compose_spec(compose_spec, development) -> None:
    assert schema_errors(compose_spec, development) == []


def test_the_schema_in_use_rejects_an_invalid_service(compose_spec) -> None:
    # Guards against validating with an empty or wrong schema, which would accept anything.
    broken = {"services": {"api": {"image": "x", "ports": 8080, "restart_policy": "always"}}}
    assert len(schema_errors(compose_spec, broken)) >= 2


# --- every file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_COMPOSE_FILES, ids=lambda p: p.name)
def test_no_file_fixes_container_names_or_uses_the_obsolete_version_key(path: Path) -> None:
    document = compose_model.load_yaml(path)
    assert "version" not in document, "`version:` is obsolete in Compose v2"
    for name, service in document.get("services", {}).items():
        # A fixed container_name breaks `--scale` and collides between checkouts.
        assert "container_name" not in (service or {}), f"{path.name}: {name} sets container_name"


@pytest.mark.parametrize("model_name", ["production", "development", "testing"])
def test_every_healthcheck_of_the_shell_less_app_image_is_exec_form(model_name: str, request) -> None:
    model = request.getfixturevalue(model_name)
    for name, service in model["services"].items():
        if not is_app_service(service):
            continue
        healthcheck = service.get("healthcheck", {})
        if healthcheck.get("disable"):
            continue
        test = healthcheck.get("test")
        assert isinstance(test, list) and test[0] == "CMD", (
            f"{model_name}: {name}'s healthcheck must be exec form ['CMD', ...]: the image has no shell, got {test!r}"
        )
        assert "--health" in test, f"{model_name}: {name}'s healthcheck must use the binary's --health"


@pytest.mark.parametrize("model_name", ["production", "development", "testing"])
def test_no_healthcheck_needs_docker_25(model_name: str, request) -> None:
    # compose refuses start_interval on engines older than 25 (still shipped by distributions).
    for name, service in request.getfixturevalue(model_name)["services"].items():
        assert "start_interval" not in service.get("healthcheck", {}), name


@pytest.mark.parametrize("model_name", ["production", "development", "testing"])
def test_every_named_volume_and_network_used_is_declared(model_name: str, request) -> None:
    model = request.getfixturevalue(model_name)
    declared_volumes = set(model.get("volumes") or {})
    declared_networks = set(model.get("networks") or {}) | {"default"}
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            source = named_volume_source(volume)
            if source is not None:
                assert source in declared_volumes, f"{model_name}: {name} mounts undeclared volume {source!r}"
        networks = service.get("networks", [])
        for network in networks if isinstance(networks, list) else networks.keys():
            assert network in declared_networks, f"{model_name}: {name} joins undeclared network {network!r}"


@pytest.mark.parametrize("model_name", ["production", "development", "testing"])
def test_every_depends_on_names_a_service_of_the_same_model(model_name: str, request) -> None:
    model = request.getfixturevalue(model_name)
    for name, service in model["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in model["services"], f"{model_name}: {name} depends on unknown {dependency}"


@pytest.mark.parametrize("path", [PRODUCTION, DEVELOPMENT], ids=lambda p: p.name)
def test_every_variable_the_stack_interpolates_is_in_env_example_or_has_a_default(path: Path, example_env) -> None:
    text = path.read_text(encoding="utf-8").replace("$$", "")
    for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-)?", text):
        name, has_default = match.group(1), match.group(2)
        assert has_default or name in example_env, (
            f"{path.name} uses ${{{name}}} without a default and .env.example lacks it"
        )


# --- production: docker-compose.yml ------------------------------------------------------------------


def test_api_waits_for_migrate_to_complete_and_for_healthy_db_and_cache(production) -> None:
    assert production["services"]["api"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
        "cache": {"condition": "service_healthy"},
    }


def test_migrate_waits_for_a_healthy_db(production) -> None:
    assert production["services"]["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_migrate_runs_the_api_image_once_against_db_5432(production) -> None:
    api, migrate = production["services"]["api"], production["services"]["migrate"]
    # The very image api builds: same tag, built once (two builds of one tag can collide), and
    # never pulled from a registry in its place.
    assert migrate["image"] == api["image"] and "build" in api
    assert "build" not in migrate
    assert migrate["pull_policy"] == "never"
    assert migrate["command"] == ["migrate", "up"]
    assert migrate["environment"]["DB_HOST"] == "db"
    assert migrate["environment"]["DB_PORT"] == "5432"
    assert migrate["restart"] == "no"
    assert migrate["env_file"] == [".env"]


def test_api_is_the_runtime_stage_of_this_repos_dockerfile(production, dockerfile) -> None:
    build = production["services"]["api"]["build"]
    assert build["context"] == "."
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert build["target"] == "runtime"
    dockerfile.stage("runtime")
    assert production["services"]["api"]["image"].startswith(APP_IMAGE_NAME + ":")


def test_api_is_hardened(production) -> None:
    api = production["services"]["api"]
    assert api["read_only"] is True
    assert api["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in api["security_opt"]
    assert api["restart"] == "unless-stopped"
    assert "privileged" not in api and "cap_add" not in api


def test_api_listens_on_8080_inside_and_api_port_is_the_load_balancers_host_port(raw, production) -> None:
    api = production["services"]["api"]
    assert api["environment"]["API_PORT"] == "8080"
    assert "ports" not in api, "the replicas are reached through lb only"
    assert raw["docker-compose.yml"]["services"]["lb"]["ports"] == ["${API_BIND:-127.0.0.1}:${API_PORT:-8080}:8080"]
    other = compose_model.load_model(
        [PRODUCTION], {"API_PORT": "9000", "API_REPLICAS": "3", "DB_USER": "u", "DB_PASSWORD": "p", "DB_NAME": "n"}
    )
    assert other["services"]["lb"]["ports"] == ["127.0.0.1:9000:8080"]
    assert other["services"]["api"]["environment"]["API_PORT"] == "8080"
    assert other["services"]["api"]["deploy"]["replicas"] == "3"
    assert production["services"]["api"]["deploy"]["replicas"] == "1", "one replica unless API_REPLICAS says more"


def test_api_reaches_db_and_cache_by_service_name_on_their_container_ports(production) -> None:
    environment = production["services"]["api"]["environment"]
    assert (environment["DB_HOST"], environment["DB_PORT"]) == ("db", "5432")
    assert (environment["REDIS_HOST"], environment["REDIS_PORT"]) == ("cache", "6379")


def test_api_and_migrate_read_settings_from_dot_env(production) -> None:
    for name in ("api", "migrate"):
        assert production["services"][name]["env_file"] == [".env"]


def test_api_stop_grace_period_exceeds_the_shutdown_grace(production, example_env) -> None:
    grace = production["services"]["api"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > int(example_env["SHUTDOWN_GRACE_SECONDS"])


def test_the_load_balancer_is_published_on_loopback_unless_api_bind_names_an_address(production, development) -> None:
    # A new .env turns authentication off, and Docker's published ports bypass host firewalls (ufw).
    for model in (production, development):
        assert model["services"]["lb"]["ports"] == ["127.0.0.1:8080:8080"]
    every_interface = compose_model.load_model(
        [PRODUCTION], {"API_BIND": "0.0.0.0", "DB_USER": "u", "DB_PASSWORD": "p", "DB_NAME": "n"}
    )
    assert every_interface["services"]["lb"]["ports"] == ["0.0.0.0:8080:8080"]
    env_example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert "API_BIND" in env_example and "API_BIND" in (REPO / "docs" / "CONTAINERS.md").read_text(encoding="utf-8")


def test_production_publishes_the_load_balancer_and_nothing_else_beyond_loopback(production) -> None:
    for name in ("api", "db", "cache"):
        assert "ports" not in production["services"][name], f"{name} must not be reachable from the host in production"
    published = sorted(name for name, service in production["services"].items() if service.get("ports"))
    assert published == ["lb", "prometheus"]
    # Prometheus is optional (a profile) and its dashboard is for this machine only.
    prometheus = production["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert all(str(port).startswith("127.0.0.1:") for port in prometheus["ports"])


def test_db_is_postgres_15_with_credentials_from_env_a_named_volume_and_a_tcp_health_check(
    raw, production, example_env
) -> None:
    db_raw = raw["docker-compose.yml"]["services"]["db"]
    db = production["services"]["db"]
    assert db["image"] == "postgres:15-alpine"
    for postgres_name, setting in [
        ("POSTGRES_USER", "DB_USER"),
        ("POSTGRES_PASSWORD", "DB_PASSWORD"),
        ("POSTGRES_DB", "DB_NAME"),
    ]:
        assert db_raw["environment"][postgres_name].startswith("${" + setting)
        assert db["environment"][postgres_name] == example_env[setting]
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert "pgdata" in production["volumes"]
    test = db["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready" in test[1] and "--host=127.0.0.1" in test[1]


def test_compose_refuses_to_start_postgres_without_a_password() -> None:
    with pytest.raises(compose_model.InterpolationError, match="DB_PASSWORD"):
        compose_model.load_model([PRODUCTION], {"DB_USER": "u", "DB_NAME": "n"})


def test_cache_is_redis_7_and_healthchecked(production) -> None:
    cache = production["services"]["cache"]
    assert cache["image"] == "redis:7-alpine"
    assert "redis-cli ping" in cache["healthcheck"]["test"][1]


# The cache's command and healthcheck are shell scripts run inside redis:7-alpine; they are run
# here with /bin/sh against stand-ins for redis-server and redis-cli that record what they got.
def _run_in_fake_redis_image(tmp_path: Path, script: str, redis_password: str | None) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "record.json"
    for tool in ("redis-server", "redis-cli"):
        stub = bin_dir / tool
        stub.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            "stdin = sys.stdin.read() if sys.argv[1:2] == ['-'] else None\n"
            f"json.dump({{'tool': {tool!r}, 'argv': sys.argv[1:], 'stdin': stdin, 'auth': os.environ.get('REDISCLI_AUTH')}}, open({str(record)!r}, 'w'))\n"
            "print('PONG')\n"
        )
        stub.chmod(0o755)
    environment = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if redis_password is not None:
        environment["REDIS_PASSWORD"] = redis_password
    completed = subprocess.run(["/bin/sh", "-c", script], env=environment, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    return json.loads(record.read_text())


@pytest.mark.parametrize("password", ["s3cret with spaces & $igns", 'a "quoted\\ one', "", None])
def test_cache_requires_a_password_exactly_when_redis_password_is_set(tmp_path, production, password) -> None:
    command = production["services"]["cache"]["command"]
    assert command[:2] == ["sh", "-c"]
    # The container sees REDIS_PASSWORD through the service's environment, filled from .env.
    assert production["services"]["cache"]["environment"]["REDIS_PASSWORD"] == ""
    recorded = _run_in_fake_redis_image(tmp_path, command[2], password)
    argv = recorded["argv"]
    assert recorded["tool"] == "redis-server"
    assert argv[argv.index("--save") + 1] == "" and argv[argv.index("--appendonly") + 1] == "no"
    assert "--requirepass" not in argv
    if password:
        # On stdin, as Redis reads a quoted configuration value: never among the arguments.
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        assert argv[0] == "-" and recorded["stdin"] == f'requirepass "{escaped}"\n'
        assert not any(password in argument for argument in argv)
    else:
        assert argv[0] == "--save" and recorded["stdin"] is None


@pytest.mark.parametrize("password", ["s3cret", ""])
def test_cache_healthcheck_authenticates_exactly_when_redis_password_is_set(tmp_path, production, password) -> None:
    recorded = _run_in_fake_redis_image(tmp_path, production["services"]["cache"]["healthcheck"]["test"][1], password)
    assert recorded["tool"] == "redis-cli" and recorded["argv"] == ["ping"]
    assert recorded["auth"] == (password or None)


def test_cache_data_dir_is_a_tmpfs_so_no_anonymous_volume_outlives_a_container(production) -> None:
    # redis images declare VOLUME /data; without a mount there every container gets an anonymous
    # volume that `docker compose down` (without -v) leaves behind.
    assert any(str(entry).split(":")[0] == "/data" for entry in production["services"]["cache"]["tmpfs"])


def test_cache_runs_unprivileged_as_a_bounded_cache(production) -> None:
    cache = production["services"]["cache"]
    # The sh -c command bypasses the entrypoint's drop to the redis user, so compose sets it.
    assert cache["user"] == "redis"
    script = cache["command"][2]
    assert "--maxmemory " in script and "--maxmemory-policy allkeys-lfu" in script


# --- development: docker-compose.yml + docker-compose.dev.yml -----------------------------------------


def test_dev_api_bind_mounts_the_source_and_hot_reloads_with_polling(development) -> None:
    api = development["services"]["api"]
    assert {"type": "bind", "source": ".", "target": "/app"} in api["volumes"]
    command = api["command"]
    # scripts/dev-watch.sh runs `cargo watch` with the remaining arguments (and stops it cleanly).
    assert command[0] == "scripts/dev-watch.sh" and "--poll" in command
    assert command[command.index("-x") + 1] == "run"
    script = (REPO / command[0]).read_text(encoding="utf-8")
    assert 'cargo watch "$@"' in script
    assert (REPO / command[0]).stat().st_mode & 0o111, f"{command[0]} must be executable"


def test_dev_cargo_watch_watches_paths_that_exist_and_everything_the_build_embeds(development) -> None:
    command = development["services"]["api"]["command"]
    watched = [command[i + 1] for i, word in enumerate(command) if word == "-w"]
    for path in watched:
        assert (REPO / path).exists(), f"cargo watch -w {path}: no such path in the repo"
    # Files pulled into the binary at compile time must trigger a rebuild when they change.
    for embedded in embedded_files():
        relative = embedded.relative_to(REPO).as_posix()
        assert any(relative == w or relative.startswith(w.rstrip("/") + "/") for w in watched), (
            f"{relative} is compiled into the binary but cargo watch does not watch it"
        )


def test_dev_compose_runs_the_same_watch_command_as_the_dev_image(development, dockerfile) -> None:
    # `docker run gravity-bff:dev` and `make dev` must behave alike.
    (cmd,) = dockerfile.stage("dev").all("CMD")
    assert development["services"]["api"]["command"] == cmd.exec_form()


def test_dev_builds_the_dev_stage_under_its_own_tag(development, production, dockerfile) -> None:
    api, migrate = development["services"]["api"], development["services"]["migrate"]
    assert api["build"]["target"] == "dev" and "build" not in migrate
    assert migrate["image"] == api["image"]
    assert api["image"] != production["services"]["api"]["image"], "a dev build must not overwrite the production tag"
    dev_stage = dockerfile.stage("dev")
    assert any("cargo-watch" in run.arguments for run in dev_stage.all("RUN"))


def test_dev_keeps_the_target_dir_and_registry_in_named_volumes(development, dockerfile) -> None:
    target_dir = dockerfile.stage("dev").env()["CARGO_TARGET_DIR"]
    for name in ("api", "migrate"):
        volumes = development["services"][name]["volumes"]
        mounts = {compose_model.volume_target(v): v for v in volumes}
        assert target_dir in mounts and str(mounts[target_dir]).split(":")[0] in development["volumes"]
        assert "/usr/local/cargo/registry" in mounts
        assert not target_dir.startswith("/app"), "the target dir must not live in the bind-mounted source"
    healthcheck = development["services"]["api"]["healthcheck"]["test"]
    assert healthcheck == ["CMD", f"{target_dir}/debug/gravity-bff", "--health"]


def test_dev_logs_at_debug_level_and_migrates_from_the_same_source(development) -> None:
    api, migrate = development["services"]["api"], development["services"]["migrate"]
    assert api["environment"]["LOG_LEVEL"] == "debug"
    assert "RUST_LOG" not in api["environment"], "the binary reads LOG_LEVEL only"
    assert migrate["command"][:2] == ["cargo", "run"] and migrate["command"][-2:] == ["migrate", "up"]
    assert migrate["volumes"] == api["volumes"]
    assert api["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_dev_publishes_db_and_cache_on_loopback_only_on_ports_of_their_own(raw, development, example_env) -> None:
    assert development["services"]["db"]["ports"] == ["127.0.0.1:15432:5432"]
    assert development["services"]["cache"]["ports"] == ["127.0.0.1:16379:6379"]
    # Settable, and not the variables `make run` connects with (nor the ports a local server uses).
    raw_dev = raw["docker-compose.dev.yml"]["services"]
    assert raw_dev["db"]["ports"] == ["127.0.0.1:${DEV_DB_PORT:-15432}:5432"]
    assert raw_dev["cache"]["ports"] == ["127.0.0.1:${DEV_REDIS_PORT:-16379}:6379"]
    assert {example_env["DB_PORT"], example_env["REDIS_PORT"]}.isdisjoint({"15432", "16379"})


def test_migrate_gets_a_port_of_its_own_since_api_port_in_env_is_the_host_side(production) -> None:
    # migrate reads every setting, and API_PORT in .env is the load balancer's host port.
    assert production["services"]["migrate"]["environment"]["API_PORT"] == "8080"


# --- tests: docker-compose.test.yml ------------------------------------------------------------------


def test_test_file_is_self_contained(raw, testing) -> None:
    text = TESTING.read_text(encoding="utf-8")
    assert "${" not in text and "$" not in text.replace("$$", ""), "no interpolation: it must not need .env"
    assert raw["docker-compose.test.yml"]["name"] == "gravity-bff-test"
    assert set(testing["services"]) == {"db_test", "cache_test"}
    for name, service in testing["services"].items():
        assert "build" not in service and "env_file" not in service and "extends" not in service, name
        assert service["networks"] == ["test"], name
    assert "test" in testing["networks"]


def test_test_services_use_the_agreed_ports_and_credentials(testing) -> None:
    db, cache = testing["services"]["db_test"], testing["services"]["cache_test"]
    assert db["image"] == "postgres:15-alpine" and cache["image"] == "redis:7-alpine"
    assert db["ports"] == ["127.0.0.1:5433:5432"]
    assert cache["ports"] == ["127.0.0.1:6380:6379"]
    assert db["environment"] == {"POSTGRES_USER": "test", "POSTGRES_PASSWORD": "test", "POSTGRES_DB": "test"}


def test_test_postgres_keeps_its_data_in_memory(testing) -> None:
    db = testing["services"]["db_test"]
    assert "/var/lib/postgresql/data" in db["tmpfs"]
    assert "volumes" not in db


def test_test_services_have_healthchecks_for_make_test_up_to_wait_on(testing) -> None:
    db, cache = testing["services"]["db_test"], testing["services"]["cache_test"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(cache["healthcheck"]["test"])


# --- the Makefile's docker targets -------------------------------------------------------------------


def make_dry_run(target: str) -> str:
    completed = subprocess.run(["make", "-n", "-s", target], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("up", ["scripts/stack.sh", "up"]),
        ("dev", ["scripts/stack.sh", "dev"]),
        ("down", ["scripts/compose.sh", "--profile", "monitoring", "down"]),
        ("ps", ["scripts/compose.sh", "ps", "-a"]),
        ("logs", ["scripts/compose.sh", "logs", "-f"]),
        ("swarm-up", ["scripts/swarm.sh", "up"]),
        ("swarm-down-volumes", ["scripts/swarm.sh", "down-volumes"]),
        ("test-up", ["scripts/compose.sh", "-p", "gravity-bff-test", "-f", "docker-compose.test.yml", "up", "-d"]),
        ("test-down", ["scripts/compose.sh", "-p", "gravity-bff-test", "-f", "docker-compose.test.yml", "down", "-v"]),
    ],
)
def test_make_targets_run_compose_v2_through_the_wrapper(target: str, expected: list[str]) -> None:
    commands = [shlex.split(line) for line in make_dry_run(target).splitlines() if "scripts/" in line]
    assert any(command[: len(expected)] == expected for command in commands), commands


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_prints_no_make_syntax_and_lists_the_container_targets() -> None:
    completed = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0 and "$(" not in completed.stdout, completed.stdout
    for target in ("up", "dev", "down-volumes", "image", "test-containers", "swarm-up", "swarm-down", "swarm-ps"):
        assert f" {target} " in completed.stdout.replace("\x1b[0m", " ").replace("\x1b[1m", " "), target


def test_the_api_image_is_built_with_the_source_revision(raw, dockerfile) -> None:
    # scripts/compose.sh sets REVISION to the checked-out commit; build.rs reads it.
    assert raw["docker-compose.yml"]["services"]["api"]["build"]["args"] == {
        "REVISION": "${REVISION:-unknown}",
        "VERSION": "${VERSION:-dev}",
    }
    builder = dockerfile.stage("builder")
    assert any(arg.arguments.startswith("REVISION") for arg in builder.all("ARG"))
    assert any('REVISION="$REVISION" cargo build' in run.arguments for run in builder.all("RUN"))


def test_the_project_name_is_overridable_and_documented() -> None:
    # Compose takes COMPOSE_PROJECT_NAME (environment or .env) over `name:`; no make target may pin
    # a name of its own, or a second clone could not get a stack of its own.
    env_example = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    assert "# COMPOSE_PROJECT_NAME=gravity-bff" in env_example
    assert "COMPOSE_PROJECT_NAME" in (REPO / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    assert "COMPOSE_PROJECT_NAME" in (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    for target in ("up", "dev", "down", "down-volumes", "logs", "ps"):
        for command in make_dry_run(target).splitlines():
            assert not {"-p", "--project-name"} & set(shlex.split(command)), (target, command)
    for script in ("stack.sh", "stack-explain.sh"):
        assert "--project-name" not in (REPO / "scripts" / script).read_text(encoding="utf-8"), script


def test_env_example_documents_the_dev_ports_and_image_tags() -> None:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    for line in ("# DEV_DB_PORT=15432", "# DEV_REDIS_PORT=16379", "# IMAGE_TAG=latest", "# DEV_IMAGE_TAG=dev"):
        assert line in text.splitlines(), line


# --- helpers -----------------------------------------------------------------------------------------


def named_volume_source(volume: Any) -> str | None:
    """The named volume a service mount uses, or None for bind mounts, tmpfs and anonymous volumes."""
    if isinstance(volume, dict):
        return volume.get("source") if volume.get("type", "volume") == "volume" else None
    parts = str(volume).split(":")
    if len(parts) == 1 or parts[0].startswith((".", "/", "~", "$")):
        return None
    return parts[0]
