#!/usr/bin/env python3
"""Prints user ids of an already running stack, one a line, for `BENCH_URL=… make bench`.

Usage: bench/ids.py BASE_URL WANTED MINIMUM

Its database may not be reachable from the host (the production stack publishes no Postgres
port), so the ids come from the API itself: pages of `GET /v1/users?limit=100` until WANTED ids
are known or the list ends. When fewer than MINIMUM exist (a fresh stack), the missing users are
created with `POST /v1/users`, so at most MINIMUM requests are sent; seeding thousands that way
would be slow and is what the local mode's single INSERT avoids.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request

PAGE = 100


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def create_user(base: str, number: int) -> str:
    body = json.dumps({"name": f"Bench Seed {number}"}).encode()
    request = urllib.request.Request(
        f"{base}/v1/users", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base, wanted, minimum = sys.argv[1].rstrip("/"), int(sys.argv[2]), int(sys.argv[3])
    ids: list[str] = []
    cursor = None
    while len(ids) < wanted:
        query = {"limit": str(PAGE)}
        if cursor:
            query["cursor"] = cursor
        page = get_json(f"{base}/v1/users?{urllib.parse.urlencode(query)}")
        ids.extend(user["id"] for user in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    for number in range(len(ids), minimum):
        ids.append(create_user(base, number))
    print("\n".join(ids[:wanted]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
