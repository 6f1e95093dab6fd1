"""No user ever sees, changes or deletes another user's task: 404, never 403, never its data."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from tasks_factories import User, create_task, truncate_tasks


async def test_another_users_task_is_404_on_every_route(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    mine = await create_task(client, alice, title="Alice's")
    bobs = await create_task(client, bob, title="Bob's secret")
    url = f"/api/tasks/{bobs['id']}"
    compat = f"/api/{alice.id}/tasks/{bobs['id']}"
    attempts: list[tuple[str, str, Any]] = [
        ("GET", url, None),
        ("PATCH", url, {"title": "pwned"}),
        ("PUT", url, {"title": "pwned"}),
        ("DELETE", url, None),
        ("PATCH", f"{url}/complete", None),
        ("POST", f"{url}/move", {"status": "done"}),
        ("GET", compat, None),
        ("PUT", compat, {"title": "pwned"}),
        ("DELETE", compat, None),
        ("PATCH", f"{compat}/complete", None),
    ]
    for method, path, body in attempts:
        for if_match in (None, '"1"', "*"):
            headers = alice.headers if if_match is None else {**alice.headers, "If-Match": if_match}
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, if_match)
            assert response.json()["code"] == "task_not_found"
            assert "secret" not in response.text

    # Moving my card next to Bob's reveals nothing either.
    anchored = await client.post(
        f"/api/tasks/{mine['id']}/move", json={"after_id": bobs["id"]}, headers=alice.headers
    )
    assert anchored.json()["code"] == "anchor_not_found"

    untouched = await client.get(url, headers=bob.headers)
    assert untouched.json() == bobs
    board = (await client.get("/api/board", headers=alice.headers)).json()
    assert [task["title"] for column in board["columns"] for task in column["items"]] == ["Alice's"]


OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 2),  # acting user
        st.sampled_from(["create", "get", "patch", "put", "delete", "complete", "move", "list"]),
        st.integers(0, 1000),  # which existing task (modulo)
    ),
    min_size=10,
    max_size=40,
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
async def test_users_only_ever_reach_their_own_tasks(
    client: httpx.AsyncClient, users: list[User], tasks_db: AsyncEngine, operations: list[Any]
) -> None:
    await truncate_tasks(tasks_db)
    actors = users[:3]
    owner_of: dict[str, int] = {}
    titles: dict[str, str] = {}
    for step, (actor_index, operation, pick) in enumerate(operations):
        actor = actors[actor_index]
        if operation == "create" or not owner_of:
            task = await create_task(client, actor, title=f"u{actor_index} step{step}")
            owner_of[task["id"]] = actor_index
            titles[task["id"]] = task["title"]
            continue
        if operation == "list":
            listed = await client.get("/api/tasks?limit=100", headers=actor.headers)
            ids = {task["id"] for task in listed.json()["items"]}
            assert ids == {tid for tid, owner in owner_of.items() if owner == actor_index}
            continue
        target = sorted(owner_of)[pick % len(owner_of)]
        mine = owner_of[target] == actor_index
        url = f"/api/tasks/{target}"
        new_title = f"u{actor_index} step{step} edit"
        method, path, body = {
            "get": ("GET", url, None),
            "patch": ("PATCH", url, {"title": new_title}),
            "put": ("PUT", url, {"title": new_title}),
            "delete": ("DELETE", url, None),
            "complete": ("PATCH", f"{url}/complete", None),
            "move": ("POST", f"{url}/move", {"status": "done"}),
        }[operation]
        response = await client.request(method, path, json=body, headers=actor.headers)
        if not mine:
            assert response.status_code == 404, (operation, response.text)
            assert titles[target] not in response.text
            continue
        assert response.status_code in (200, 204), response.text
        if operation == "delete":
            del owner_of[target]
            del titles[target]
        elif operation in ("patch", "put"):
            titles[target] = new_title
        if operation != "delete":
            assert response.json()["owner_id"] == str(actor.id)

    for index, actor in enumerate(actors):
        listed = await client.get("/api/tasks?limit=100", headers=actor.headers)
        seen = {task["id"]: task["title"] for task in listed.json()["items"]}
        assert seen == {tid: titles[tid] for tid, owner in owner_of.items() if owner == index}
