"""What a Kanban frontend does, end to end, through the gateway only."""

from __future__ import annotations

import asyncio

import httpx
from e2e_support import GatewayAccount, new_account
from reliability_support import gateway_routes_again

from taskgate_devstack.stack import DevStack


async def _create(client: httpx.AsyncClient, account: GatewayAccount, title: str) -> str:
    response = await client.post("/api/tasks", json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def test_register_login_tasks_board_move_refresh_logout(
    gateway: httpx.AsyncClient,
) -> None:
    account = await new_account(gateway)
    first = await _create(gateway, account, "Design the board")
    second = await _create(gateway, account, "Write the API")
    third = await _create(gateway, account, "Ship it")

    board = (await gateway.get("/api/board", headers=account.headers)).json()
    todo = next(column for column in board["columns"] if column["status"] == "todo")
    assert [card["id"] for card in todo["items"]] == [first, second, third]

    moved = await gateway.post(
        f"/api/tasks/{third}/move", json={"before_id": first}, headers=account.headers
    )
    assert moved.status_code == 200
    done = await gateway.post(
        f"/api/tasks/{second}/move", json={"status": "done"}, headers=account.headers
    )
    assert done.json()["completed_at"] is not None

    board = (await gateway.get("/api/board", headers=account.headers)).json()
    columns = {column["status"]: [c["id"] for c in column["items"]] for column in board["columns"]}
    assert columns == {"todo": [third, first], "in_progress": [], "done": [second]}

    refreshed = await gateway.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200
    new_tokens = refreshed.json()
    assert new_tokens["refresh_token"] != account.refresh_token
    listing = await gateway.get(
        "/api/tasks", headers={"Authorization": f"Bearer {new_tokens['access_token']}"}
    )
    assert {task["id"] for task in listing.json()["items"]} == {first, second, third}

    logout = await gateway.post("/auth/logout", json={"refresh_token": new_tokens["refresh_token"]})
    assert logout.status_code == 204
    after_logout = await gateway.post(
        "/auth/refresh", json={"refresh_token": new_tokens["refresh_token"]}
    )
    assert after_logout.status_code == 401
    old = await gateway.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert old.status_code == 401


async def test_two_users_cannot_see_each_others_tasks(gateway: httpx.AsyncClient) -> None:
    alice, bob = await asyncio.gather(new_account(gateway), new_account(gateway))
    secret = await _create(gateway, alice, "Alice's secret plan")

    bobs_list = (await gateway.get("/api/tasks", headers=bob.headers)).json()
    assert secret not in {task["id"] for task in bobs_list["items"]}
    for method, path in [
        ("GET", f"/api/tasks/{secret}"),
        ("PATCH", f"/api/tasks/{secret}"),
        ("DELETE", f"/api/tasks/{secret}"),
    ]:
        response = await gateway.request(
            method,
            path,
            headers=bob.headers,
            json={"title": "mine now"} if method == "PATCH" else None,
        )
        assert response.status_code == 404, (method, response.text)
        assert "secret plan" not in response.text
    compat = await gateway.get(f"/api/{alice.user_id}/tasks", headers=bob.headers)
    assert compat.status_code == 403
    assert compat.json()["code"] == "user_mismatch"
    still_there = await gateway.get(f"/api/tasks/{secret}", headers=alice.headers)
    assert still_there.json()["title"] == "Alice's secret plan"


async def test_tasks_keeps_accepting_tokens_while_auth_is_down(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    task = await _create(gateway, account, "Survives an auth outage")
    await asyncio.to_thread(stack.stop_service, "auth")
    try:
        response = await gateway.get(f"/api/tasks/{task}", headers=account.headers)
        assert response.status_code == 200
        forged = account.access_token[:-4] + (
            "AAAA" if not account.access_token.endswith("AAAA") else "BBBB"
        )
        rejected = await gateway.get(
            f"/api/tasks/{task}", headers={"Authorization": f"Bearer {forged}"}
        )
        assert rejected.status_code == 401
        login = await gateway.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        assert login.status_code in (502, 503)
        assert login.json()["code"] in ("bad_gateway", "service_unavailable")  # gateway-made
    finally:
        await asyncio.to_thread(stack.start_service, "auth")
    await gateway_routes_again(gateway, account.headers, "/auth/me")
