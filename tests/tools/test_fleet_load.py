"""tools/fleet_load.py against a stub of the users API: what it sends, and how it counts answers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet_load import FleetLoad, Outcome, Tally


class StubApi(BaseHTTPRequestHandler):
    """Users in memory; every third PATCH refused with "nothing was written"; records each request."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without this, Nagle holds the second for an ACK.
    disable_nagle_algorithm = True
    seen: list[tuple[str, str, dict[str, str]]] = []
    patches = 0

    def _answer(self, status: int, body: object | None = None) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Served-By", f"api{threading.get_ident() % 3}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length)) if length else None
        StubApi.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.command == "POST":
            self._answer(201, {"id": str(uuid.uuid4()), **body})
        elif self.command == "PATCH":
            StubApi.patches += 1
            if StubApi.patches % 3 == 0:
                self._answer(503, {"detail": "the write could not be completed in time; nothing was written"})
            else:
                self._answer(200, {"id": self.path.rsplit("/", 1)[-1], **body})
        elif self.command == "DELETE":
            self._answer(204)
        else:
            self._answer(200, {"items": []} if "?" in self.path else {"id": "x"})

    do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[int]:
    StubApi.seen, StubApi.patches = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_a_run_sends_reads_and_keyed_writes_with_the_token_and_counts_every_answer(stub: int) -> None:
    load = FleetLoad(stub, rate=400, connections=4, token="t0ken").start(users_per_connection=2)
    time.sleep(1.5)
    tally = load.stop()

    assert len(tally.outcomes) > 200
    assert {o.kind for o in tally.outcomes} == {"get", "head", "list", "create", "patch", "delete"}
    for method, _, headers in StubApi.seen:
        assert headers["authorization"] == "Bearer t0ken"
        assert ("idempotency-key" in headers) == (method in {"POST", "PATCH", "DELETE"}), method
    # Every third PATCH was refused truthfully; nothing else failed.
    assert tally.count("refused") == tally.count(kinds={"patch"}) // 3
    assert tally.count("failed") == tally.count("unknown") == 0
    assert sum(tally.served_by().values()) == len(tally.outcomes)
    assert "0 failed" in tally.summary()


def test_nothing_listening_stops_the_load_before_it_starts() -> None:
    with pytest.raises(RuntimeError, match="could not start"):
        FleetLoad(1, connections=1).start()


@pytest.mark.parametrize(
    ("kind", "status", "detail", "verdict"),
    [
        ("get", 200, "", "ok"),
        ("create", 201, "", "ok"),
        ("delete", 204, "", "ok"),
        ("get", 404, "no user", "failed"),
        ("get", 503, "postgres is not answering; nothing was written", "failed"),
        ("patch", 503, "the write could not be completed in time; nothing was written", "refused"),
        ("patch", 503, "the outcome is unknown", "unknown"),
        ("create", 502, "the outcome of a write is unknown, retry it", "unknown"),
        ("create", 500, "", "failed"),
        ("patch", None, "", "failed"),
    ],
)
def test_answers_are_classified(kind: str, status: int | None, detail: str, verdict: str) -> None:
    assert Outcome(kind, status, 0.0, detail=detail).verdict == verdict


def test_the_last_acknowledged_name_counts_only_when_the_last_patch_was_acknowledged() -> None:
    tally = Tally(
        [
            Outcome("patch", 200, 0.0, user="a", name="a1"),
            Outcome("patch", 200, 0.0, user="a", name="a2"),
            Outcome("patch", 200, 0.0, user="b", name="b1"),
            Outcome("patch", 502, 0.0, user="b", name="b2", detail="unknown"),
        ]
    )
    assert tally.last_acknowledged_names() == {"a": "a2"}
