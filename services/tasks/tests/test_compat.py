"""The per-user URL family `/api/{user_id}/tasks…` used by existing todo frontends."""

from __future__ import annotations

import httpx
import pytest
from tasks_factories import User, create_task


async def test_compat_round_trip(client: httpx.AsyncClient, alice: User) -> None:
    base = f"/api/{alice.id}/tasks"
    created = await client.post(base, json={"title": "Buy milk"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    task = created.json()
    assert created.headers["Location"] == f"{base}/{task['id']}"
    assert created.headers["ETag"] == '"1"'
    assert task["completed"] is False

    listed = await client.get(base, headers=alice.headers)
    assert listed.status_code == 200
    assert listed.json() == [task]  # a plain array

    fetched = await client.get(f"{base}/{task['id']}", headers=alice.headers)
    assert fetched.json() == task

    replaced = await client.put(
        f"{base}/{task['id']}",
        json={"title": "Buy oat milk", "description": "2 litres"},
        headers={**alice.headers, "If-Match": '"1"'},
    )
    assert replaced.status_code == 200
    assert replaced.json()["title"] == "Buy oat milk"

    toggled = await client.patch(f"{base}/{task['id']}/complete", headers=alice.headers)
    assert toggled.json()["completed"] is True
    toggled_back = await client.patch(f"{base}/{task['id']}/complete", headers=alice.headers)
    assert toggled_back.json()["completed"] is False

    # One set of tasks behind both URL families.
    main = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert main.json()["title"] == "Buy oat milk"

    stale = await client.delete(
        f"{base}/{task['id']}", headers={**alice.headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    deleted = await client.delete(f"{base}/{task['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    assert (await client.get(base, headers=alice.headers)).json() == []


async def test_compat_list_is_bounded_with_a_link_to_the_next_page(
    client: httpx.AsyncClient, alice: User
) -> None:
    for i in range(5):
        await create_task(client, alice, title=f"t{i}")
    base = f"/api/{alice.id}/tasks"
    first = await client.get(f"{base}?limit=3&status=todo", headers=alice.headers)
    assert [task["title"] for task in first.json()] == ["t0", "t1", "t2"]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    next_url = link[1 : link.index(">")]
    assert next_url.startswith(f"{base}?")
    second = await client.get(next_url, headers=alice.headers)
    assert [task["title"] for task in second.json()] == ["t3", "t4"]
    assert "Link" not in second.headers
    too_many = await client.get(f"{base}?limit=101", headers=alice.headers)
    assert too_many.status_code == 422


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"title": "sneaky"}),
        ("GET", "/{task}", None),
        ("PUT", "/{task}", {"title": "sneaky"}),
        ("DELETE", "/{task}", None),
        ("PATCH", "/{task}/complete", None),
    ],
)
async def test_another_users_id_in_the_url_is_403(
    client: httpx.AsyncClient,
    alice: User,
    bob: User,
    method: str,
    suffix: str,
    body: dict[str, str] | None,
) -> None:
    bobs = await create_task(client, bob, title="Bob's")
    for task_id in (bobs["id"], "6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11"):
        url = f"/api/{bob.id}/tasks" + suffix.format(task=task_id)
        response = await client.request(method, url, json=body, headers=alice.headers)
        assert response.status_code == 403, response.text
        assert response.json() == {
            "detail": "The user id in the URL is not the token's user",
            "code": "user_mismatch",
        }
    unchanged = await client.get(f"/api/tasks/{bobs['id']}", headers=bob.headers)
    assert unchanged.json()["title"] == "Bob's"
    assert unchanged.json()["version"] == 1
    bob_list = await client.get("/api/tasks", headers=bob.headers)
    assert [task["title"] for task in bob_list.json()["items"]] == ["Bob's"]


async def test_a_malformed_user_id_is_422(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/someone/tasks", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "user_id"]


async def test_compat_routes_need_a_token(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get(f"/api/{alice.id}/tasks")
    assert response.status_code == 401
