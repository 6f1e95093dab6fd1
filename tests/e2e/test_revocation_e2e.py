"""Revocation through the real stack: a login ended at auth stops working at `/api` within
seconds (the tasks service follows auth's feed), the feed itself is not reachable through the
gateway, and with auth stopped the tasks service keeps what it knows."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import gateway_routes_again, own_ip_client, wait_until

from taskgate_devstack.stack import DevStack

REFUSED_WITHIN = 30.0  # a bound for "never", not the target (bench/revocation_delay.py)


async def _refused(client: httpx.AsyncClient, headers: dict[str, str]) -> float:
    """Seconds until `/api/tasks` answers 401 `token_revoked` for `headers` (bounded)."""
    started = time.monotonic()
    while True:
        response = await client.get("/api/tasks?limit=1", headers=headers)
        if response.status_code == 401:
            assert response.json()["code"] == "token_revoked"
            assert response.headers["www-authenticate"].startswith('Bearer realm="tasks-api"')
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        if time.monotonic() - started > REFUSED_WITHIN:
            raise AssertionError(f"still accepted {REFUSED_WITHIN} s after the revocation")
        await asyncio.sleep(0.05)


async def _second_login(gateway: httpx.AsyncClient, account: GatewayAccount) -> dict[str, str]:
    response = await gateway.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_logout_is_refused_at_the_api_within_seconds(gateway: httpx.AsyncClient) -> None:
    account = await new_account(gateway)
    other_login = await _second_login(gateway, account)
    assert (await gateway.get("/api/tasks", headers=account.headers)).status_code == 200

    logout = await gateway.post("/auth/logout", json={"refresh_token": account.refresh_token})
    assert logout.status_code == 204
    delay = await _refused(gateway, account.headers)
    print(f"\nlogout → /api 401 token_revoked after {delay:.2f} s (through the gateway)")
    # The user's other login is another session: untouched.
    assert (await gateway.get("/api/tasks", headers=other_login)).status_code == 200


async def test_password_change_is_refused_at_the_api(gateway: httpx.AsyncClient) -> None:
    account = await new_account(gateway)
    other_login = await _second_login(gateway, account)
    changed = await gateway.post(
        "/auth/change-password",
        json={"current_password": account.password, "new_password": "an e2e new password 1"},
        headers=account.headers,
    )
    assert changed.status_code == 204, changed.text
    for headers in (account.headers, other_login):
        await _refused(gateway, headers)


@pytest.mark.parametrize("path", ["/revocations", "/revocations?after=0-0&limit=10"])
async def test_the_feed_is_not_routed_by_the_gateway(
    gateway: httpx.AsyncClient, stack: DevStack, path: str
) -> None:
    through_gateway = await gateway.get(path)
    assert through_gateway.status_code == 404
    assert through_gateway.json()["code"] == "not_found"
    assert "entries" not in through_gateway.text
    async with own_ip_client(stack.url("auth")) as auth:
        direct = await auth.get(path)
    assert direct.status_code == 200
    assert "entries" in direct.json()


async def test_auth_stopped_tasks_keeps_serving_and_refusing(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    kept = await _second_login(gateway, account)
    logout = await gateway.post("/auth/logout", json={"refresh_token": account.refresh_token})
    assert logout.status_code == 204
    await _refused(gateway, account.headers)

    await asyncio.to_thread(stack.stop_service, "auth")
    try:
        async with own_ip_client(stack.url("tasks")) as tasks:

            async def failing() -> bool:
                health = (await tasks.get("/health")).json()
                details = health["checks"]["revocations"]["details"]
                return bool(details["consecutive_failures"] >= 1)

            await wait_until(failing, timeout=20.0)
            assert (await tasks.get("/health/ready")).status_code == 200
            assert (await tasks.get("/api/tasks", headers=kept)).status_code == 200
            refused = await tasks.get("/api/tasks", headers=account.headers)
            assert refused.status_code == 401
            assert refused.json()["code"] == "token_revoked"
        # Through the gateway too (the tasks upstream stays healthy).
        assert (await gateway.get("/api/tasks", headers=kept)).status_code == 200
        assert (await gateway.get("/api/tasks", headers=account.headers)).status_code == 401
    finally:
        await asyncio.to_thread(stack.start_service, "auth")

    await gateway_routes_again(gateway, kept, "/auth/me")
