"""The runtime image's promise, proven without Docker: the gravity-bff binary, alone in an empty
directory (no libc, no /etc, no /dev, no shell: less than even distroless static gives it),
chroot'ed and running as the image's non-root uid 65532, must
  * be statically linked (`file`, `ldd`),
  * answer --version, and exit 2 with one line on a bad setting, and on neither AUTH_ISSUER nor
    AUTH_DISABLED=true (secure by default),
  * serve GET /health -> 200 {"status":"ok"} to a client outside the chroot, with authentication
    on and its issuer unreachable: /ready -> 503 "auth":"no_keys", GET /v1/users -> 401,
  * pass `--health` (the image's HEALTHCHECK) from inside the chroot,
  * stop on SIGTERM with exit code 0,
  * fail `--health` with exit code 1 (and one line on stderr) once nothing listens.

    python3 tools/chroot_smoke.py PATH/TO/gravity-bff    (as root; scripts/chroot-smoke.sh runs it)

Standard library only, so root runs it with the system's python3. Needs Postgres on
127.0.0.1:5432 (user and database postgres) only if the server insists on reaching it before it
serves /health; no Redis (REDIS_HOST is empty).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

RUNTIME_UID = 65532
# The Postgres the server is pointed at; no Redis (the cache is off).
DATABASE = {"DB_HOST": "127.0.0.1", "DB_USER": "postgres", "DB_NAME": "postgres", "REDIS_HOST": ""}
# Longer than the server's default SHUTDOWN_GRACE_SECONDS (10), so a clean shutdown has time.
STOP_TIMEOUT_SECONDS = 15
START_TIMEOUT_SECONDS = 15
ONE_SHOT_TIMEOUT_SECONDS = 10


class Failed(Exception):
    """A broken promise; its text is the one line the run ends with."""


def ok(message: str) -> None:
    print(f"ok   {message}", flush=True)


# --- the pure parts --------------------------------------------------------------------------------
def static_linking(file_output: str, ldd_output: str) -> list[str]:
    """What `file -b` and `ldd` say about a static binary; Failed when they say otherwise."""
    if "statically linked" not in file_output and "static-pie linked" not in file_output:
        raise Failed(f"file says the binary is not static: {file_output}")
    # ldd exits non-zero for a static binary ("not a dynamic executable"); its words are what count.
    if "not a dynamic executable" not in ldd_output and "statically linked" not in ldd_output:
        raise Failed(f"ldd lists shared libraries: {ldd_output}")
    return [f"file: {file_output}", f"ldd: {' '.join(ldd_output.split())}"]


def jail_command(chroot: str, jail: Path, environment: dict[str, str], args: list[str]) -> list[str]:
    """/gravity-bff inside the jail as 65532:65532 with exactly `environment` (env -i: nothing
    leaks in from this process, as in a container). Each program execs the next, so the process
    started is the server itself."""
    uid = RUNTIME_UID
    settings = [f"{name}={value}" for name, value in environment.items()]
    return [
        "env",
        "-i",
        *settings,
        chroot,
        f"--userspec={uid}:{uid}",
        f"--groups={uid}",
        str(jail),
        "/gravity-bff",
        *args,
    ]


def process_uids(status: str) -> list[int]:
    """Real, effective, saved and filesystem uid from the text of /proc/PID/status."""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return [int(field) for field in line.split()[1:]]
    raise Failed("no Uid: line in the process status")


def is_health_ok(content_type: str, body: bytes) -> bool:
    try:
        return content_type.lower().startswith("application/json") and json.loads(body) == {"status": "ok"}
    except ValueError:
        return False


def waits_for_keys(status: int, body: bytes) -> bool:
    """Whether /ready says the service is up but has no key set of its token issuer yet."""
    try:
        return status == 503 and json.loads(body).get("auth") == "no_keys"
    except (ValueError, AttributeError):
        return False


def one_line(text: str) -> bool:
    return len(text.splitlines()) == 1 and text.endswith("\n")


# --- the run ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_health(url: str) -> tuple[int, str, bytes] | None:
    """Status, Content-Type and body of GET url; None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()
    except (urllib.error.URLError, OSError):
        return None


class Smoke:
    def __init__(self, binary: Path, work: Path) -> None:
        self.chroot = shutil.which("chroot") or "chroot"
        self.jail = work / "jail"
        self.logs = work / "logs"
        self.jail.mkdir(mode=0o755)
        self.logs.mkdir()
        # uid 65532 must be able to enter its own root.
        self.jail.chmod(0o755)
        shutil.copyfile(binary, self.jail / "gravity-bff")
        (self.jail / "gravity-bff").chmod(0o555)
        if [p.name for p in self.jail.iterdir()] != ["gravity-bff"]:
            raise Failed("the jail holds more than the binary")
        self.server: subprocess.Popen | None = None

    def once(self, environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
        command = jail_command(self.chroot, self.jail, environment, list(args))
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=ONE_SHOT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise Failed(f"{' '.join(args)} inside the chroot ran over {ONE_SHOT_TIMEOUT_SECONDS}s") from exc

    def server_output(self) -> str:
        tails = []
        for name in ("stderr", "stdout"):
            lines = (self.logs / f"server.{name}").read_text(errors="replace").splitlines()[-20:]
            tails.append("\n".join([f"--- server {name}:", *lines]))
        return "\n".join(tails)

    def run(self) -> None:
        version = self.once({}, "--version")
        if version.returncode != 0:
            raise Failed("--version exited non-zero inside the chroot")
        if not version.stdout.strip():
            raise Failed("--version printed nothing")
        ok(f"--version in the chroot as uid {RUNTIME_UID}: {version.stdout.strip()}")

        bad = self.once({"API_PORT": "not-a-port"}, "serve")
        if bad.returncode != 2:
            raise Failed(f"a bad API_PORT must exit 2, got {bad.returncode}: {bad.stderr}")
        if not one_line(bad.stderr):
            raise Failed(f"a bad setting must print exactly one line on stderr, got: {bad.stderr}")
        ok(f"bad setting (API_PORT=not-a-port) -> exit 2: {bad.stderr.strip()}")

        unguarded = self.once(DATABASE, "serve")
        if unguarded.returncode != 2 or not one_line(unguarded.stderr) or "AUTH_DISABLED" not in unguarded.stderr:
            raise Failed(f"serving without AUTH_ISSUER or AUTH_DISABLED must exit 2 naming both, got {unguarded}")
        ok(f"neither AUTH_ISSUER nor AUTH_DISABLED=true -> exit 2: {unguarded.stderr.strip()}")

        port = str(free_port())
        self.serve(port)
        self.stop()

        down = self.once({"API_PORT": port}, "--health")
        if down.returncode != 1:
            raise Failed(f"--health with nothing listening must exit 1, got {down.returncode}")
        if not one_line(down.stderr):
            raise Failed(f"--health must say why in one stderr line, got: {down.stderr}")
        ok(f"--health with nothing listening -> exit 1: {down.stderr.strip()}")

    def serve(self, port: str) -> None:
        # Tokens are checked, and the issuer is down (nothing listens on its port): the service
        # must still start, and say why it cannot serve users yet.
        issuer = f"https://127.0.0.1:{free_port()}/realms/gravity"
        environment = {"API_PORT": port, **DATABASE, "AUTH_ISSUER": issuer, "AUTH_AUDIENCE": "gravity-bff"}
        with open(self.logs / "server.stdout", "w") as out, open(self.logs / "server.stderr", "w") as err:
            command = jail_command(self.chroot, self.jail, environment, ["serve"])
            self.server = subprocess.Popen(command, stdout=out, stderr=err)
        url = f"http://127.0.0.1:{port}/health"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        answer = None
        while answer is None or answer[0] != 200:
            if self.server.poll() is not None:
                raise Failed(f"the server exited before serving /health\n{self.server_output()}")
            if time.monotonic() >= deadline:
                last = answer[0] if answer else "none"
                raise Failed(
                    f"GET {url} gave no 200 within {START_TIMEOUT_SECONDS}s (last status: {last})\n"
                    f"{self.server_output()}"
                )
            time.sleep(0.2)
            answer = get_health(url)
        _, content_type, body = answer
        if not is_health_ok(content_type, body):
            raise Failed(f'GET /health is not {{"status":"ok"}} as application/json: {content_type} {body!r}')
        ok(f"GET /health from outside the chroot -> 200 {body.decode(errors='replace')}")

        base = f"http://127.0.0.1:{port}"
        ready = get_health(f"{base}/ready")
        if ready is None or not waits_for_keys(ready[0], ready[2]):
            raise Failed(f"GET /ready with the issuer down must be 503 with auth no_keys, got {ready}")
        users = get_health(f"{base}/v1/users")
        if users is None or users[0] != 401 or not users[1].startswith("application/problem+json"):
            raise Failed(f"GET /v1/users without a token must be a 401 problem, got {users}")
        ok("issuer down: /ready -> 503 (auth no_keys), GET /v1/users without a token -> 401")

        # The process really is the jailed, unprivileged one.
        pid = self.server.pid
        status = Path(f"/proc/{pid}/status").read_text()
        if any(uid != RUNTIME_UID for uid in process_uids(status)):
            raise Failed(f"the server runs with uids {process_uids(status)}, not {RUNTIME_UID}")
        root = os.readlink(f"/proc/{pid}/root")
        if os.path.realpath(root) != os.path.realpath(self.jail):
            raise Failed(f"the server's root is {root}, not the jail {self.jail}")
        ok(f"server pid {pid} runs as uid {RUNTIME_UID} with / = the jail")

        up = self.once({"API_PORT": port}, "--health")
        if up.returncode != 0:
            raise Failed(f"--health inside the chroot exited {up.returncode} while the server is up: {up.stderr}")
        ok("--health inside the chroot -> exit 0")

    def stop(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)
        try:
            status = self.server.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise Failed(
                f"the server was still running {STOP_TIMEOUT_SECONDS}s after SIGTERM\n{self.server_output()}"
            ) from exc
        if status != 0:
            raise Failed(f"after SIGTERM the server exited {status}, not 0\n{self.server_output()}")
        ok("SIGTERM -> the server exited 0")

    def kill(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: chroot_smoke.py PATH/TO/gravity-bff", file=sys.stderr)
        return 2
    binary = Path(argv[1])
    # An interrupted run still removes what it made (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise Failed(f"no executable binary at {binary} (build it with: make build-musl)")
        print(f"chroot smoke test of {binary} ({binary.stat().st_size} bytes)", flush=True)
        file_output = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True).stdout.strip()
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        for message in static_linking(file_output, (ldd.stdout + ldd.stderr).strip()):
            ok(message)
        with tempfile.TemporaryDirectory(prefix="gravity-chroot.") as work:
            smoke = Smoke(binary, Path(work))
            try:
                smoke.run()
            finally:
                smoke.kill()
    except Failed as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    print("chroot smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
