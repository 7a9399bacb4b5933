"""`make dev`: the stack with hot reload, in the foreground, as a developer runs it.

It comes up healthy, served through the load balancer, with Postgres and Redis on host ports of
its own; an edit of a source file (the `/health` body, in the scratch copy) is rebuilt by
cargo-watch and served; Ctrl-C stops it with every container exiting 0 and the api draining first
(scripts/stack.sh stops them with one `docker compose stop`), and make reports no error. Started
again, a SIGTERM to make's whole process group (what `timeout`, an IDE's stop button or a
supervisor sends, and make passes on a second time) stops it the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from e2e_support import (
    DEVELOPMENT,
    FINDINGS,
    TIMINGS,
    Project,
    Timer,
    answers,
    free_ports,
    health,
    postgres_answers,
    redis_ping,
    request,
    wait_for,
)

# With an empty build cache: the dev image (cargo-watch, the dependencies' debug build), then this crate.
FIRST_BUILD_LIMIT = 20 * 60
RELOAD_LIMIT = 180
HEALTH_SOURCE = "src/handlers/system.rs"
HEALTH_BODY = b'{"status":"ok"}'


def default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start_make_dev(project: Project, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            ["make", "--no-print-directory", "dev"],
            cwd=project.directory,
            env=project.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            # A shell starts a command from the terminal with Ctrl-C's default action; whoever ran
            # these tests may have started them with SIGINT ignored (any `cmd &` of a script does),
            # which make and bash inherit and then can neither handle nor reset.
            preexec_fn=default_interrupt,
        )


def wait_until_healthy(project: Project, dev: subprocess.Popen, log_path: Path) -> None:
    # lb starts once the api is healthy; HAProxy, PID 1 in its container, ignores a stop signal
    # that comes before its handlers are in place, so a stop that early would wait out the grace.
    def api_and_lb_healthy() -> bool:
        if dev.poll() is not None:
            raise AssertionError(f"make dev exited {dev.returncode}:\n{log_path.read_text()[-4000:]}")
        found = [project.containers(service) for service in ("api", "lb")]
        return all(containers and health(containers[0]) == "healthy" for containers in found)

    wait_for("make dev: the api and lb are healthy", api_and_lb_healthy, timeout=FIRST_BUILD_LIMIT, interval=2)


def stop_make_dev(dev: subprocess.Popen, signal_number: int, what: str) -> float:
    """Sends the signal to make's whole process group, as a terminal or a supervisor does, and
    waits for make to exit; the seconds it took."""
    with Timer(what) as stopping:
        os.killpg(dev.pid, signal_number)
        dev.wait(timeout=90)
    return stopping.seconds


def kill_if_running(dev: subprocess.Popen) -> None:
    if dev.poll() is None:
        os.killpg(dev.pid, signal.SIGKILL)
        dev.wait()


def assert_stopped_cleanly(project: Project, log_path: Path) -> str:
    """Every container exited 0, the last server run drained, make said no error; the api's log."""
    api_log = project.compose(DEVELOPMENT, "logs", "--no-log-prefix", "api").stdout
    make_log = log_path.read_text()
    # One `compose stop` from scripts/stack.sh, never Compose's own Ctrl-C handling (which may kill).
    assert "make dev: stopping the services" in make_log and "killing" not in make_log, make_log[-3000:]
    assert "Error" not in make_log and "***" not in make_log, make_log[-3000:]
    for service in ("lb", "api", "migrate", "db", "cache"):
        state = project.container(service)["State"]
        why = f"{service}: {state}\napi log:\n{api_log[-3000:]}\nmake dev:\n{make_log[-3000:]}"
        assert state["Status"] == "exited", why
        assert state["ExitCode"] == 0, why
    last_run = api_log.rsplit('"listening"', 1)[-1]
    assert "draining in-flight requests" in last_run and '"stopped"' in last_run, api_log[-3000:]
    return api_log


def test_make_dev_serves_reloads_an_edit_and_stops_cleanly(project: Project) -> None:
    api_port, db_port, redis_port = free_ports(3, project.ports)
    project.variables.update(API_PORT=str(api_port), DEV_DB_PORT=str(db_port), DEV_REDIS_PORT=str(redis_port))
    log_path = project.directory / "make-dev.log"
    dev = start_make_dev(project, log_path)
    try:
        started = time.monotonic()
        wait_until_healthy(project, dev, log_path)
        TIMINGS["make dev until the api and lb are healthy (dev image, debug build)"] = time.monotonic() - started
        # The load balancer starts once the api is healthy, then checks it before sending it requests.
        wait_for(
            "the load balancer serves the api on API_PORT",
            lambda: request(api_port, "GET", "/health").body == HEALTH_BODY,
            timeout=60,
            interval=0.5,
        )
        assert postgres_answers(db_port), f"Postgres does not answer on 127.0.0.1:{db_port}"
        assert redis_ping(redis_port), f"Redis does not answer on 127.0.0.1:{redis_port}"
        created = request(api_port, "POST", "/v1/users", {"name": "dev"})
        assert created.status == 201

        source = project.directory / HEALTH_SOURCE
        text = source.read_text(encoding="utf-8")
        assert text.count('br#"{"status":"ok"}"#') == 1, f"{HEALTH_SOURCE} no longer holds the /health body"
        edited = b'{"status":"ok","reloaded":true}'
        with Timer("make dev: an edit of the /health body, rebuilt by cargo-watch and served"):
            source.write_text(text.replace('br#"{"status":"ok"}"#', f'br#"{edited.decode()}"#'), encoding="utf-8")
            wait_for(
                "the edited /health body is served",
                lambda: request(api_port, "GET", "/health").body == edited,
                timeout=RELOAD_LIMIT,
                interval=0.5,
            )

        stopped_in = stop_make_dev(dev, signal.SIGINT, "make dev: Ctrl-C until make exits")
    finally:
        kill_if_running(dev)

    # cargo-watch restarted the server once (the edit); the last server run must have drained.
    assert_stopped_cleanly(project, log_path)
    assert not answers(api_port) and not answers(db_port) and not answers(redis_port)
    FINDINGS["make dev stop"] = f"Ctrl-C: api drained, every container exit 0, make done in {stopped_in:.1f} s"

    # Again, stopped the way `timeout` or a supervisor stops it: SIGTERM to the whole process group.
    log_path = project.directory / "make-dev-sigterm.log"
    dev = start_make_dev(project, log_path)
    try:
        wait_until_healthy(project, dev, log_path)
        stopped_in = stop_make_dev(dev, signal.SIGTERM, "make dev: SIGTERM to its process group until make exits")
    finally:
        kill_if_running(dev)
    assert_stopped_cleanly(project, log_path)
    FINDINGS["make dev SIGTERM"] = f"to the group: api drained, every container exit 0, in {stopped_in:.1f} s"
    project.compose(DEVELOPMENT, "down", "--volumes", "--remove-orphans", timeout=300)
