"""Migration 0003 (boards and columns) on a database filled by the schema before it.

Every user gets a default board with the three columns they had, every task keeps its column,
position and version, and today's answers keep their bytes: each task's JSON is what the code
before boards wrote (the same fields in the same order and format), followed by the new fields.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from tasks_factories import AuthServer, User, running_app, tasks_settings

from taskgate_devstack.pytest_plugin import PostgresForTests
from tasks_service.core.etags import etag
from tasks_service.migrate import upgrade

# What the API showed before boards, in this order, then `completed` (task_json.py of 0002).
OLD_FIELDS = (
    "id",
    "owner_id",
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "labels",
    "completed_at",
    "version",
    "created_at",
    "updated_at",
)


def _driver_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _fill(url: str, owners: list[uuid.UUID]) -> None:
    """Tasks as the service before boards wrote them: positions per (owner, status)."""
    db = await asyncpg.connect(_driver_url(url))
    try:
        now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        for owner_index, owner in enumerate(owners):
            for n in range(9):
                status = ("todo", "in_progress", "done")[n % 3]
                await db.execute(
                    """
                    INSERT INTO tasks (id, owner_id, title, description, status, position,
                                       priority, due_at, labels, completed_at, version,
                                       created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
                    """,
                    uuid.uuid4(),
                    owner,
                    f"task {owner_index}.{n}",
                    "details" if n % 2 else "",
                    status,
                    (9 - n) * 1048576,  # created in the reverse of their column order
                    ("low", "medium", "high")[n % 3],
                    now + timedelta(days=n) if n % 2 else None,
                    ["home"] if n % 4 == 0 else [],
                    now if status == "done" else None,
                    1 + n % 4,
                    now + timedelta(minutes=n),
                )
    finally:
        await db.close()


async def _old_documents(url: str) -> dict[str, bytes]:
    """Each task's JSON as the code before boards wrote it, from the rows before upgrading."""
    db = await asyncpg.connect(_driver_url(url))
    try:
        rows = await db.fetch(
            "SELECT id, owner_id, title, description, status, priority, due_at, labels,"
            " completed_at, version, created_at, updated_at FROM tasks"
        )
    finally:
        await db.close()
    documents = {}
    for row in rows:
        document: dict[str, Any] = {name: row[name] for name in OLD_FIELDS}
        document["completed"] = document["status"] == "done"
        documents[str(row["id"])] = orjson.dumps(document, default=str, option=orjson.OPT_UTC_Z)
    return documents


async def test_upgrade_keeps_every_task_in_its_column_and_todays_bytes(
    postgres_server: PostgresForTests, auth_server: AuthServer, users: list[User]
) -> None:
    url = await asyncio.to_thread(postgres_server.fresh_database, "tasks_upgrade")
    await asyncio.to_thread(upgrade, url, "0002")
    alice, bob = users[2], users[3]
    await _fill(url, [alice.id, bob.id])
    before = await _old_documents(url)

    await asyncio.to_thread(upgrade, url)

    settings = tasks_settings(url, auth_server, rate_limit_enabled=False)
    async with running_app(settings) as (app, client):
        assert await app.state.ctx.jwks.refresh()
        for user in (alice, bob):
            boards = (await client.get("/api/boards", headers=user.headers)).json()["items"]
            assert [(b["name"], b["is_default"]) for b in boards] == [("My board", True)]
            view = (await client.get(f"/api/boards/{boards[0]['id']}", headers=user.headers)).json()
            columns = view["columns"]
            assert [(c["name"], c["category"], c["total"]) for c in columns] == [
                ("To do", "todo", 3),
                ("In progress", "in_progress", 3),
                ("Done", "done", 3),
            ]
            by_category = {column["category"]: column for column in columns}

            listed = await client.get("/api/tasks?limit=100", headers=user.headers)
            for task in listed.json()["items"]:
                column = by_category[task["status"]]
                assert (task["board_id"], task["column_id"]) == (view["id"], column["id"])
                # The old fields, byte for byte, then what boards added.
                one = await client.get(f"/api/tasks/{task['id']}", headers=user.headers)
                old = before[task["id"]]
                assert one.content.startswith(old[:-1] + b",")
                assert one.headers["ETag"] == etag(task["version"])
            # The column order is the old one: position order within each status.
            old_order = sorted(
                (orjson.loads(doc) for doc in before.values()),
                key=lambda d: (
                    ("todo", "in_progress", "done").index(d["status"]),
                    -int(d["title"][-1]),
                ),
            )
            expected = [d["title"] for d in old_order if d["owner_id"] == str(user.id)]
            assert [t["title"] for t in listed.json()["items"]] == expected
            # The board view shows each column in that order too.
            assert [t["title"] for c in columns for t in c["items"]] == expected

        # Writes keep working on migrated rows: a move counts in both columns.
        first = listed.json()["items"][0]
        done = by_category["done"]
        moved = await client.post(
            f"/api/tasks/{first['id']}/move", json={"column_id": done["id"]}, headers=bob.headers
        )
        assert moved.status_code == 200
        view = (await client.get(f"/api/boards/{view['id']}", headers=bob.headers)).json()
        assert [c["total"] for c in view["columns"]] == [2, 3, 4]
