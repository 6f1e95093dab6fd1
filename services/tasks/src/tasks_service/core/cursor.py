"""Opaque keyset cursors, signed so that the service only ever accepts cursors it issued.

A cursor is `<payload>.<tag>`, both base64url without padding:

- payload: compact JSON `{"s": sort, "f": filter fingerprint, "k": key}`, where the key is the
  last row's sort key: `[status, position, id]` for `position`, `[time, id]` for the time sorts
  (`time` in integer microseconds since 1970-01-01 UTC; null for an undated task under
  `due_at`), `id` the task's UUID;
- tag: the first 16 bytes of HMAC-SHA256(secret, "taskgate-cursor-v1" NUL payload), checked
  with a constant-time comparison before anything in the payload is read.

A cursor is only valid with the sort and filters it was made for. Even a correctly signed key is
range-checked value by value before it reaches a query (defence in depth): every value must be
one the database driver can send. The owner is never in the cursor: every query is scoped to the
caller, so a cursor cannot reach another user's tasks.

The secret is `TASKS_CURSOR_SECRET` (random per process when unset): a cursor signed by another
replica or an earlier process is refused like a forged one, and the client starts again from
the first page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks_service.models import TaskStatus

MAX_CURSOR_LENGTH = 1024
TAG_BYTES = 16
_DOMAIN = b"taskgate-cursor-v1\x00"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

# Every sort's key, after its first value: (kind of the first value, may it be null).
_TIME_SORTS = {"-created_at": False, "-updated_at": False, "due_at": True}
_STATUSES = frozenset(status.value for status in TaskStatus)
_INT64 = range(-(2**63), 2**63)

# Times are carried as microseconds since the Unix epoch, in UTC. The range is every instant a
# Python datetime can hold in UTC (years 1..9999), all of which the driver can send; its two
# ends are what asyncpg sends as PostgreSQL's -infinity/infinity, which is what they read back
# as (see `_micros`), so rows stored that way keep their place in a walk.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MIN_TIME = datetime.min.replace(tzinfo=UTC)
MAX_TIME = datetime.max.replace(tzinfo=UTC)
_MICROS = range((MIN_TIME - _EPOCH) // _MICROSECOND, (MAX_TIME - _EPOCH) // _MICROSECOND + 1)

_NOT_ISSUED = (
    "the cursor is not one this service issued (or it was issued with another key, e.g. "
    "before a restart); start again from the first page"
)


class InvalidCursor(ValueError):
    """The cursor is malformed, tampered with, or was made for another query."""


def fingerprint(filters: Mapping[str, Any]) -> str:
    """A short digest of the normalised filters: what binds a cursor to its query."""
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(secret: bytes, sort: str, filters: Mapping[str, Any], key: Sequence[Any]) -> str:
    """The cursor continuing after the row whose sort key is `key` (as the query returned it)."""
    body = {"s": sort, "f": fingerprint(filters), "k": _jsonable(sort, key)}
    payload = json.dumps(body, separators=(",", ":")).encode()
    return f"{_b64encode(payload)}.{_b64encode(_tag(secret, payload))}"


def decode_cursor(secret: bytes, cursor: str, sort: str, filters: Mapping[str, Any]) -> list[Any]:
    """The typed key a cursor carries, ready for the query; raises `InvalidCursor` unless the
    cursor was signed with `secret`, for this sort and these filters, with a key in range."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("the cursor is too long")
    encoded_payload, dot, encoded_tag = cursor.partition(".")
    payload = _b64decode(encoded_payload)
    tag = _b64decode(encoded_tag)
    if not dot or len(tag) != TAG_BYTES or not hmac.compare_digest(tag, _tag(secret, payload)):
        raise InvalidCursor(_NOT_ISSUED)
    try:
        body = json.loads(payload)
    except ValueError:  # signed but unreadable: only a leaked secret makes this possible
        raise InvalidCursor(_NOT_ISSUED) from None
    if not isinstance(body, dict) or body.keys() != {"s", "f", "k"}:
        raise InvalidCursor(_NOT_ISSUED)
    if body["s"] != sort:
        raise InvalidCursor("the cursor was issued for another sort order")
    if body["f"] != fingerprint(filters):
        raise InvalidCursor("the cursor was issued for other filters")
    return _typed_key(sort, body["k"])


def _tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + payload, hashlib.sha256).digest()[:TAG_BYTES]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url: only its alphabet, and only the one canonical spelling of the bytes
    (so that changing any character of a cursor changes what it says)."""
    if not _BASE64URL.fullmatch(text):
        raise InvalidCursor(_NOT_ISSUED)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor(_NOT_ISSUED) from None
    if _b64encode(data) != text:
        raise InvalidCursor(_NOT_ISSUED)
    return data


def _jsonable(sort: str, key: Sequence[Any]) -> list[Any]:
    if sort == "position":
        status, position, task_id = key
        return [str(TaskStatus(status)), int(position), str(task_id)]
    moment, task_id = key
    return [None if moment is None else _micros(moment), str(task_id)]


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch. asyncpg reads PostgreSQL's ±infinity as the naive
    `datetime.max`/`datetime.min`; taken as UTC they are the ends of the range, which asyncpg
    sends back as ±infinity, so the keyset comparison stays exact."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _typed_key(sort: str, raw: object) -> list[Any]:
    """Each value checked for type and range, then converted to what the query binds."""
    if sort == "position":
        if not isinstance(raw, list) or len(raw) != 3:
            raise InvalidCursor(_NOT_ISSUED)
        status, position, task_id = raw
        if not isinstance(status, str) or status not in _STATUSES:
            raise InvalidCursor(_NOT_ISSUED)
        if type(position) is not int or position not in _INT64:
            raise InvalidCursor(_NOT_ISSUED)
        return [TaskStatus(status), position, _uuid(task_id)]
    if sort not in _TIME_SORTS or not isinstance(raw, list) or len(raw) != 2:
        raise InvalidCursor(_NOT_ISSUED)
    micros, task_id = raw
    if micros is None and _TIME_SORTS[sort]:
        return [None, _uuid(task_id)]
    if type(micros) is not int or micros not in _MICROS:
        raise InvalidCursor(_NOT_ISSUED)
    return [_EPOCH + micros * _MICROSECOND, _uuid(task_id)]


def _uuid(value: object) -> uuid.UUID:
    """Only the canonical lowercase spelling the service writes."""
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidCursor(_NOT_ISSUED)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidCursor(_NOT_ISSUED) from None
    if str(parsed) != value:
        raise InvalidCursor(_NOT_ISSUED)
    return parsed
