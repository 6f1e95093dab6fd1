"""Moving cards within and across columns: strict order, no renumbering, atomic placement."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tasks_factories import (
    User,
    behind_the_api,
    board_view,
    create_board,
    create_task,
    truncate_tasks,
)

COLUMNS = ("todo", "in_progress", "done")


async def board_titles(client: httpx.AsyncClient, user: User) -> dict[str, list[str]]:
    response = await client.get("/api/board?limit=100", headers=user.headers)
    assert response.status_code == 200
    return {
        column["status"]: [task["title"] for task in column["items"]]
        for column in response.json()["columns"]
    }


async def positions(engine: AsyncEngine, owner: uuid.UUID) -> dict[str, tuple[str, int, int]]:
    """title -> (status, position, version), straight from the table."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT title, status, position, version FROM tasks WHERE owner_id = :owner"),
            {"owner": owner},
        )
        return {row.title: (row.status, row.position, row.version) for row in rows}


async def move(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], **body: Any
) -> httpx.Response:
    return await client.post(f"/api/tasks/{task['id']}/move", json=body, headers=user.headers)


async def test_moves_within_and_across_columns(client: httpx.AsyncClient, alice: User) -> None:
    a, b, c, d = [await create_task(client, alice, title=title) for title in "ABCD"]
    assert (await board_titles(client, alice))["todo"] == ["A", "B", "C", "D"]

    moved = await move(client, alice, d, before_id=b["id"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    assert moved.headers["ETag"] == '"2"'
    assert (await board_titles(client, alice))["todo"] == ["A", "D", "B", "C"]

    await move(client, alice, a, after_id=c["id"])
    assert (await board_titles(client, alice))["todo"] == ["D", "B", "C", "A"]

    across = await move(client, alice, b, status="in_progress")
    assert across.json()["status"] == "in_progress"
    # Status taken from the anchor when not given.
    await move(client, alice, c, after_id=b["id"])
    await move(client, alice, a, before_id=b["id"], status="in_progress")
    done = await move(client, alice, d, status="done")
    assert done.json()["completed_at"] is not None
    assert await board_titles(client, alice) == {
        "todo": [],
        "in_progress": ["A", "B", "C"],
        "done": ["D"],
    }
    back = await move(client, alice, d, before_id=a["id"])
    assert back.json()["status"] == "in_progress"
    assert back.json()["completed_at"] is None
    assert (await board_titles(client, alice))["in_progress"] == ["D", "A", "B", "C"]


async def test_a_move_changes_only_the_moved_card(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    cards = [await create_task(client, alice, title=f"card{i}") for i in range(10)]
    before = await positions(tasks_db, alice.id)
    await move(client, alice, cards[9], after_id=cards[0]["id"])
    after = await positions(tasks_db, alice.id)
    changed = {title for title in before if before[title] != after[title]}
    assert changed == {"card9"}


async def test_repeated_moves_into_one_gap_rebalance_and_keep_the_order(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """Forty inserts into the same slot use up its gap; the column is respaced, order intact."""
    first = await create_task(client, alice, title="first")
    await create_task(client, alice, title="last")
    inserted = [await create_task(client, alice, title=f"n{i:02d}") for i in range(40)]
    for card in inserted:
        response = await move(client, alice, card, after_id=first["id"])
        assert response.status_code == 200
    expected = ["first", *[f"n{i:02d}" for i in reversed(range(40))], "last"]
    assert (await board_titles(client, alice))["todo"] == expected
    stored = await positions(tasks_db, alice.id)
    ordered = sorted(stored, key=lambda title: stored[title][1])
    assert ordered == expected
    assert len({position for _, position, _ in stored.values()}) == len(stored)
    # Respacing is not a change of the cards: only moved cards got new versions.
    assert stored["first"][2] == 1
    assert stored["last"][2] == 1


async def test_a_card_created_after_the_last_free_position_respaces_its_column(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """When the column's end has no room left (a card sits at the top of the position range),
    a new card still goes last: the column is respaced first, nobody gets a new version."""
    await create_task(client, alice, title="a")
    await create_task(client, alice, title="b")
    async with behind_the_api(tasks_db) as connection:
        await connection.execute(
            text("UPDATE tasks SET position = :top WHERE owner_id = :owner AND title = 'b'"),
            {"top": (1 << 62) - 1, "owner": alice.id},
        )
    created = await create_task(client, alice, title="c")
    assert created["version"] == 1
    assert (await board_titles(client, alice))["todo"] == ["a", "b", "c"]
    stored = await positions(tasks_db, alice.id)
    assert max(position for _, position, _ in stored.values()) < 1 << 30
    assert {title: version for title, (_, _, version) in stored.items()} == {"a": 1, "b": 1, "c": 1}


async def test_anchor_errors(client: httpx.AsyncClient, alice: User, bob: User) -> None:
    mine = await create_task(client, alice)
    other = await create_task(client, alice, status="done")
    theirs = await create_task(client, bob)

    itself = await move(client, alice, mine, before_id=mine["id"])
    assert (itself.status_code, itself.json()["code"]) == (400, "invalid_anchor")

    missing = await move(client, alice, mine, after_id=str(uuid.uuid4()))
    assert (missing.status_code, missing.json()["code"]) == (400, "anchor_not_found")

    # Another user's card is indistinguishable from a missing one.
    foreign = await move(client, alice, mine, after_id=theirs["id"])
    assert (foreign.status_code, foreign.json()) == (400, missing.json())

    wrong_column = await move(client, alice, mine, status="todo", before_id=other["id"])
    assert (wrong_column.status_code, wrong_column.json()["code"]) == (400, "anchor_not_in_column")

    unchanged = await client.get(f"/api/tasks/{mine['id']}", headers=alice.headers)
    assert unchanged.json()["version"] == 1


MOVES = st.lists(
    st.tuples(
        st.integers(0, 7),  # which card
        st.sampled_from(["before", "after", "end"]),
        st.integers(0, 7),  # anchor card
        st.sampled_from(COLUMNS),  # column, for "end"
    ),
    min_size=50,
    max_size=50,
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moves=MOVES)
async def test_random_moves_keep_a_strict_order(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine, moves: list[Any]
) -> None:
    await truncate_tasks(tasks_db)
    titles = [f"c{i}" for i in range(8)]
    cards = [await create_task(client, alice, title=title) for title in titles]
    model: dict[str, list[str]] = {"todo": list(titles), "in_progress": [], "done": []}

    for card_index, kind, anchor_index, column in moves:
        card, anchor = titles[card_index], titles[anchor_index]
        if kind == "end" or anchor == card:
            response = await move(client, alice, cards[card_index], status=column)
            target, index = column, None
        else:
            key = "before_id" if kind == "before" else "after_id"
            response = await move(
                client, alice, cards[card_index], **{key: cards[anchor_index]["id"]}
            )
            target = next(name for name, cards_in in model.items() if anchor in cards_in)
            index = -1  # resolved after removing the card
        assert response.status_code == 200, response.text
        for column_cards in model.values():
            if card in column_cards:
                column_cards.remove(card)
        if index is None:
            model[target].append(card)
        else:
            at = model[target].index(anchor) + (0 if kind == "before" else 1)
            model[target].insert(at, card)
        assert await board_titles(client, alice) == model

    stored = await positions(tasks_db, alice.id)
    assert sorted(stored) == sorted(titles)  # nothing lost, nothing duplicated
    for status, expected in model.items():
        in_column = sorted(
            (position, title) for title, (s, position, _) in stored.items() if s == status
        )
        assert [title for _, title in in_column] == expected
        assert len({position for position, _ in in_column}) == len(in_column)


async def test_concurrent_placements_by_one_user_never_collide(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """Creates and moves racing each other are serialised per user: all succeed, all distinct."""
    created = await asyncio.gather(*(create_task(client, alice, title=f"r{i}") for i in range(15)))
    first = created[0]
    responses = await asyncio.gather(
        *(move(client, alice, card, after_id=first["id"]) for card in created[1:8]),
        *(move(client, alice, card, status="done") for card in created[8:]),
        *(
            client.post("/api/tasks", json={"title": f"late{i}"}, headers=alice.headers)
            for i in range(5)
        ),
    )
    assert [response.status_code for response in responses] == [200] * 14 + [201] * 5
    stored = await positions(tasks_db, alice.id)
    assert len(stored) == 20
    places = [(status, position) for status, position, _ in stored.values()]
    assert len(set(places)) == len(places)
    board = await board_titles(client, alice)
    assert board["todo"][0] == "r0"
    assert sorted(board["done"]) == sorted(f"r{i}" for i in range(8, 15))


CROSS_BOARD_MOVES = st.lists(
    st.tuples(
        st.integers(0, 7),  # which card
        st.sampled_from(["before", "after", "end"]),
        st.integers(0, 7),  # anchor card
        st.integers(0, 5),  # target column (three on each of two boards), for "end"
    ),
    min_size=40,
    max_size=40,
)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(moves=CROSS_BOARD_MOVES)
async def test_random_moves_across_boards_keep_every_column_a_permutation(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine, moves: list[Any]
) -> None:
    """After any sequence of moves between the columns of two boards, each column shows
    exactly the cards a model says, in its order, with no duplicate, and every column's kept
    total agrees with its cards."""
    await truncate_tasks(tasks_db)
    boards = [await create_board(client, alice, name) for name in ("one", "two")]
    columns = [column["id"] for board in boards for column in board["columns"]]
    titles = [f"c{i}" for i in range(8)]
    cards = [await create_task(client, alice, column_id=columns[0], title=t) for t in titles]
    model: dict[str, list[str]] = {column: [] for column in columns}
    model[columns[0]] = list(titles)

    for card_index, kind, anchor_index, column_index in moves:
        card, anchor = titles[card_index], titles[anchor_index]
        if kind == "end" or anchor == card:
            body: dict[str, Any] = {"column_id": columns[column_index]}
            target = columns[column_index]
        else:
            body = {"before_id" if kind == "before" else "after_id": cards[anchor_index]["id"]}
            target = next(column for column, held in model.items() if anchor in held)
        response = await move(client, alice, cards[card_index], **body)
        assert response.status_code == 200, response.text
        for held in model.values():
            if card in held:
                held.remove(card)
        if "column_id" in body:
            model[target].append(card)
        else:
            model[target].insert(model[target].index(anchor) + (kind == "after"), card)

    seen: list[str] = []
    for board in boards:
        view = await board_view(client, alice, board["id"])
        for column in view["columns"]:
            shown = [task["title"] for task in column["items"]]
            assert shown == model[column["id"]]
            assert column["total"] == len(shown)
            seen += shown
    assert sorted(seen) == sorted(titles)
