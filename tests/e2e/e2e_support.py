"""Helpers for the end-to-end tests (on pytest's pythonpath, unlike conftest)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import httpx

_numbers = itertools.count(1)


@dataclass
class GatewayAccount:
    user_id: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def new_account(client: httpx.AsyncClient) -> GatewayAccount:
    """Register and log in through the gateway."""
    n = next(_numbers)
    username = f"e2e_{n}_{uuid.uuid4().hex[:8]}"
    password = f"e2e password {n}"
    registered = await client.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    assert registered.status_code == 201, registered.text
    tokens = await client.post("/auth/login", json={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return GatewayAccount(
        registered.json()["id"], username, password, body["access_token"], body["refresh_token"]
    )
