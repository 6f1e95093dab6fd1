"""Opaque keyset cursors: base64url JSON holding the sort, a filter fingerprint and the last key.

A cursor is only valid with the sort and filters it was made for; anything else (or a tampered
cursor) is a validation error. The owner is never in the cursor: every query is scoped to the
caller, so a cursor cannot reach another user's tasks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

MAX_CURSOR_LENGTH = 1024


class InvalidCursor(ValueError):
    """The cursor is malformed, tampered with, or was made for another query."""


def fingerprint(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(sort: str, filters_fingerprint: str, key: list[Any]) -> str:
    payload = json.dumps({"s": sort, "f": filters_fingerprint, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, sort: str, filters_fingerprint: str) -> list[Any]:
    """The key a cursor carries, after checking it belongs to this sort and these filters."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("the cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not one this service issued") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("k"), list):
        raise InvalidCursor("the cursor is not one this service issued")
    if payload.get("s") != sort:
        raise InvalidCursor("the cursor was issued for another sort order")
    if payload.get("f") != filters_fingerprint:
        raise InvalidCursor("the cursor was issued for other filters")
    key: list[Any] = payload["k"]
    return key
