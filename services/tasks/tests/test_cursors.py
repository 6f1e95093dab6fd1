"""List cursors are signed: a forged, tampered or foreign cursor is 422 `invalid_cursor`, never a
500, and refusing one leaves the service healthy. Genuine cursors keep paginating, even at the
edges of the time range."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tasks_factories import User, behind_the_api, create_task, running_app

from tasks_service.core.config import Settings
from tasks_service.core.cursor import (
    MAX_TIME,
    MIN_TIME,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)
from tasks_service.models import TaskStatus
from tasks_service.schemas import TaskListParams

# Offsets that push the UTC value past the years 1..9999 every datetime library can hold.
FORGED_STAMPS = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
TIME_SORTS = ["-created_at", "-updated_at", "due_at"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsigned_cursor(sort: str, key: list[Any], filters: dict[str, Any] | None = None) -> str:
    """What an attacker builds from the source: the old, unsigned format (base64url JSON of the
    sort, the filter fingerprint and the key)."""
    filters = TaskListParams().filters() if filters is None else filters
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    payload = json.dumps({"s": sort, "f": fingerprint, "k": key}, separators=(",", ":"))
    return _b64(payload.encode())


def assert_invalid_cursor(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_cursor"
    assert body["detail"]
    assert [item["loc"] for item in body["errors"]] == [["query", "cursor"]]


async def first_page_cursor(client: httpx.AsyncClient, user: User, sort: str) -> str:
    page = await client.get(f"/api/tasks?sort={sort}&limit=1", headers=user.headers)
    assert page.status_code == 200, page.text
    cursor: str = page.json()["next_cursor"]
    assert cursor
    return cursor


async def three_tasks(client: httpx.AsyncClient, user: User) -> None:
    for day in (1, 2, 3):
        await create_task(client, user, due_at=f"2031-01-0{day}T12:00:00+00:00")


@pytest.mark.parametrize("sort", TIME_SORTS)
@pytest.mark.parametrize("stamp", FORGED_STAMPS)
async def test_forged_unsigned_cursor_with_an_extreme_time_is_422(
    client: httpx.AsyncClient, alice: User, sort: str, stamp: str
) -> None:
    """The security finding: this used to reach the database and answer 500."""
    await three_tasks(client, alice)
    cursor = unsigned_cursor(sort, [stamp, str(uuid.uuid4())])
    response = await client.get(f"/api/tasks?sort={sort}&cursor={cursor}", headers=alice.headers)
    assert_invalid_cursor(response)

    after = await client.get(f"/api/tasks?sort={sort}", headers=alice.headers)
    assert after.status_code == 200
    assert len(after.json()["items"]) == 3
    assert (await client.get("/health/ready")).status_code == 200


@pytest.mark.parametrize(
    "key",
    [
        ["todo", 1, "6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11"],  # well-formed but not issued
        ["todo", 2**70, str(uuid.uuid4())],
        ["blocked", 1, str(uuid.uuid4())],
        ["todo", 1, "not-a-uuid"],
        ["todo", True, str(uuid.uuid4())],
        ["todo", 1],
    ],
)
async def test_forged_unsigned_position_cursor_is_422(
    client: httpx.AsyncClient, alice: User, key: list[Any]
) -> None:
    response = await client.get(
        f"/api/tasks?cursor={unsigned_cursor('position', key)}", headers=alice.headers
    )
    assert_invalid_cursor(response)


@pytest.mark.parametrize(
    "cursor",
    ["%25%25%25", "bm90IGpzb24", "eyJzIjoicG9zaXRpb24ifQ", "A" * 1024, "abc.def", ".", "a.b.c"],
)
async def test_malformed_cursor_is_422(client: httpx.AsyncClient, alice: User, cursor: str) -> None:
    assert_invalid_cursor(await client.get(f"/api/tasks?cursor={cursor}", headers=alice.headers))


async def test_overlong_cursor_is_an_ordinary_validation_error(
    client: httpx.AsyncClient, alice: User
) -> None:
    """Longer than any cursor the service issues: the parameter's own length bound answers."""
    response = await client.get(f"/api/tasks?cursor={'A' * 2000}", headers=alice.headers)
    assert response.status_code == 422
    assert ["query", "cursor"] in [item["loc"] for item in response.json()["errors"]]


@pytest.mark.parametrize("sort", ["position", *TIME_SORTS])
async def test_genuine_cursor_with_a_tampered_byte_is_422(
    client: httpx.AsyncClient, alice: User, sort: str
) -> None:
    await three_tasks(client, alice)
    cursor = await first_page_cursor(client, alice, sort)
    for index in (0, len(cursor) // 3, len(cursor) // 2, len(cursor) - 2, len(cursor) - 1):
        replacement = "B" if cursor[index] != "B" else "C"
        tampered = cursor[:index] + replacement + cursor[index + 1 :]
        response = await client.get(
            f"/api/tasks?sort={sort}&cursor={tampered}", headers=alice.headers
        )
        assert_invalid_cursor(response)
    assert (
        await client.get(f"/api/tasks?sort={sort}&cursor={cursor}", headers=alice.headers)
    ).status_code == 200


@pytest.mark.parametrize("sort", TIME_SORTS)
@pytest.mark.parametrize("stamp", FORGED_STAMPS)
async def test_genuine_cursor_with_a_rewritten_key_is_422(
    client: httpx.AsyncClient, alice: User, sort: str, stamp: str
) -> None:
    """A validly shaped cursor whose key is swapped for an extreme time, signature kept."""
    await three_tasks(client, alice)
    cursor = await first_page_cursor(client, alice, sort)
    payload, _, tag = cursor.partition(".")
    body = json.loads(_unb64(payload))
    for forged in (stamp, -(2**62), 2**62):
        body["k"][0] = forged
        rewritten = _b64(json.dumps(body, separators=(",", ":")).encode()) + "." + tag
        response = await client.get(
            f"/api/tasks?sort={sort}&cursor={rewritten}", headers=alice.headers
        )
        assert_invalid_cursor(response)


async def test_cursor_signed_with_another_secret_is_422(
    client: httpx.AsyncClient, alice: User
) -> None:
    """What a client sees when a replica with another secret (or a restarted process with a
    random one) gets its cursor: 422, and starting again from the first page works."""
    await three_tasks(client, alice)
    genuine = await client.get("/api/tasks?limit=1", headers=alice.headers)
    key = [TaskStatus.TODO, 1024, uuid.UUID(genuine.json()["items"][0]["id"])]
    filters = TaskListParams().filters()
    foreign = encode_cursor(b"another replica's secret, 32+ bytes", "position", filters, key)
    response = await client.get(f"/api/tasks?limit=1&cursor={foreign}", headers=alice.headers)
    assert_invalid_cursor(response)
    assert "first page" in response.json()["detail"]
    assert (await client.get("/api/tasks?limit=1", headers=alice.headers)).status_code == 200


async def test_cursor_from_another_replica_with_the_same_secret_works(
    client: httpx.AsyncClient, alice: User, settings: Settings
) -> None:
    """Replicas sharing TASKS_CURSOR_SECRET accept each other's cursors; others refuse them."""
    await three_tasks(client, alice)
    cursor = await first_page_cursor(client, alice, "-created_at")
    url = f"/api/tasks?sort=-created_at&limit=1&cursor={cursor}"
    same = settings.model_copy(update={"db_pool_size": 1})
    async with running_app(same) as (app, replica):
        assert await app.state.ctx.jwks.refresh()
        assert (await replica.get(url, headers=alice.headers)).status_code == 200
    other = Settings(
        **{**settings.model_dump(exclude={"cursor_secret"}), "cursor_secret": "x" * 40}
    )
    async with running_app(other.model_copy(update={"db_pool_size": 1})) as (app, stranger):
        assert await app.state.ctx.jwks.refresh()
        assert_invalid_cursor(await stranger.get(url, headers=alice.headers))


def test_a_short_configured_secret_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="32"):
        Settings(**{**settings.model_dump(exclude={"cursor_secret"}), "cursor_secret": "short"})


def test_an_unset_secret_is_random_per_process(settings: Settings) -> None:
    values = settings.model_dump(exclude={"cursor_secret"})
    first, second = Settings(**values), Settings(**values)
    assert len(first.cursor_key) >= 32
    assert first.cursor_key != second.cursor_key


async def test_genuine_cursors_walk_every_sort_in_order(
    client: httpx.AsyncClient, alice: User
) -> None:
    ids = [
        (await create_task(client, alice, due_at=due))["id"]
        for due in (
            "2031-01-03T00:00:00+00:00",
            None,
            "2031-01-01T00:00:00-05:00",
            "2031-01-02T00:00:00+00:00",
            None,
        )
    ]
    for sort in ("position", *TIME_SORTS):
        seen: list[str] = []
        cursor = ""
        for _ in range(10):
            response = await client.get(
                f"/api/tasks?sort={sort}&limit=2{cursor}", headers=alice.headers
            )
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [task["id"] for task in page["items"]]
            if page["next_cursor"] is None:
                break
            assert len(page["next_cursor"]) < 300  # short enough for a URL
            cursor = f"&cursor={page['next_cursor']}"
        assert sorted(seen) == sorted(ids), sort
        assert len(seen) == len(set(seen)), sort
        expected = {
            "position": ids,
            "-created_at": ids[::-1],
            "-updated_at": ids[::-1],
            "due_at": [ids[2], ids[3], ids[0], *sorted([ids[1], ids[4]])],
        }
        assert seen == expected[sort], sort


async def test_extreme_but_valid_due_dates_paginate(client: httpx.AsyncClient, alice: User) -> None:
    """The range checks accept every time the service can store, down to the microsecond."""
    earliest = await create_task(client, alice, due_at="0001-01-01T00:00:00.000001+00:00")
    latest = await create_task(client, alice, due_at="9999-12-31T23:59:59.999998Z")
    middle = await create_task(client, alice, due_at="2031-01-01T00:00:00Z")
    walked: list[str] = []
    cursor = ""
    for _ in range(5):
        page = (
            await client.get(f"/api/tasks?sort=due_at&limit=1{cursor}", headers=alice.headers)
        ).json()
        walked += [task["id"] for task in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert walked == [earliest["id"], middle["id"], latest["id"]]


@pytest.mark.parametrize("due", ["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z"])
async def test_due_dates_the_driver_would_store_as_infinity_are_422(
    client: httpx.AsyncClient, alice: User, due: str
) -> None:
    """asyncpg sends exactly these two instants as PostgreSQL's -infinity/infinity, which read
    back as naive datetimes: refused, like any other time out of range."""
    response = await client.post(
        "/api/tasks", json={"title": "t", "due_at": due}, headers=alice.headers
    )
    assert response.status_code == 422
    assert ["body", "due_at"] in [item["loc"] for item in response.json()["errors"]]


async def test_infinite_due_dates_already_stored_still_paginate(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """Rows written before the bound (stored as +/-infinity) keep their place in the walk."""
    first = await create_task(client, alice, due_at="2031-01-01T00:00:00Z")
    never = await create_task(client, alice, due_at="2031-01-02T00:00:00Z")
    dawn = await create_task(client, alice, due_at="2031-01-03T00:00:00Z")
    undated = await create_task(client, alice)
    async with behind_the_api(tasks_db) as connection:
        await connection.execute(
            text("UPDATE tasks SET due_at = 'infinity' WHERE id = :id"), {"id": never["id"]}
        )
        await connection.execute(
            text("UPDATE tasks SET due_at = '-infinity' WHERE id = :id"), {"id": dawn["id"]}
        )
    walked: list[str] = []
    cursor = ""
    for _ in range(6):
        response = await client.get(
            f"/api/tasks?sort=due_at&limit=1{cursor}", headers=alice.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        walked += [task["id"] for task in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert walked == [dawn["id"], first["id"], never["id"], undated["id"]]


@pytest.mark.parametrize(
    "query",
    [
        "due_before=9999-12-31T23:59:59-14:00",
        "due_after=0001-01-01T00:00:00%2B14:00",
        "due_before=9999-12-31T23:59:59.999999Z",
        "due_after=0001-01-01T00:00:00Z",
    ],
)
async def test_list_filters_out_of_range_are_422_not_500(
    client: httpx.AsyncClient, alice: User, query: str
) -> None:
    response = await client.get(f"/api/tasks?{query}", headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await client.get("/health/ready")).status_code == 200


async def test_a_refused_cursor_leaves_the_only_pooled_connection_healthy(
    settings: Settings, alice: User, tasks_db: AsyncEngine
) -> None:
    """With one pooled connection, the request after a forged cursor runs on the same
    connection: it and readiness answer 200, and the table is not left locked."""
    async with running_app(settings.model_copy(update={"db_pool_size": 1})) as (own, client):
        assert await own.state.ctx.jwks.refresh()
        await three_tasks(client, alice)
        for stamp in FORGED_STAMPS:
            cursor = unsigned_cursor("-created_at", [stamp, str(uuid.uuid4())])
            response = await client.get(
                f"/api/tasks?sort=-created_at&cursor={cursor}", headers=alice.headers
            )
            assert_invalid_cursor(response)
            async with tasks_db.begin() as connection:
                await connection.execute(text("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE NOWAIT"))
            listed = await client.get("/api/tasks?sort=-created_at", headers=alice.headers)
            assert listed.status_code == 200
            assert len(listed.json()["items"]) == 3
            assert (await client.get("/health/ready")).status_code == 200


SECRET = b"a test secret of at least 32 bytes!"


def test_changing_any_single_character_of_a_cursor_is_detected() -> None:
    """Tamper evidence down to the last base64 character (whose spare bits are not ignored)."""
    filters = TaskListParams().filters()
    key = [datetime(2031, 1, 1, tzinfo=UTC), uuid.uuid4()]
    cursor = encode_cursor(SECRET, "-created_at", filters, key)
    assert decode_cursor(SECRET, cursor, "-created_at", filters) == key
    for index, original in enumerate(cursor):
        for replacement in {"A", "B", "-", "_", "."} - {original}:
            tampered = cursor[:index] + replacement + cursor[index + 1 :]
            with pytest.raises(InvalidCursor):
                decode_cursor(SECRET, tampered, "-created_at", filters)
    with pytest.raises(InvalidCursor):
        decode_cursor(b"another secret of at least 32 bytes", cursor, "-created_at", filters)


@pytest.mark.parametrize(
    ("stored", "decoded"),
    [
        (datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC), datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        (
            datetime(2031, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),
            datetime(2031, 1, 1, tzinfo=UTC),
        ),
        # What asyncpg reads PostgreSQL's -infinity/infinity as: the ends of the range, in UTC.
        (datetime.min, MIN_TIME),
        (datetime.max, MAX_TIME),
        (None, None),
    ],
)
def test_time_keys_round_trip_across_the_whole_range(
    stored: datetime | None, decoded: datetime | None
) -> None:
    task_id = uuid.uuid4()
    cursor = encode_cursor(SECRET, "due_at", {}, [stored, task_id])
    assert decode_cursor(SECRET, cursor, "due_at", {}) == [decoded, task_id]
