"""How `make dev` and `make logs` end, with a stand-in `docker`: a Ctrl-C, a SIGTERM or a hangup,
whether sent to scripts/stack.sh alone or to make's whole process group (what a terminal, an IDE's
stop button, `timeout` or a supervisor send), stops the services once with `compose stop` and ends
without an error from make; only a second Ctrl-C kills them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from containers_support import calls, kill_group, scratch

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# `compose up` runs until it is killed; `compose stop` takes STOP_SECONDS, as a drain does;
# `compose logs -f` follows until SIGINT or SIGTERM, then exits 130 as Compose v2 does.
ENGINE = """
case "$*" in
  "compose version") echo "Docker Compose version v2.40.3"; exit 0 ;;
  "buildx version") exit 1 ;;
  info*) exit 0 ;;
esac
echo "docker $*" >>"$CALLS"
case "$*" in
  *" up "*) exec sleep 60 ;;
  *" stop") sleep "${STOP_SECONDS:-1}" ;;
  *"logs -f") trap 'exit 130' INT TERM; echo "following" >>"$CALLS"; sleep 60 & wait ;;
esac
exit 0
"""


def default_interrupt() -> None:
    # Whoever ran pytest may have started it with SIGINT ignored, which make and bash would inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(work: Path, environment: dict[str, str], *command: str) -> subprocess.Popen:
    """`command` as a terminal's foreground job: a process group of its own. Its stderr goes to
    a file (a stand-in left sleeping would hold a pipe open)."""
    with open(work.parent / "stderr", "wb") as stderr:
        return subprocess.Popen(
            list(command),
            cwd=work,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=default_interrupt,
        )


def wait_for_call(environment: dict[str, str], text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in calls(environment):
        assert time.monotonic() < deadline, f"no `{text}` call: {calls(environment)!r}"
        time.sleep(0.05)


def finish(process: subprocess.Popen, work: Path) -> str:
    """Waits for the process and returns its stderr; whatever is left of the group dies."""
    try:
        process.wait(timeout=30)
    finally:
        kill_group(process)
    return (work.parent / "stderr").read_text()


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_make_devs_process_group_stops_once_without_an_error(tmp_path, sent) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    dev = start(work, environment, "make", "--no-print-directory", "dev")
    wait_for_call(environment, " up --build")
    time.sleep(0.2)
    os.killpg(dev.pid, sent)
    stderr = finish(dev, work)
    recorded = calls(environment)
    assert recorded.count(" stop\n") == 1, recorded
    assert " kill" not in recorded and "killing" not in stderr, stderr
    assert "make dev: stopping the services" in stderr
    assert "Error" not in stderr and "***" not in stderr, stderr


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_or_a_hangup_to_stack_sh_alone_drains_and_exits_0(tmp_path, sent) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    dev = start(work, environment, shutil.which("bash"), "scripts/stack.sh", "dev")
    wait_for_call(environment, " up --build")
    time.sleep(0.2)
    dev.send_signal(sent)
    # The same request again while the services stop (a supervisor's repeat) changes nothing.
    wait_for_call(environment, " stop")
    dev.send_signal(sent)
    stderr = finish(dev, work)
    assert dev.returncode == 0, stderr
    assert " kill" not in calls(environment), stderr


def test_a_second_ctrl_c_while_stopping_kills_the_services(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    environment["STOP_SECONDS"] = "10"
    dev = start(work, environment, "make", "--no-print-directory", "dev")
    wait_for_call(environment, " up --build")
    time.sleep(0.2)
    os.killpg(dev.pid, signal.SIGINT)
    wait_for_call(environment, " stop")
    time.sleep(0.2)
    os.killpg(dev.pid, signal.SIGINT)
    stderr = finish(dev, work)
    assert " kill" in calls(environment) and "make dev: killing the services" in stderr, stderr


def test_ctrl_c_on_make_logs_ends_without_an_error(tmp_path) -> None:
    work, environment = scratch(tmp_path, ENGINE)
    (work / ".env").write_text("")
    logs = start(work, environment, "make", "--no-print-directory", "logs")
    wait_for_call(environment, "following")  # its Ctrl-C handler is in place
    os.killpg(logs.pid, signal.SIGINT)
    stderr = finish(logs, work)
    assert "Error" not in stderr and "***" not in stderr, stderr
