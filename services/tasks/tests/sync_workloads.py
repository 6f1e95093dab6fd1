"""Random sync workloads for the change-log tests: operations on boards, columns and cards,
what the API shows a user (`server_state`), and what a client holds after applying entries
(`replayed_state`)."""

from __future__ import annotations

import random
from typing import Any

import httpx
from fastapi import FastAPI
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tasks_factories import User, board_view

from tasks_service.services.changes import purge_expired


async def changes(
    client: httpx.AsyncClient, user: User, since: str | None = "0", limit: int = 1000
) -> dict[str, Any]:
    query = f"?limit={limit}" + (f"&since={since}" if since is not None else "")
    response = await client.get(f"/api/changes{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def expire_changes(app: FastAPI, tasks_db: AsyncEngine, user: User) -> int:
    """Age the user's change-log entries past any retention and run the purge, as the log's
    timer would; how many entries it dropped (every user's expired ones)."""
    async with tasks_db.begin() as connection:
        await connection.execute(
            text("UPDATE changes SET changed_at = now() - interval '400 days' WHERE owner_id = :o"),
            {"o": str(user.id)},
        )
    return await purge_expired(app.state.ctx)


async def all_changes(client: httpx.AsyncClient, user: User, since: str = "0") -> list[Any]:
    """Every entry after `since`, following `has_more` with small pages."""
    entries: list[Any] = []
    while True:
        page = await changes(client, user, since, limit=7)
        entries += page["changes"]
        since = page["next_cursor"]
        if not page["has_more"]:
            return entries


async def server_state(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    """Everything the user sees, by id, and the order of boards, columns and cards."""
    listed = await client.get("/api/boards", headers=user.headers)
    boards = listed.json()["items"]
    columns: dict[str, Any] = {}
    cards: dict[str, Any] = {}
    order: dict[str, list[str]] = {"boards": [board["id"] for board in boards]}
    for board in boards:
        view = await board_view(client, user, board["id"])
        order[board["id"]] = [column["id"] for column in view["columns"]]
        for column in view["columns"]:
            assert column["next_cursor"] is None
            order[column["id"]] = [card["id"] for card in column.pop("items")]
            del column["next_cursor"]
            columns[column["id"]] = column
            for card_id in order[column["id"]]:
                cards[card_id] = None
    for card_id in cards:
        cards[card_id] = (await client.get(f"/api/tasks/{card_id}", headers=user.headers)).json()
    return {"board": {b["id"]: b for b in boards}, "column": columns, "task": cards, "order": order}


def replayed_state(entries: list[Any]) -> dict[str, Any]:
    """What a client holds after applying the entries in order (upsert replaces, delete
    removes), with siblings sorted by the entries' `position`."""
    objects: dict[str, dict[str, Any]] = {"board": {}, "column": {}, "task": {}}
    positions: dict[str, int] = {}
    for entry in entries:
        if entry["op"] == "delete":
            objects[entry["type"]].pop(entry["id"], None)
        else:
            objects[entry["type"]][entry["id"]] = entry["data"]
            positions[entry["id"]] = entry["position"]

    def ordered(items: list[dict[str, Any]]) -> list[str]:
        return [item["id"] for item in sorted(items, key=lambda item: positions[item["id"]])]

    order = {"boards": ordered(list(objects["board"].values()))}
    for board_id in objects["board"]:
        order[board_id] = ordered(
            [c for c in objects["column"].values() if c["board_id"] == board_id]
        )
    for column_id in objects["column"]:
        order[column_id] = ordered(
            [t for t in objects["task"].values() if t["column_id"] == column_id]
        )
    return {**objects, "order": order}


OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 2),  # whose
        st.sampled_from(
            [
                "create",
                "create",
                "create",
                "patch",
                "move",
                "move_before",
                "complete",
                "delete",
                "new_board",
                "rename_board",
                "archive_board",
                "delete_board",
                "new_column",
                "column_category",
                "delete_column",
            ]
        ),
        st.integers(0, 1000),  # which object
    ),
    min_size=15,
    max_size=40,
)


async def apply_operation(client: httpx.AsyncClient, user: User, operation: str, pick: int) -> None:
    """One operation on a random object of the user's; a refusal (409, 404...) is fine."""
    headers = user.headers
    state = await server_state(client, user)
    rng = random.Random(pick)
    task_ids = sorted(state["task"])
    column_ids = sorted(state["column"])
    board_ids = sorted(state["board"])
    task = rng.choice(task_ids) if task_ids else None
    column = rng.choice(column_ids) if column_ids else None
    board = rng.choice(board_ids) if board_ids else None
    if operation == "create" or task is None:
        body: dict[str, Any] = {"title": f"t{pick}", "checklist": [{"text": "a", "done": False}]}
        if column is not None:
            body["column_id"] = column
        response = await client.post("/api/tasks", json=body, headers=headers)
    elif operation == "patch":
        response = await client.patch(
            f"/api/tasks/{task}", json={"title": f"p{pick}", "labels": ["x"]}, headers=headers
        )
    elif operation == "move":
        response = await client.post(
            f"/api/tasks/{task}/move", json={"column_id": column}, headers=headers
        )
    elif operation == "move_before":
        anchor = rng.choice(task_ids)
        response = await client.post(
            f"/api/tasks/{task}/move", json={"before_id": anchor}, headers=headers
        )
    elif operation == "complete":
        response = await client.patch(f"/api/tasks/{task}/complete", headers=headers)
    elif operation == "delete":
        response = await client.delete(f"/api/tasks/{task}", headers=headers)
    elif operation == "new_board":
        response = await client.post("/api/boards", json={"name": f"b{pick}"}, headers=headers)
    elif operation == "rename_board":
        response = await client.patch(
            f"/api/boards/{board}", json={"name": f"r{pick}"}, headers=headers
        )
    elif operation == "archive_board":
        response = await client.patch(
            f"/api/boards/{board}", json={"archived": pick % 2 == 0}, headers=headers
        )
    elif operation == "delete_board":
        response = await client.delete(f"/api/boards/{board}", headers=headers)
    elif operation == "new_column":
        response = await client.post(
            f"/api/boards/{board}/columns",
            json={"name": f"c{pick}", "category": rng.choice(["todo", "done"])},
            headers=headers,
        )
    elif operation == "column_category":
        response = await client.patch(
            f"/api/columns/{column}",
            json={"category": rng.choice(["todo", "in_progress", "done"])},
            headers=headers,
        )
    else:
        response = await client.delete(f"/api/columns/{column}", headers=headers)
    assert response.status_code < 500, response.text
