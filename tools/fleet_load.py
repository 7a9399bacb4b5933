"""Steady HTTP load on the users API through its load balancer: reads mixed with keyed writes.

    python3 tools/fleet_load.py --port 8080 --seconds 30 [--rate 200] [--connections 8] [--token T]

The fleet tests (tests/containers_e2e/test_6_swarm.py, test_2_scale.py) run it in a thread while
they roll, kill and scale replicas, then ask it what happened. Standard library only (asyncio
keep-alive HTTP/1.1 connections), so nothing is fetched when the tests run.

The mix, per request: 55 % GET /v1/users/{id}, 5 % HEAD of the same, 10 % GET /v1/users?limit=10
(reads of users it created first and never deletes), 10 % POST (a create), 15 % PATCH of one of
the connection's own users, 5 % DELETE of a user it created. Every write carries an
Idempotency-Key, so the load balancer may retry any request after a replica failed it; each
connection writes only its own users, one request at a time, so the last acknowledged PATCH of a
user is what the database must hold.

Every answer is classified (`Outcome.verdict`):
  ok        2xx (and 404 for nothing: none of these reads or writes can miss);
  refused   a 503 whose problem detail says nothing was written (only writes may be refused);
  unknown   a 502/503/504 whose detail says the outcome is unknown (only writes);
  failed    anything else: another status, a broken or refused connection, a client timeout.
With `token`, every request carries `Authorization: Bearer <token>` (FLEET_LOAD_TOKEN too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

CLIENT_TIMEOUT = 20.0
MIX = [("get", 55), ("head", 5), ("list", 10), ("create", 10), ("patch", 15), ("delete", 5)]
WRITES = {"create", "patch", "delete"}


@dataclass
class Outcome:
    kind: str
    status: int | None
    seconds: float
    served_by: str = ""
    detail: str = ""
    error: str = ""
    # For writes: which user (and for creates its email), and the name a PATCH set.
    user: str = ""
    email: str = ""
    name: str = ""

    @property
    def verdict(self) -> str:
        if self.status is not None and 200 <= self.status < 300:
            return "ok"
        if self.kind in WRITES and self.status == 503 and "nothing was written" in self.detail:
            return "refused"
        if self.kind in WRITES and self.status in (502, 503, 504) and "unknown" in self.detail:
            return "unknown"
        return "failed"


@dataclass
class Tally:
    """Everything one run saw: each request's outcome, in the order the answers came."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    # In every email the run used: fleet-<run_id>-…@example.com (seed users: fleet-<run_id>-seed-…).
    run_id: str = ""

    def count(self, verdict: str | None = None, kinds: set[str] | None = None) -> int:
        return sum(
            1 for o in self.outcomes if (verdict is None or o.verdict == verdict) and (kinds is None or o.kind in kinds)
        )

    def failures(self, limit: int = 10) -> list[str]:
        bad = [o for o in self.outcomes if o.verdict != "ok"]
        return [f"{o.kind} {o.status or o.error} {o.detail[:120]}" for o in bad[:limit]]

    def served_by(self) -> Counter[str]:
        return Counter(o.served_by for o in self.outcomes if o.served_by)

    def acknowledged(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind and o.verdict == "ok"]

    def last_acknowledged_names(self) -> dict[str, str]:
        """Per user whose last PATCH was acknowledged, the name it set: what the database must
        hold (each user has one writer, one request at a time)."""
        last = {o.user: o for o in self.outcomes if o.kind == "patch"}
        return {user: o.name for user, o in last.items() if o.verdict == "ok"}

    def summary(self) -> str:
        verdicts = Counter(o.verdict for o in self.outcomes)
        rate = len(self.outcomes) / self.seconds if self.seconds else 0.0
        durations = sorted(o.seconds for o in self.outcomes) or [0.0]

        def quantile(q: float) -> str:
            return f"{durations[min(len(durations) - 1, int(len(durations) * q))] * 1000:.1f} ms"

        return (
            f"{len(self.outcomes)} requests in {self.seconds:.1f} s ({rate:.0f}/s): "
            + ", ".join(f"{verdicts[v]} {v}" for v in ("ok", "refused", "unknown", "failed"))
            + f"; p50 {quantile(0.5)}, p99 {quantile(0.99)}, max {quantile(1.0)}"
        )


class Connection:
    """One keep-alive HTTP/1.1 connection, opened again after the server closes it."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None):
        """(status, headers, body bytes); raises OSError or asyncio.TimeoutError on failure."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in {**self.headers, **(headers or {})}.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        try:
            return await self._response(method)
        except BaseException:
            self.close()
            raise

    async def _response(self, method: str):
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the connection closed without an answer")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if method != "HEAD" and headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                body += await self.reader.readexactly(size + 2)
            await self.reader.readline()
        elif method != "HEAD":
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class FleetLoad:
    """The load, in a thread of its own: `start()`, do something to the fleet, `stop()` → Tally."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", rate: float = 200, connections: int = 8, token: str | None = None
    ) -> None:
        self.host, self.port, self.rate, self.connections = host, port, rate, connections
        token = token or os.environ.get("FLEET_LOAD_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.tally = Tally(run_id=uuid.uuid4().hex[:8])
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, users_per_connection: int = 5) -> FleetLoad:
        self._thread = threading.Thread(target=self._run, args=(users_per_connection,), daemon=True)
        self._thread.start()
        self._ready.wait(timeout=120)
        if self._error is not None:
            raise RuntimeError(f"the load could not start: {self._error}") from self._error
        return self

    def stop(self) -> Tally:
        self._stopping.set()
        assert self._thread is not None
        self._thread.join(timeout=CLIENT_TIMEOUT + 30)
        if self._error is not None:
            raise RuntimeError(f"the load stopped: {self._error}") from self._error
        return self.tally

    def _run(self, users_per_connection: int) -> None:
        try:
            asyncio.run(self._main(users_per_connection))
        except BaseException as error:  # reported by start(), or in the tally as a failure
            self._error = error
            self._ready.set()

    async def _main(self, users_per_connection: int) -> None:
        connections = [Connection(self.host, self.port, self.headers) for _ in range(self.connections)]
        own = [
            [await self._create(c, f"seed-{i}-{j}") for j in range(users_per_connection)]
            for i, c in enumerate(connections)
        ]
        self._ready.set()
        started = time.monotonic()
        await asyncio.gather(*(self._worker(c, own[i], random.Random(i)) for i, c in enumerate(connections)))
        self.tally.seconds = time.monotonic() - started
        for connection in connections:
            connection.close()

    async def _create(self, connection: Connection, label: str) -> str:
        email = f"fleet-{self.tally.run_id}-{label}@example.com"
        status, _, body = await connection.request(
            "POST", "/v1/users", {"name": label, "email": email}, {"Idempotency-Key": str(uuid.uuid4())}
        )
        if status != 201:
            raise RuntimeError(f"creating a seed user: {status} {body[:200]!r}")
        return json.loads(body)["id"]

    async def _worker(self, connection: Connection, users: list[str], chance: random.Random) -> None:
        interval = self.connections / self.rate
        created: list[str] = []
        next_at = time.monotonic()
        kinds, weights = zip(*MIX, strict=True)
        while not self._stopping.is_set():
            next_at += interval
            kind = chance.choices(kinds, weights)[0]
            if kind == "delete" and not created:
                kind = "create"
            self.tally.outcomes.append(await self._one(connection, kind, users, created, chance))
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one(self, connection: Connection, kind: str, users: list[str], created: list[str], chance) -> Outcome:
        user, email, name, body, method = chance.choice(users), "", "", None, "GET"
        path = f"/v1/users/{user}"
        if kind == "head":
            method = "HEAD"
        elif kind == "list":
            path = "/v1/users?limit=10"
        elif kind == "create":
            method, path, user = "POST", "/v1/users", ""
            email = f"fleet-{self.tally.run_id}-{uuid.uuid4().hex[:12]}@example.com"
            body = {"name": "load", "email": email}
        elif kind == "patch":
            name = f"v-{uuid.uuid4().hex[:8]}"
            method, body = "PATCH", {"name": name}
        elif kind == "delete":
            user = created.pop(chance.randrange(len(created)))
            method, path = "DELETE", f"/v1/users/{user}"
        headers = {"X-Request-Id": f"load-{uuid.uuid4().hex}"}
        if kind in WRITES:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        started = time.monotonic()
        outcome = Outcome(kind, None, 0.0, user=user, email=email, name=name)
        try:
            status, answer, payload = await asyncio.wait_for(
                connection.request(method, path, body, headers), CLIENT_TIMEOUT
            )
            outcome.status, outcome.served_by = status, answer.get("x-served-by", "")
            if status >= 400:
                outcome.detail = problem_detail(payload)
            elif kind == "create":
                outcome.user = json.loads(payload)["id"]
                created.append(outcome.user)
        except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
            outcome.error = f"{type(error).__name__}: {error}"
        outcome.seconds = time.monotonic() - started
        return outcome


def problem_detail(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("detail", ""))
    except (ValueError, AttributeError):
        return payload[:200].decode("utf-8", "replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, all connections together")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--token", help="sent as `Authorization: Bearer TOKEN` (default: $FLEET_LOAD_TOKEN)")
    arguments = parser.parse_args()
    try:
        load = FleetLoad(arguments.port, arguments.host, arguments.rate, arguments.connections, arguments.token).start()
        time.sleep(arguments.seconds)
        tally = load.stop()
    except RuntimeError as error:
        print(f"fleet_load: {error}", file=sys.stderr)
        return 2
    print(tally.summary())
    for line in tally.failures():
        print("  " + line)
    print("served by: " + ", ".join(f"{name} {count}" for name, count in sorted(tally.served_by().items())))
    return 1 if tally.count("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
