"""What the fleet tests share, in Compose (test_2_fleet.py) and in Swarm (test_5_swarm.py): load
from tools/fleet_load.py while something happens to the fleet, its verdicts held against the
database, a PATCH-then-read probe, a probe of what the load balancer retries, and the load
balancer's own counters. The figures land in FINDINGS (printed at the end of the run) and, by
hand, in docs/RELIABILITY.md."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from e2e_support import FINDINGS, Response, request
from fleet_load import FleetLoad, Tally

# Requests per second through the load balancer: steady, and far below what 2 shared cores serve,
# so that the faults, not the load, decide the outcome.
RATE = 200
CONNECTIONS = 8
# The load balancer's `timeout server` (deploy/haproxy/haproxy.cfg).
SERVER_TIMEOUT = 12.0

Psql = Callable[[str], str]


def under_load(port: int, action: Callable[[], None], settle: float = 3.0) -> tuple[Tally, float]:
    """Steady load for 2 s, then `action` (its duration is returned), then `settle` s more."""
    load = FleetLoad(port, rate=RATE, connections=CONNECTIONS).start()
    try:
        time.sleep(2)
        started = time.monotonic()
        action()
        took = time.monotonic() - started
        time.sleep(settle)
    finally:
        tally = load.stop()
    return tally, took


def assert_every_request_succeeded(tally: Tally, what: str) -> None:
    bad = len(tally.outcomes) - tally.count("ok")
    assert bad == 0, f"{what}: {tally.summary()}; for example {tally.failures()}"


def record(name: str, tally: Tally, took: float, extra: str = "") -> None:
    FINDINGS[f"fleet: {name}"] = f"{tally.summary()}; the change took {took:.1f} s{extra}"


def assert_database_agrees(tally: Tally, psql: Psql) -> int:
    """Every acknowledged create is in the database once, every refused one is not, every
    acknowledged DELETE removed its user, each user holds the name of its last acknowledged PATCH,
    and no user of the run exists that no answer accounts for. Returns the rows checked."""
    rows = [
        line.split("|")
        for line in psql(f"SELECT id, email, name FROM users WHERE email LIKE 'fleet-{tally.run_id}-%'").splitlines()
    ]
    emails = Counter(email for _, email, _ in rows)
    names = {user: name for user, _, name in rows}
    created = {o.email for o in tally.acknowledged("create")}
    # A user the load created may have been deleted since (and a DELETE without an answer may
    # or may not have happened): those are checked by id below.
    deleting = {o.user for o in tally.outcomes if o.kind == "delete"}
    kept = {o.email for o in tally.acknowledged("create") if o.user not in deleting}
    assert all(emails[email] == 1 for email in kept), [(e, emails[e]) for e in kept if emails[e] != 1][:5]
    assert all(emails[email] <= 1 for email in created), [(e, emails[e]) for e in created if emails[e] > 1][:5]
    refused = {o.email for o in tally.outcomes if o.kind == "create" and o.verdict == "refused"}
    assert not refused & set(emails), f"refused creates were written: {sorted(refused & set(emails))[:5]}"
    deleted = {o.user for o in tally.acknowledged("delete")}
    assert not deleted & set(names), f"deleted users still there: {sorted(deleted & set(names))[:5]}"
    expected = tally.last_acknowledged_names()
    wrong = {user: (name, names.get(user)) for user, name in expected.items() if names.get(user) != name}
    assert not wrong, f"the last acknowledged PATCH is not what the database holds: {list(wrong.items())[:5]}"
    unknown = {o.email for o in tally.outcomes if o.kind == "create" and o.verdict == "unknown"}
    phantom = {e for e in emails if "-seed-" not in e} - created - unknown
    assert not phantom, f"users no answer accounts for: {sorted(phantom)[:5]}"
    return len(rows)


def assert_reads_follow_patches(port: int, rounds: int = 60, reads: int = 4) -> tuple[int, Counter[str]]:
    """PATCH a user through the load balancer, then read it through it `reads` times, `rounds`
    times: no read may return an older name than the PATCH that was acknowledged before it."""
    created = request(port, "POST", "/v1/users", {"name": "v0"}, {"Idempotency-Key": str(uuid.uuid4())})
    assert created.status == 201, created.body
    path = f"/v1/users/{created.json()['id']}"
    stale, served_by = [], Counter()
    for version in range(1, rounds + 1):
        patched = request(port, "PATCH", path, {"name": f"v{version}"}, {"Idempotency-Key": str(uuid.uuid4())})
        assert patched.status == 200, patched.body
        for _ in range(reads):
            read = request(port, "GET", path)
            served_by[read.headers.get("x-served-by", "?")] += 1
            assert read.status == 200, read.body
            if read.json()["name"] != f"v{version}":
                stale.append((version, read.json()["name"], read.headers.get("x-served-by")))
    assert not stale, f"{len(stale)} reads older than the acknowledged PATCH, e.g. {stale[:5]}"
    return rounds * reads, served_by


def assert_only_safe_requests_are_retried(
    port: int, pause: Callable[[], None], unpause: Callable[[], None], psql: Psql
) -> str:
    """One replica frozen; six creates, 50 ms apart, alternately without and with an
    Idempotency-Key. Round robin gives the frozen replica one of each. After the load balancer's
    `timeout server` the keyed one is retried on another replica (201) and the unkeyed one is
    not: 504, outcome unknown. Every acknowledged create exists once. The unkeyed one answered 504
    exists at most once: the thawed replica usually carries out what it had received (so a retry
    would have made it twice), but may also write nothing. The request came on a keep-alive
    connection whose 5 s header-read timer (which also ends idle keep-alives) ran out while the
    replica was frozen; on thawing, that timer can fire before the buffered request is read, and
    the connection closes with the request unread ("read header from client timeout" at debug
    level; reproduced with SIGSTOP on a local process). Either is what "outcome unknown" allows."""
    answers: list[tuple[bool, str, Response, float]] = []

    def create(keyed: bool) -> None:
        email = f"retry-{uuid.uuid4().hex[:12]}@example.com"
        headers = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
        started = time.monotonic()
        response = request(port, "POST", "/v1/users", {"name": "retry", "email": email}, headers, timeout=60)
        answers.append((keyed, email, response, time.monotonic() - started))

    pause()
    try:
        threads = [threading.Thread(target=create, args=(i % 2 == 1,)) for i in range(6)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join(timeout=90)
    finally:
        unpause()
    keyed = [(r, s) for k, _, r, s in answers if k]
    unkeyed = [(r, s) for k, _, r, s in answers if not k]
    assert [r.status for r, _ in keyed] == [201] * 3, [(r.status, r.body[:200]) for r, _ in keyed]
    assert any(s >= SERVER_TIMEOUT for _, s in keyed), "no keyed create reached the frozen replica"
    timed_out = [r for r, _ in unkeyed if r.status != 201]
    assert [r.status for r in timed_out] == [504], [(r.status, r.body[:200]) for r, _ in unkeyed]
    assert "outcome of a write is unknown" in timed_out[0].json()["detail"]
    assert timed_out[0].headers["content-type"] == "application/problem+json"
    acknowledged = [email for _, email, r, _ in answers if r.status == 201]
    (unknown,) = [email for _, email, r, _ in answers if r.status != 201]

    def count(emails: list[str]) -> int:
        listed = ",".join(f"'{email}'" for email in emails)
        return int(psql(f"SELECT count(*) FROM users WHERE email IN ({listed})").strip())

    found = count(acknowledged)
    assert found == len(acknowledged) == 5, f"{found} of 5 acknowledged creates exist"
    # The thawed replica has its chance to write the unknown one: wait for it, then hold it to once.
    deadline = time.monotonic() + 15
    while count([unknown]) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    written = count([unknown])
    assert written <= 1, f"the create whose outcome was unknown exists {written} times"
    fate = "written once the replica thawed" if written else "never written by the thawed replica"
    return f"keyed creates retried elsewhere (201 after the 12 s server timeout), the unkeyed one not (504, {fate})"


def lb_counter(metrics: str, name: str) -> float:
    """One series of the load balancer's Prometheus page (proxy="api")."""
    match = re.search(rf'^{name}\{{proxy="api"\}} (\S+)$', metrics, flags=re.MULTILINE)
    assert match, f"{name} is not on the load balancer's /metrics"
    return float(match.group(1))
