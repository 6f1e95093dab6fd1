"""Keyset pagination under every sort, the filters, and the board."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tasks_factories import User, behind_the_api, create_task

STATUS_ORDER = {"todo": 0, "in_progress": 1, "done": 2}
BASE = datetime(2031, 1, 1, tzinfo=UTC)


async def seed(client: httpx.AsyncClient, user: User, count: int) -> None:
    rng = random.Random(4)
    for i in range(count):
        due = rng.choice([None, None, BASE, BASE + timedelta(days=rng.randint(1, 60))])
        await create_task(
            client,
            user,
            title=f"Report {i}" if i % 5 == 0 else f"task {i}",
            description="has a needle_in it" if i % 7 == 0 else "",
            status=rng.choice(list(STATUS_ORDER)),
            priority=rng.choice(["low", "medium", "high"]),
            labels=rng.sample(["work", "home", "urgent"], rng.randint(0, 2)),
            due_at=due.isoformat() if due else None,
        )


async def stored_rows(engine: AsyncEngine, owner: uuid.UUID) -> list[Any]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT id, status::text AS status, position, created_at, updated_at, due_at, "
                "labels, priority::text AS priority, title, description "
                "FROM tasks WHERE owner_id = :owner"
            ),
            {"owner": owner},
        )
        return list(result.all())


def expected_order(rows: list[Any], sort: str) -> list[str]:
    if sort == "position":
        ordered = sorted(rows, key=lambda r: (STATUS_ORDER[r.status], r.position, r.id))
    elif sort == "-created_at":
        ordered = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    elif sort == "-updated_at":
        ordered = sorted(rows, key=lambda r: (r.updated_at, r.id), reverse=True)
    else:
        ordered = sorted(rows, key=lambda r: (r.due_at is None, r.due_at or BASE, r.id))
    return [str(row.id) for row in ordered]


async def walk(client: httpx.AsyncClient, user: User, query: str) -> list[str]:
    """Every id of a listing, page by page; asserts each page is bounded."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(300):
        url = f"/api/tasks?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=user.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [task["id"] for task in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


@pytest.fixture
async def seeded(client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine) -> list[Any]:
    """250 varied tasks, with deliberate ties in created_at, updated_at and due_at."""
    await seed(client, alice, 250)
    async with behind_the_api(tasks_db) as connection:
        await connection.execute(
            text(
                "UPDATE tasks SET created_at = '2030-06-01T00:00:00Z' "
                "WHERE id IN (SELECT id FROM tasks ORDER BY id LIMIT 60)"
            )
        )
        await connection.execute(
            text(
                "UPDATE tasks SET updated_at = '2030-06-02T00:00:00Z' "
                "WHERE id IN (SELECT id FROM tasks ORDER BY id DESC LIMIT 60)"
            )
        )
    return await stored_rows(tasks_db, alice.id)


async def test_pagination_walks_every_task_once_in_order(
    client: httpx.AsyncClient, alice: User, seeded: list[Any]
) -> None:
    """Every sort, small and maximal pages: no gap, no duplicate, the documented order."""
    for sort in ("position", "-created_at", "due_at", "-updated_at"):
        for limit in (7, 100):
            ids = await walk(client, alice, f"sort={sort}&limit={limit}")
            assert len(ids) == 250, (sort, limit)
            assert len(set(ids)) == 250, (sort, limit)
            assert ids == expected_order(seeded, sort), (sort, limit)

    default = (await client.get("/api/tasks", headers=alice.headers)).json()
    assert [task["id"] for task in default["items"]] == expected_order(seeded, "position")[:50]
    assert default["next_cursor"]


FILTERS: list[tuple[str, Any]] = [
    ("status=todo&status=done", lambda r: r.status in ("todo", "done")),
    ("label=work", lambda r: "work" in r.labels),
    ("label=work&label=urgent", lambda r: {"work", "urgent"} <= set(r.labels)),
    ("priority=high", lambda r: r.priority == "high"),
    ("q=report", lambda r: "report" in r.title.lower()),
    ("q=needle_in", lambda r: "needle_in" in r.description),
    ("q=100%25", lambda r: False),
    (
        "due_before=2031-01-10T00:00:00%2B00:00",
        lambda r: r.due_at and r.due_at < BASE + timedelta(9),
    ),
    ("due_after=2031-01-01T00:00:00Z", lambda r: r.due_at is not None and r.due_at > BASE),
    ("completed=true", lambda r: r.status == "done"),
    ("completed=false&priority=low", lambda r: r.status != "done" and r.priority == "low"),
]


async def test_filters(client: httpx.AsyncClient, alice: User, seeded: list[Any]) -> None:
    for query, keep in FILTERS:
        ids = await walk(client, alice, f"{query}&sort=due_at&limit=30")
        expected = expected_order([row for row in seeded if keep(row)], "due_at")
        assert ids == expected, query


async def test_a_cursor_only_works_with_its_own_sort_and_filters(
    client: httpx.AsyncClient, alice: User
) -> None:
    for i in range(3):
        await create_task(client, alice, title=f"t{i}")
    page = (await client.get("/api/tasks?limit=1&status=todo", headers=alice.headers)).json()
    cursor = page["next_cursor"]
    ok = await client.get(f"/api/tasks?limit=1&status=todo&cursor={cursor}", headers=alice.headers)
    assert ok.status_code == 200
    for other in ("sort=-created_at", "status=done", "q=t"):
        response = await client.get(
            f"/api/tasks?limit=1&status=todo&{other}&cursor={cursor}", headers=alice.headers
        )
        assert response.status_code == 422, other
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_board_groups_by_column_in_position_order(
    client: httpx.AsyncClient, alice: User
) -> None:
    for i in range(5):
        await create_task(client, alice, title=f"todo {i}")
    for i in range(2):
        await create_task(client, alice, title=f"doing {i}", status="in_progress")
    response = await client.get("/api/board?limit=3", headers=alice.headers)
    assert response.status_code == 200
    columns = response.json()["columns"]
    assert [column["status"] for column in columns] == ["todo", "in_progress", "done"]
    todo, doing, done = columns
    assert [task["title"] for task in todo["items"]] == ["todo 0", "todo 1", "todo 2"]
    assert todo["total"] == 5
    assert [task["title"] for task in doing["items"]] == ["doing 0", "doing 1"]
    assert (doing["total"], doing["next_cursor"]) == (2, None)
    assert (done["items"], done["total"], done["next_cursor"]) == ([], 0, None)

    rest = await client.get(
        f"/api/tasks?status=todo&cursor={todo['next_cursor']}", headers=alice.headers
    )
    assert rest.status_code == 200
    assert [task["title"] for task in rest.json()["items"]] == ["todo 3", "todo 4"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "columns=2"])
async def test_board_is_bounded(client: httpx.AsyncClient, alice: User, query: str) -> None:
    response = await client.get(f"/api/board?{query}", headers=alice.headers)
    assert response.status_code == 422
