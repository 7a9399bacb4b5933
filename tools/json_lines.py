"""Every line of the given files is one JSON object (the service's log format).

    python tools/json_lines.py FILE...     (scripts/check-observability.sh runs it)

Prints each line that is not, with its file and line number, on stderr; exits 1 if there is one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def bad_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(line number from 1, line) of every line that is not a JSON object."""
    return [(number, line) for number, line in enumerate(lines, 1) if not is_json_object(line)]


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            for number, line in bad_lines(stream):
                print(f"check-observability: {path}:{number} is not a JSON object: {line!r}", file=sys.stderr)
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
