"""What the end-to-end container tests share: a scratch copy of the repository, a private Compose
project in it (own project name, image tags and host ports), and small HTTP, Docker and timing
helpers. Plain standard library: the tests drive the same `make` targets and `docker` commands a
person would, and read what the engine reports (`docker inspect`, `/proc` of the container).
(A uniquely named module, so it cannot be mixed up with another folder's conftest.py.)"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
PRODUCTION = ["-f", "docker-compose.yml"]
DEVELOPMENT = ["-f", "docker-compose.yml", "-f", "docker-compose.dev.yml"]
TESTING = ["-f", "docker-compose.test.yml"]

# How long each step took, printed at the end of the run (conftest.py).
TIMINGS: dict[str, float] = {}
FINDINGS: dict[str, str] = {}


class Timer:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.monotonic() - self.started
        TIMINGS[self.name] = self.seconds


# --- ports ---------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def first_ephemeral_port() -> int:
    """Where the kernel's range for outgoing connections starts: a port at or above it may be
    taken by any new connection between the check and Docker's bind (the fleet tests open
    thousands)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, taken: set[int]) -> list[int]:
    """`count` consecutive free TCP ports below the ephemeral range, none of them in `taken`."""
    lowest = 20000
    for _ in range(500):
        base = lowest + secrets.randbelow(max(1, first_ephemeral_port() - lowest - count))
        ports = list(range(base, base + count))
        if not taken.intersection(ports) and all(port_is_free(port) for port in ports):
            taken.update(ports)
            return ports
    raise RuntimeError(f"no {count} consecutive free ports found")


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# The bearer token requests carry while the stack under test checks tokens (`bearer_token`).
BEARER: dict[str, str] = {}


def bearer_token(token: str | None) -> None:
    """From now on every `request` (and tools/fleet_load.py's load) carries `token`; None: none."""
    BEARER.clear()
    os.environ.pop("FLEET_LOAD_TOKEN", None)
    if token:
        BEARER["Authorization"] = f"Bearer {token}"
        os.environ["FLEET_LOAD_TOKEN"] = token


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 15
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = {**BEARER, **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def wait_for(what: str, check, timeout: float, interval: float = 0.5) -> float:
    """Polls `check()` until it is truthy; returns the seconds it took, fails after `timeout`."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        try:
            last = check()
            if last:
                return time.monotonic() - started
        except (OSError, http.client.HTTPException, ValueError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


# --- the scratch copy and its project --------------------------------------------------------------


def copy_repository(destination: Path) -> None:
    """The repository's files as a clone would have them (tracked and new, not ignored ones), in
    a git repository of one commit, so builds have a revision to stamp as a clone's do."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    identity = ["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "scratch copy"]):
        subprocess.run(["git", *command], cwd=destination, check=True, capture_output=True)


def settings_names() -> set[str]:
    """Every name .env.example mentions: none may leak in from the caller's environment."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


@dataclass
class Project:
    """A scratch copy of the repository with a Compose project, image tags and ports of its own."""

    directory: Path
    name: str
    tag: str
    ports: set[int] = field(default_factory=set)
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Project:
        suffix = secrets.token_hex(3)
        directory = Path(tempfile.mkdtemp(prefix="gravity-bff-e2e-"))
        copy_repository(directory)
        project = cls(directory=directory, name=f"gbff-e2e-{suffix}", tag=f"e2e-{suffix}")
        project.variables = {
            "COMPOSE_PROJECT_NAME": project.name,
            "IMAGE_TAG": project.tag,
            "DEV_IMAGE_TAG": f"{project.tag}-dev",
        }
        return project

    @property
    def images(self) -> list[str]:
        return [f"gravity-bff:{self.tag}", f"gravity-bff:{self.tag}-dev"]

    def environment(self, **extra: str) -> dict[str, str]:
        # No setting may come from the caller's shell: compose lets the environment win over .env.
        inherited = {k: v for k, v in os.environ.items() if k not in settings_names() and not k.startswith("COMPOSE_")}
        return {**inherited, **self.variables, **extra}

    def run(self, *command: str, timeout: float = 900, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            list(command),
            cwd=self.directory,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"`{' '.join(command)}` exited {completed.returncode}\n"
                f"--- stdout (end)\n{completed.stdout[-4000:]}\n--- stderr (end)\n{completed.stderr[-4000:]}"
            )
        return completed

    def make(self, target: str, timeout: float = 1200, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        return self.run("make", "--no-print-directory", target, timeout=timeout, check=check, **extra)

    def compose(self, files: list[str], *arguments: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("docker", "compose", *files, *arguments, **kwargs)

    def env_file(self) -> dict[str, str]:
        values = {}
        for line in (self.directory / ".env").read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
            if match:
                values[match.group(1)] = match.group(2)
        return values

    def set_env(self, name: str, value: str) -> None:
        path = self.directory / ".env"
        text = path.read_text(encoding="utf-8")
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        if count == 0:
            text += f"{name}={value}\n"
        path.write_text(text, encoding="utf-8")

    # --- what the engine says about the project ---------------------------------------------------

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker inspect` of the project's containers (of one service), oldest first."""
        labels = ["--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            labels += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "-aq", *labels).split()
        if not ids:
            return []
        found = json.loads(docker("inspect", *ids))
        return sorted(found, key=lambda c: (c["Created"], c["Name"]))

    def container(self, service: str) -> dict[str, Any]:
        found = self.containers(service)
        assert len(found) == 1, f"{service}: {len(found)} containers"
        return found[0]

    def leftovers(self, project: str | None = None) -> dict[str, list[str]]:
        """Containers, volumes and networks labelled with the project, and its image tags."""
        label = f"label=com.docker.compose.project={project or self.name}"
        left = {
            "containers": docker("ps", "-aq", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
        }
        if project is None:
            left["images"] = [image for image in self.images if docker_ok("image", "inspect", image)]
        return {kind: names for kind, names in left.items() if names}


def docker(*arguments: str, timeout: float = 120) -> str:
    completed = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise AssertionError(f"docker {' '.join(arguments)}: {completed.stderr.strip()}")
    return completed.stdout


def docker_ok(*arguments: str) -> bool:
    return subprocess.run(["docker", *arguments], capture_output=True, timeout=120).returncode == 0


def health(container: dict[str, Any]) -> str:
    return (container["State"].get("Health") or {}).get("Status", "none")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status of a container's process, as the host sees it."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def root_mount_options(pid: int) -> list[str]:
    """Mount options of the process's root filesystem, from /proc/PID/mountinfo."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts[4] == "/":
            return parts[5].split(",")
    raise AssertionError("no root mount in mountinfo")


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(16).startswith(b"+PONG")


def postgres_answers(port: int) -> bool:
    """A Postgres server answers an SSLRequest with one byte: S or N."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as connection:
        connection.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        return connection.recv(1) in (b"S", b"N")
