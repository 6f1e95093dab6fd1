"""Types and counters shared by the auth tests (on pytest's `pythonpath`, unlike conftest)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

ISSUER = "http://testserver/auth"

_counter = itertools.count(1)


def next_number() -> int:
    """A number unique within the test session, for unique usernames and emails."""
    return next(_counter)


@dataclass
class Account:
    id: str
    email: str
    username: str
    password: str


RegisterFn = Callable[..., Awaitable[Account]]
SqlFn = Callable[[str], Awaitable[list[Any]]]
LoginFn = Callable[[Account], Awaitable[dict[str, Any]]]
MakeAccountFn = Callable[..., Awaitable[Account]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    """The claims of an access token, unverified (the tests check signatures elsewhere)."""
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
