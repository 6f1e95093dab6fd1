"""Boards and columns: the default board, CRUD, order, WIP limits, deletion rules, categories,
checklists, and the board view with its column pages."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from tasks_factories import (
    User,
    add_column,
    board_view,
    create_board,
    create_task,
    default_board,
    titles_by_column,
)


def _column(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(column for column in view["columns"] if column["name"] == name)


async def _move(client: httpx.AsyncClient, user: User, task_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/tasks/{task_id}/move", json=body, headers=user.headers)


async def test_every_user_gets_a_default_board_on_first_use(
    client: httpx.AsyncClient, alice: User
) -> None:
    listed = await client.get("/api/boards", headers=alice.headers)
    assert listed.status_code == 200
    [board] = listed.json()["items"]
    assert (board["name"], board["is_default"], board["archived"]) == ("My board", True, False)

    view = await board_view(client, alice, board["id"])
    assert [(c["name"], c["category"], c["total"]) for c in view["columns"]] == [
        ("To do", "todo", 0),
        ("In progress", "in_progress", 0),
        ("Done", "done", 0),
    ]
    # A task that names no board lands there, in the first column of its status.
    task = await create_task(client, alice, status="in_progress")
    assert (task["board_id"], task["column_id"]) == (board["id"], view["columns"][1]["id"])
    again = await client.get("/api/boards", headers=alice.headers)
    assert [item["id"] for item in again.json()["items"]] == [board["id"]]


async def test_boards_are_renamed_archived_reordered_and_listed_in_order(
    client: httpx.AsyncClient, alice: User
) -> None:
    home = await default_board(client, alice)
    work = await create_board(client, alice, "Work")
    side = await create_board(client, alice, "Side")

    stale = await client.patch(
        f"/api/boards/{work['id']}",
        json={"name": "Job"},
        headers={**alice.headers, "If-Match": '"99"'},
    )
    assert (stale.status_code, stale.json()["code"]) == (412, "version_mismatch")
    renamed = await client.patch(
        f"/api/boards/{work['id']}",
        json={"name": "Job"},
        headers={**alice.headers, "If-Match": f'"{work["version"]}"'},
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.headers["ETag"]) == ("Job", '"2"')

    moved = await client.post(
        f"/api/boards/{side['id']}/move", json={"before_id": home["id"]}, headers=alice.headers
    )
    assert moved.status_code == 200
    archived = await client.patch(
        f"/api/boards/{home['id']}", json={"archived": True}, headers=alice.headers
    )
    assert archived.json()["archived"] is True
    assert archived.json()["archived_at"] is not None

    everything = await client.get("/api/boards", headers=alice.headers)
    assert [b["name"] for b in everything.json()["items"]] == ["Side", "My board", "Job"]
    active = await client.get("/api/boards?archived=false", headers=alice.headers)
    assert [b["name"] for b in active.json()["items"]] == ["Side", "Job"]
    back = await client.patch(
        f"/api/boards/{home['id']}", json={"archived": False}, headers=alice.headers
    )
    assert (back.json()["archived"], back.json()["archived_at"]) == (False, None)


async def test_a_board_with_tasks_is_deleted_only_with_its_tasks_on_confirmation(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice, "Temporary")
    task = await create_task(client, alice, board_id=board["id"])

    refused = await client.delete(f"/api/boards/{board['id']}", headers=alice.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "board_not_empty")
    still = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert still.status_code == 200

    deleted = await client.delete(
        f"/api/boards/{board['id']}?delete_tasks=true", headers=alice.headers
    )
    assert deleted.status_code == 204
    gone = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert gone.status_code == 404
    empty = await create_board(client, alice, "Empty")
    assert (
        await client.delete(f"/api/boards/{empty['id']}", headers=alice.headers)
    ).status_code == 204


async def test_columns_are_added_renamed_reordered_and_give_tasks_their_category(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice, "Flow")
    review = await add_column(client, alice, board["id"], "Review", category="in_progress")
    todo, doing, _ = board["columns"]
    moved = await client.post(
        f"/api/columns/{review['id']}/move", json={"after_id": doing["id"]}, headers=alice.headers
    )
    assert moved.status_code == 200
    renamed = await client.patch(
        f"/api/columns/{todo['id']}", json={"name": "Backlog"}, headers=alice.headers
    )
    assert renamed.json()["name"] == "Backlog"
    view = await board_view(client, alice, board["id"])
    assert [c["name"] for c in view["columns"]] == ["Backlog", "In progress", "Review", "Done"]

    task = await create_task(client, alice, column_id=review["id"])
    assert (task["status"], task["completed"], task["completed_at"]) == ("in_progress", False, None)
    # Review becomes a "done" column: its cards are complete now.
    recategorised = await client.patch(
        f"/api/columns/{review['id']}", json={"category": "done"}, headers=alice.headers
    )
    assert recategorised.json()["category"] == "done"
    after = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
    assert (after["status"], after["completed"]) == ("done", True)
    assert after["completed_at"] is not None
    assert after["version"] == task["version"] + 1


async def test_a_status_that_disagrees_with_the_named_column_is_refused(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice)
    done = board["columns"][2]
    response = await client.post(
        "/api/tasks",
        json={"title": "x", "column_id": done["id"], "status": "todo"},
        headers=alice.headers,
    )
    assert (response.status_code, response.json()["code"]) == (400, "status_not_column_category")


async def test_wip_limit_refuses_creates_and_moves_over_it(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice)
    todo, doing, _ = board["columns"]
    limited = await client.patch(
        f"/api/columns/{doing['id']}", json={"wip_limit": 1}, headers=alice.headers
    )
    assert limited.json()["wip_limit"] == 1
    first = await create_task(client, alice, column_id=doing["id"])
    waiting = await create_task(client, alice, column_id=todo["id"])

    over = await client.post(
        "/api/tasks",
        json={"title": "one too many", "column_id": doing["id"]},
        headers=alice.headers,
    )
    assert (over.status_code, over.json()["code"]) == (409, "wip_limit_reached")
    moved = await _move(client, alice, waiting["id"], column_id=doing["id"])
    assert (moved.status_code, moved.json()["code"]) == (409, "wip_limit_reached")
    # Within the full column a card still moves; out of it, it frees a place.
    assert (await _move(client, alice, first["id"], column_id=doing["id"])).status_code == 200
    assert (await _move(client, alice, first["id"], column_id=todo["id"])).status_code == 200
    assert (await _move(client, alice, waiting["id"], column_id=doing["id"])).status_code == 200
    lifted = await client.patch(
        f"/api/columns/{doing['id']}", json={"wip_limit": None}, headers=alice.headers
    )
    assert lifted.json()["wip_limit"] is None


async def test_column_deletion_rules(client: httpx.AsyncClient, alice: User) -> None:
    board = await create_board(client, alice)
    todo, doing, done = board["columns"]
    tasks = [
        await create_task(client, alice, column_id=doing["id"], title=f"d{i}") for i in range(3)
    ]
    await create_task(client, alice, column_id=done["id"], title="already done")

    refused = await client.delete(f"/api/columns/{doing['id']}", headers=alice.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "column_not_empty")
    itself = await client.delete(
        f"/api/columns/{doing['id']}?move_to={doing['id']}", headers=alice.headers
    )
    assert (itself.status_code, itself.json()["code"]) == (400, "invalid_target")
    moved = await client.delete(
        f"/api/columns/{doing['id']}?move_to={done['id']}", headers=alice.headers
    )
    assert moved.status_code == 204
    view = await board_view(client, alice, board["id"])
    assert titles_by_column(view) == {"To do": [], "Done": ["already done", "d0", "d1", "d2"]}
    assert _column(view, "Done")["total"] == 4
    for task in tasks:
        now = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
        assert (now["column_id"], now["status"], now["completed"]) == (done["id"], "done", True)

    emptied = await client.delete(f"/api/columns/{todo['id']}", headers=alice.headers)
    assert emptied.status_code == 204
    last = await client.delete(
        f"/api/columns/{done['id']}?move_to={uuid.uuid4()}", headers=alice.headers
    )
    assert (last.status_code, last.json()["code"]) == (409, "last_column")
    assert _column(await board_view(client, alice, board["id"]), "Done")["total"] == 4


async def test_complete_uses_the_boards_first_done_and_todo_columns(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice)
    todo, doing, _ = board["columns"]
    # A second done column and a second todo column, first in board order.
    archive = await add_column(client, alice, board["id"], "Archive", category="done")
    await client.post(
        f"/api/columns/{archive['id']}/move", json={"before_id": todo["id"]}, headers=alice.headers
    )
    inbox = await add_column(client, alice, board["id"], "Inbox", category="todo")
    await client.post(
        f"/api/columns/{inbox['id']}/move", json={"before_id": archive["id"]}, headers=alice.headers
    )
    task = await create_task(client, alice, column_id=doing["id"])

    completed = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert completed.status_code == 200
    body = completed.json()
    assert (body["column_id"], body["status"], body["completed"]) == (archive["id"], "done", True)
    reopened = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    body = reopened.json()
    assert (body["column_id"], body["status"], body["completed_at"]) == (inbox["id"], "todo", None)


async def test_moves_across_boards_with_anchors(client: httpx.AsyncClient, alice: User) -> None:
    home = await create_board(client, alice, "Home")
    work = await create_board(client, alice, "Work")
    card = await create_task(client, alice, column_id=home["columns"][0]["id"], title="card")
    first = await create_task(client, alice, column_id=work["columns"][1]["id"], title="first")
    second = await create_task(client, alice, column_id=work["columns"][1]["id"], title="second")

    moved = await _move(client, alice, card["id"], before_id=second["id"])
    assert moved.status_code == 200
    body = moved.json()
    assert (body["board_id"], body["column_id"], body["status"]) == (
        work["id"],
        work["columns"][1]["id"],
        "in_progress",
    )
    assert titles_by_column(await board_view(client, alice, work["id"]))["In progress"] == [
        "first",
        "card",
        "second",
    ]
    home_view = await board_view(client, alice, home["id"])
    assert home_view["columns"][0]["total"] == 0

    # By board and status: the first column of the category on that board, at its end.
    back = await _move(client, alice, card["id"], board_id=home["id"], status="done")
    assert back.json()["column_id"] == home["columns"][2]["id"]
    wrong = await _move(
        client, alice, card["id"], column_id=home["columns"][0]["id"], after_id=first["id"]
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "anchor_not_in_column")


async def test_board_view_pages_each_column_with_its_cursor(
    client: httpx.AsyncClient, alice: User
) -> None:
    board = await create_board(client, alice)
    todo = board["columns"][0]
    for i in range(7):
        await create_task(client, alice, column_id=todo["id"], title=f"t{i}")

    view = await board_view(client, alice, board["id"], limit=3)
    column = view["columns"][0]
    assert ([t["title"] for t in column["items"]], column["total"]) == (["t0", "t1", "t2"], 7)
    titles = [t["title"] for t in column["items"]]
    cursor = column["next_cursor"]
    while cursor:
        page = await client.get(
            f"/api/columns/{todo['id']}/tasks?limit=3&cursor={cursor}", headers=alice.headers
        )
        assert page.status_code == 200
        titles += [t["title"] for t in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert titles == [f"t{i}" for i in range(7)]

    other = board["columns"][1]
    misused = await client.get(
        f"/api/columns/{other['id']}/tasks?cursor={column['next_cursor']}", headers=alice.headers
    )
    assert (misused.status_code, misused.json()["code"]) == (422, "invalid_cursor")


async def test_lists_filter_by_board_and_column(client: httpx.AsyncClient, alice: User) -> None:
    one = await create_board(client, alice)
    two = await create_board(client, alice)
    a = await create_task(client, alice, board_id=one["id"], title="a")
    await create_task(client, alice, board_id=two["id"], title="b")
    by_board = await client.get(f"/api/tasks?board_id={one['id']}", headers=alice.headers)
    assert [t["title"] for t in by_board.json()["items"]] == ["a"]
    by_column = await client.get(f"/api/tasks?column_id={a['column_id']}", headers=alice.headers)
    assert [t["title"] for t in by_column.json()["items"]] == ["a"]


async def test_checklists_are_edited_with_the_task_under_its_etag(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create_task(client, alice, checklist=[{"text": "buy milk"}, {"text": "bake"}])
    assert task["checklist"] == [
        {"text": "buy milk", "done": False},
        {"text": "bake", "done": False},
    ]

    ticked = [{"text": "buy milk", "done": True}, {"text": "bake", "done": False}]
    changed = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"checklist": ticked},
        headers={**alice.headers, "If-Match": f'"{task["version"]}"'},
    )
    assert changed.status_code == 200
    assert (changed.json()["checklist"], changed.json()["version"]) == (ticked, 2)
    stale = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"checklist": []},
        headers={**alice.headers, "If-Match": f'"{task["version"]}"'},
    )
    assert stale.status_code == 412
    same = await client.patch(
        f"/api/tasks/{task['id']}", json={"checklist": ticked}, headers=alice.headers
    )
    assert same.json()["version"] == 2  # nothing changed, no new version

    too_long = await client.post(
        "/api/tasks",
        json={"title": "x", "checklist": [{"text": f"i{n}"} for n in range(51)]},
        headers=alice.headers,
    )
    assert too_long.status_code == 422


async def test_another_users_boards_and_columns_are_not_found_everywhere(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    theirs = await create_board(client, bob, "Bob's")
    column = theirs["columns"][0]
    mine = await create_task(client, alice)
    my_board = await default_board(client, alice)
    h = alice.headers
    b, c = theirs["id"], column["id"]
    answers = {
        "get board": await client.get(f"/api/boards/{b}", headers=h),
        "patch board": await client.patch(f"/api/boards/{b}", json={"name": "x"}, headers=h),
        "delete board": await client.delete(f"/api/boards/{b}?delete_tasks=true", headers=h),
        "move board": await client.post(f"/api/boards/{b}/move", json={}, headers=h),
        "add column": await client.post(f"/api/boards/{b}/columns", json={"name": "x"}, headers=h),
        "patch column": await client.patch(f"/api/columns/{c}", json={"name": "x"}, headers=h),
        "delete column": await client.delete(f"/api/columns/{c}", headers=h),
        "move column": await client.post(f"/api/columns/{c}/move", json={}, headers=h),
        "column page": await client.get(f"/api/columns/{c}/tasks", headers=h),
        "create in column": await client.post(
            "/api/tasks", json={"title": "x", "column_id": c}, headers=h
        ),
        "create on board": await client.post(
            "/api/tasks", json={"title": "x", "board_id": b}, headers=h
        ),
        "move to column": await _move(client, alice, mine["id"], column_id=c),
        "move to board": await _move(client, alice, mine["id"], board_id=b, status="todo"),
        "cards into theirs": await client.delete(
            f"/api/columns/{my_board['columns'][0]['id']}?move_to={c}", headers=h
        ),
    }
    # Every call is a 404 that does not tell Bob's ids from missing ones.
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == dict.fromkeys(statuses, 404)
    missing = await client.get(f"/api/boards/{uuid.uuid4()}", headers=h)
    assert answers["get board"].json() == missing.json()
    listed = await client.get(f"/api/tasks?board_id={b}", headers=h)
    assert listed.json()["items"] == []
    untouched = await board_view(client, bob, b)
    assert (untouched["name"], len(untouched["columns"])) == ("Bob's", 3)
