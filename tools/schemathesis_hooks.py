"""Schemathesis hooks for scripts/check-api-contract.sh (loaded through SCHEMATHESIS_HOOKS).

The contract asks clients for a fresh Idempotency-Key per logical request (keys are global to
the service; the same key with another request is a 422). Schemathesis reuses the document's
example key, and whatever short keys Hypothesis draws, across different requests, so it would
report the service's correct 422 as a valid request rejected. This hook makes it behave as the
contract asks a client to: every valid key it sends is made unique by a suffix, while the key
stays valid (visible ASCII, at most 255 characters). Invalid keys are left alone, so the
negative checks still see the 400 they expect. Replays of one key are tested in
tests/api/idempotency.rs.
"""

from __future__ import annotations

import itertools
import re

import schemathesis

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
VALID_KEY = re.compile(r"[!-~]{1,255}")

_sequence = itertools.count()


def unique_key(key: str, number: int) -> str:
    """`key` with a suffix no other call gets, still a valid key."""
    suffix = f".{number:x}"
    return key[: MAX_KEY_LENGTH - len(suffix)] + suffix


@schemathesis.hook
def before_call(context, case, **kwargs) -> None:  # noqa: ARG001 (the hook's signature)
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == HEADER.lower() and isinstance(value, str) and VALID_KEY.fullmatch(value):
            headers[name] = unique_key(value, next(_sequence))
