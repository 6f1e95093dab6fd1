"""The app rate limits behind the real gateway: the client each one counts is the real one."""

from __future__ import annotations

import httpx
from e2e_support import new_account


async def _login_remaining(client: httpx.AsyncClient, name: str) -> int:
    response = await client.post("/auth/login", json={"username": name, "password": "wrong"})
    assert response.status_code == 401
    return int(response.headers["RateLimit-Remaining"])


async def test_each_client_address_has_its_own_bucket_through_the_gateway(
    gateway: httpx.AsyncClient, another_gateway: httpx.AsyncClient
) -> None:
    """The services trust the gateway's X-Forwarded-For (and only it): were it ignored, both
    clients would share the gateway's one address and one bucket."""
    a1 = await _login_remaining(gateway, "e2e_nobody_1")
    a2 = await _login_remaining(gateway, "e2e_nobody_2")
    b1 = await _login_remaining(another_gateway, "e2e_nobody_3")
    assert a2 == a1 - 1
    assert b1 == a1


async def test_a_spoofed_forwarded_for_does_not_buy_a_fresh_bucket(
    gateway: httpx.AsyncClient,
) -> None:
    before = await _login_remaining(gateway, "e2e_spoof_1")
    spoofed = await gateway.post(
        "/auth/login",
        json={"username": "e2e_spoof_2", "password": "wrong"},
        headers={"X-Forwarded-For": "198.51.100.99"},
    )
    assert int(spoofed.headers["RateLimit-Remaining"]) == before - 1


async def test_a_task_write_reports_its_quota(gateway: httpx.AsyncClient) -> None:
    account = await new_account(gateway)
    created = await gateway.post("/api/tasks", json={"title": "quota"}, headers=account.headers)
    assert created.status_code == 201
    assert created.headers["RateLimit-Limit"] == "10000"
    assert int(created.headers["RateLimit-Remaining"]) == 9999
