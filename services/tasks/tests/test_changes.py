"""The change log and `GET /api/changes`: every change has its entry, written in the same
transaction; replaying the entries rebuilds exactly what the API shows; nobody sees another
user's entries; old cursors are refused clearly."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sync_workloads import (
    OPERATIONS,
    all_changes,
    apply_operation,
    changes,
    expire_changes,
    replayed_state,
    server_state,
)
from tasks_factories import (
    User,
    create_task,
    default_board,
    truncate_tasks,
)

from tasks_service.context import TasksContext
from tasks_service.repositories import tasks as task_rows
from tasks_service.repositories.tasks import owner_lock


async def test_each_change_has_its_entry_as_the_api_shows_the_object(
    client: httpx.AsyncClient, alice: User
) -> None:
    start = (await changes(client, alice, since=None))["next_cursor"]
    task = await create_task(client, alice, title="draft")
    patched = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": "final"}, headers=alice.headers
    )
    assert patched.status_code == 200
    entries = await all_changes(client, alice, start)
    task_entries = [entry for entry in entries if entry["type"] == "task"]
    assert [entry["op"] for entry in task_entries] == ["upsert", "upsert"]
    assert [entry["data"]["title"] for entry in task_entries] == ["draft", "final"]
    shown = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
    assert task_entries[-1]["data"] == shown
    assert task_entries[-1]["version"] == shown["version"] == 2
    cursors = [int(entry["cursor"]) for entry in entries]
    assert cursors == sorted(set(cursors))
    assert cursors[0] > int(start)

    deleted = await client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    tombstone = list(await all_changes(client, alice, entries[-1]["cursor"]))
    assert [(e["type"], e["op"], e["id"], e["data"]) for e in tombstone if e["type"] == "task"] == [
        ("task", "delete", task["id"], None)
    ]


async def test_a_column_count_change_is_an_entry_too(
    client: httpx.AsyncClient, alice: User
) -> None:
    """The column's `total` changes with every card in or out: the entry keeps it current."""
    board = await default_board(client, alice)
    todo = board["columns"][0]
    start = (await changes(client, alice, since=None))["next_cursor"]
    await create_task(client, alice, column_id=todo["id"])
    entries = await all_changes(client, alice, start)
    column = [entry for entry in entries if entry["type"] == "column"]
    assert column[-1]["id"] == todo["id"]
    assert column[-1]["data"]["total"] == todo["total"] + 1


async def test_nothing_new_is_the_same_cursor_and_a_304(
    client: httpx.AsyncClient, alice: User
) -> None:
    await create_task(client, alice)
    now = (await changes(client, alice, since=None))["next_cursor"]
    first = await client.get(f"/api/changes?since={now}", headers=alice.headers)
    assert first.json() == {"changes": [], "next_cursor": now, "has_more": False}
    again = await client.get(
        f"/api/changes?since={now}",
        headers={**alice.headers, "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.content == b""
    await create_task(client, alice)
    changed = await client.get(
        f"/api/changes?since={now}",
        headers={**alice.headers, "If-None-Match": first.headers["ETag"]},
    )
    assert changed.status_code == 200
    assert changed.json()["changes"]


async def test_a_rolled_back_transaction_leaves_no_entry(
    app: FastAPI, client: httpx.AsyncClient, alice: User
) -> None:
    ctx: TasksContext = app.state.ctx
    task = await create_task(client, alice, title="kept")
    before = await changes(client, alice)

    async def write_then_fail() -> None:
        async with ctx.db.transaction(prelude=owner_lock(alice.id)) as db:
            row = await task_rows.get(db, alice.id, uuid.UUID(task["id"]), for_update=True)
            assert row is not None
            await task_rows.change(db, row, {"title": "never"})
            raise RuntimeError("the use case failed after writing")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert await changes(client, alice) == before
    shown = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
    assert shown["title"] == "kept"


async def test_refused_writes_leave_no_entry(client: httpx.AsyncClient, alice: User) -> None:
    task = await create_task(client, alice)
    before = await changes(client, alice)
    stale = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"title": "x"},
        headers={**alice.headers, "If-Match": '"99"'},
    )
    assert stale.status_code == 412
    same = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": task["title"]}, headers=alice.headers
    )
    assert same.status_code == 200
    assert await changes(client, alice) == before


async def test_a_write_without_the_owner_lock_is_refused(
    tasks_db: AsyncEngine, client: httpx.AsyncClient, alice: User
) -> None:
    """The guard for commit order: a code path that forgot `lock_owner` fails loudly."""
    task = await create_task(client, alice, title="locked")
    with pytest.raises(Exception, match="without lock_owner"):
        async with tasks_db.begin() as connection:
            await connection.execute(
                text("UPDATE tasks SET title = 'sneaky' WHERE id = :id"), {"id": task["id"]}
            )
    shown = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
    assert shown["title"] == "locked"


async def test_a_cursor_past_the_retention_is_410_and_a_fresh_one_works(
    app: FastAPI, client: httpx.AsyncClient, alice: User, bob: User, tasks_db: AsyncEngine
) -> None:
    await create_task(client, alice)
    old = (await changes(client, alice))["next_cursor"]
    bob_cursor = (await changes(client, bob, since=None))["next_cursor"]
    await create_task(client, alice)
    assert await expire_changes(app, tasks_db, alice) > 0
    expired = await client.get("/api/changes?since=0", headers=alice.headers)
    assert expired.status_code == 410
    assert expired.json()["code"] == "sync_expired"
    expired = await client.get(f"/api/changes?since={old}", headers=alice.headers)
    assert expired.status_code == 410
    fresh = (await changes(client, alice, since=None))["next_cursor"]
    assert (await changes(client, alice, since=fresh))["changes"] == []
    await create_task(client, alice, title="after the purge")
    after = (await changes(client, alice, fresh))["changes"]
    assert [e["data"]["title"] for e in after if e["type"] == "task"] == ["after the purge"]
    # Someone else's purge costs bob nothing: his cursor still works.
    assert (await changes(client, bob, since=bob_cursor))["changes"] == []


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "99999999999", "\uff19"])
async def test_a_cursor_the_api_never_gave_is_422(
    client: httpx.AsyncClient, alice: User, cursor: str
) -> None:
    await create_task(client, alice)
    response = await client.get(f"/api/changes?since={cursor}", headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


async def test_the_log_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/changes")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
async def test_replaying_the_changes_rebuilds_each_users_state_and_only_theirs(
    client: httpx.AsyncClient,
    users: list[User],
    tasks_db: AsyncEngine,
    operations: list[tuple[int, str, int]],
) -> None:
    await truncate_tasks(tasks_db)
    people = users[:3]
    for whose, operation, pick in operations:
        await apply_operation(client, people[whose], operation, pick)
    # The state first: a user's first read makes their default board, an entry too.
    states = {user.id: await server_state(client, user) for user in people}
    entries_of = {user.id: await all_changes(client, user) for user in people}
    for user in people:
        assert replayed_state(entries_of[user.id]) == states[user.id]
        others = {
            entry["id"] for other in people if other is not user for entry in entries_of[other.id]
        }
        assert not others & {entry["id"] for entry in entries_of[user.id]}


async def test_the_log_is_read_with_an_index_lookup(
    app: FastAPI, client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    """An empty read touches no other user's entries: the plan is an index scan on
    (owner, seq), whatever the table holds."""
    for _ in range(20):
        await create_task(client, bob)
    await create_task(client, alice)
    latest = int((await changes(client, alice, since=None))["next_cursor"])
    ctx: TasksContext = app.state.ctx
    async with ctx.db.connect() as db:
        await db.execute("ANALYZE changes")
        plan = await db.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT seq FROM changes WHERE owner_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT 100",
            alice.id,
            latest,
        )
    assert "Seq Scan" not in str(plan), plan


async def test_connections_keep_no_owner_lock_after_a_write(
    app: FastAPI, client: httpx.AsyncClient, alice: User
) -> None:
    """The lock ends with its transaction, the in-place writes' included: the next write of
    the same owner never waits."""
    task = await create_task(client, alice)
    for title in ("a", "b", "c"):
        response = await client.patch(
            f"/api/tasks/{task['id']}", json={"title": title}, headers=alice.headers
        )
        assert response.status_code == 200
    ctx: TasksContext = app.state.ctx
    async with ctx.db.connect() as db:
        held = await db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
        assert isinstance(db, asyncpg.Connection)
    assert held == 0


async def test_a_poller_misses_nothing_while_writes_commit_concurrently(
    client: httpx.AsyncClient, alice: User
) -> None:
    """Creates, in-place patches and deletes of one user race each other while a client polls
    `changes?since=` with each answer's cursor: what it collected is the whole log, each entry
    once, in order (one owner's entries become visible in seq order)."""
    start = (await changes(client, alice, since=None))["next_cursor"]
    seed = [await create_task(client, alice, title=f"seed {n}") for n in range(6)]
    collected: list[Any] = []
    writing = True

    async def poll() -> None:
        cursor = start
        while True:
            page = await changes(client, alice, since=cursor, limit=5)
            collected.extend(page["changes"])
            cursor = page["next_cursor"]
            if not writing and not page["changes"]:
                return

    async def write(n: int) -> None:
        task = seed[n % len(seed)]
        if n % 3 == 0:
            await create_task(client, alice, title=f"new {n}")
        elif n % 3 == 1:
            response = await client.patch(
                f"/api/tasks/{task['id']}", json={"title": f"p{n}"}, headers=alice.headers
            )
            assert response.status_code == 200
        else:
            response = await client.patch(
                f"/api/tasks/{task['id']}/complete", headers=alice.headers
            )
            assert response.status_code == 200

    poller = asyncio.create_task(poll())
    try:
        for round_ in range(5):
            await asyncio.gather(*(write(round_ * 12 + n) for n in range(12)))
    finally:
        writing = False
        await poller
    whole = await all_changes(client, alice, start)
    assert [entry["cursor"] for entry in collected] == [entry["cursor"] for entry in whole]
