"""`GET /api/events` over real HTTP (uvicorn): a change made by one client arrives on another's
stream, across processes too; a reconnect resumes without a gap or a repeat; streams end with
a reason; tickets open a stream without a header, once."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_client import EventReader, open_stream
from sync_workloads import OPERATIONS, all_changes, apply_operation, expire_changes
from tasks_factories import (
    AuthServer,
    ServedApp,
    User,
    bearer,
    claims_for,
    create_task,
    eventually,
    metric,
    sign,
    truncate_tasks,
)

from auth_service.core.signing_keys import SigningKey
from tasks_service.core.config import Settings
from tasks_service.main import create_app

# Short enough that a test sees several within a second or two.
HEARTBEAT = 0.3


def start_server(settings: Settings, name: str, **overrides: Any) -> ServedApp:
    update = {"events_heartbeat_seconds": HEARTBEAT, **overrides}
    served = ServedApp(create_app(settings.model_copy(update=update)), name)
    served.start()
    return served


@pytest.fixture(scope="module")
def replica_a(settings: Settings) -> Iterator[ServedApp]:
    served = start_server(settings, "tasks-replica-a", events_max_streams_per_user=3)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def replica_b(settings: Settings) -> Iterator[ServedApp]:
    """A second process's worth of app on the same database (its own LISTEN connection), with
    a heartbeat of 2 minutes."""
    served = start_server(settings, "tasks-replica-b", events_heartbeat_seconds=120)
    yield served
    served.stop()


@pytest.fixture
async def http_a(replica_a: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replica_a.base_url, timeout=30) as http:
        yield http


@pytest.fixture
async def http_b(replica_b: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replica_b.base_url, timeout=30) as http:
        yield http


async def ready(stream: EventReader) -> str:
    event = await stream.next()
    assert event.event == "ready", event
    assert event.id is not None
    assert event.json() == {"cursor": event.id}
    return event.id


async def test_a_write_arrives_on_the_other_clients_stream_and_nobody_elses(
    http_a: httpx.AsyncClient, alice: User, bob: User
) -> None:
    async with (
        open_stream(http_a, headers=alice.headers) as alices,
        open_stream(http_a, headers=bob.headers) as bobs,
    ):
        await ready(alices)
        await ready(bobs)
        task = await create_task(http_a, alice, title="seen elsewhere")
        arrived = (await alices.until(task["id"]))[-1]
        assert arrived["op"] == "upsert"
        assert arrived["data"] == task
        own = await create_task(http_a, bob, title="bob's own")
        # Everything on bob's stream up to his own change is his: alice's never got there.
        seen = await bobs.until(own["id"])
        assert task["id"] not in [entry["id"] for entry in seen]
        assert {e["data"]["owner_id"] for e in seen if e["type"] == "task"} == {str(bob.id)}


async def test_a_write_through_another_process_arrives(
    http_a: httpx.AsyncClient, http_b: httpx.AsyncClient, alice: User
) -> None:
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)
        task = await create_task(http_b, alice, title="written on b")
        assert (await stream.until(task["id"], timeout=5))[-1]["data"] == task


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_entries(
    http_a: httpx.AsyncClient, alice: User
) -> None:
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)
        first = await create_task(http_a, alice, title="seen")
        await stream.until(first["id"])
        last_seen = stream.last_id
    assert last_seen is not None
    missed_task = await create_task(http_a, alice, title="missed")
    patched = await http_a.patch(
        f"/api/tasks/{missed_task['id']}", json={"title": "missed twice"}, headers=alice.headers
    )
    assert patched.status_code == 200
    deleted = await http_a.delete(f"/api/tasks/{first['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    logged = await http_a.get(f"/api/changes?since={last_seen}", headers=alice.headers)
    expected = logged.json()["changes"]
    assert len(expected) >= 3
    headers = {**alice.headers, "Last-Event-ID": last_seen}
    async with open_stream(http_a, headers=headers) as resumed:
        assert await ready(resumed) == last_seen
        replayed = await resumed.changes(len(expected))
        assert replayed == expected
        await resumed.nothing_within(1.0)


async def test_a_stream_ends_when_its_token_expires(
    http_a: httpx.AsyncClient, alice: User, auth_server: AuthServer, auth_key: SigningKey
) -> None:
    claims = claims_for(auth_server.issuer, alice.id, exp=int(time.time()) + 2)
    short_lived = sign(auth_key, claims)
    async with open_stream(http_a, headers=bearer(short_lived)) as stream:
        await ready(stream)
        end = await stream.next(timeout=10)
        assert end.event == "end"
        assert end.json()["code"] == "token_expired"
        with pytest.raises(EOFError):
            await stream.next(timeout=5)


async def test_a_logout_ends_the_stream_within_the_revocation_delay(
    http_b: httpx.AsyncClient, alice: User, auth_server: AuthServer
) -> None:
    """The revocation feed (polled every second) rings the user's streams: the stream ends
    seconds after the logout, not at its next heartbeat (2 minutes on this replica)."""
    async with httpx.AsyncClient(base_url=auth_server.base_url, timeout=30) as auth:
        login = await auth.post(
            "/auth/login", json={"username": alice.username, "password": alice.password}
        )
        assert login.status_code == 200, login.text
        tokens = login.json()
        async with open_stream(http_b, headers=bearer(tokens["access_token"])) as stream:
            await ready(stream)
            logout = await auth.post(
                "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
            )
            assert logout.status_code in (200, 204), logout.text
            end = await stream.next(timeout=30)
            assert end.event == "end"
            assert end.json()["code"] == "token_revoked"


async def test_an_idle_stream_gets_heartbeats(http_a: httpx.AsyncClient, alice: User) -> None:
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)
        beat = await stream.next(timeout=5, comments=True)
        assert beat.event == "comment"
        assert beat.data == "keep-alive"


async def test_a_ticket_opens_one_stream_without_a_header(
    http_a: httpx.AsyncClient, alice: User
) -> None:
    issued = await http_a.post("/api/events/tickets", headers=alice.headers)
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]
    assert issued.json()["expires_in"] == 30
    # A malformed request is refused before the ticket is spent.
    malformed = await http_a.get(f"/api/events?ticket={ticket}&since=1")
    assert malformed.status_code == 422
    async with open_stream(http_a, f"/api/events?ticket={ticket}") as stream:
        await ready(stream)
        task = await create_task(http_a, alice)
        await stream.until(task["id"])
    again = await http_a.get(f"/api/events?ticket={ticket}")
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_ticket"
    forged = await http_a.get(f"/api/events?ticket={uuid.uuid4().hex}")
    assert forged.status_code == 401


async def test_one_stream_too_many_is_429(http_a: httpx.AsyncClient, alice: User) -> None:
    async with (
        open_stream(http_a, headers=alice.headers) as one,
        open_stream(http_a, headers=alice.headers) as two,
        open_stream(http_a, headers=alice.headers) as three,
    ):
        for stream in (one, two, three):
            await ready(stream)
        refused = await http_a.get("/api/events", headers=alice.headers)
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_streams"
        assert await metric(http_a, "tasks_event_streams") == 3
    # Closed streams give their places back.
    await eventually(lambda: _streams_are(http_a, 0.0))
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)


async def _streams_are(http: httpx.AsyncClient, count: float) -> bool:
    return await metric(http, "tasks_event_streams") == count


async def test_a_cursor_never_given_is_422_before_the_stream_starts(
    http_a: httpx.AsyncClient, alice: User
) -> None:
    await create_task(http_a, alice)
    bogus = await http_a.get(
        "/api/events", headers={**alice.headers, "Last-Event-ID": "99999999999"}
    )
    assert bogus.status_code == 422
    assert bogus.json()["code"] == "invalid_cursor"
    assert bogus.json()["errors"][0]["loc"] == ["header", "last-event-id"]


async def test_an_expired_cursor_is_410_before_the_stream_starts(
    app: FastAPI, http_a: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """A reconnect after the log dropped what it missed: 410, so the client reads in full."""
    async with open_stream(http_a, headers=alice.headers) as stream:
        old = await ready(stream)
    await create_task(http_a, alice)
    assert await expire_changes(app, tasks_db, alice) > 0
    expired = await http_a.get(f"/api/events?last_event_id={old}", headers=alice.headers)
    assert expired.status_code == 410
    assert expired.json()["code"] == "sync_expired"


async def test_streams_keep_delivering_while_listen_is_lost(
    http_a: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """The database drops the LISTEN connection (a restart, a failover): the stream reads
    the log by polling until the listener is back, and misses nothing."""
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)
        async with tasks_db.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'taskgate-tasks-listener'"
                )
            )
        task = await create_task(http_a, alice, title="while nobody listens")
        await stream.until(task["id"], timeout=10)
    await eventually(lambda: _listening(http_a))


async def _listening(http: httpx.AsyncClient) -> bool:
    return await metric(http, "tasks_change_listener_up") == 1.0


async def test_events_sent_are_counted(http_a: httpx.AsyncClient, alice: User) -> None:
    before = await metric(http_a, "tasks_events_sent_total")
    async with open_stream(http_a, headers=alice.headers) as stream:
        await ready(stream)
        task = await create_task(http_a, alice)
        await stream.until(task["id"])
    assert await metric(http_a, "tasks_events_sent_total") >= before + 2


@settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
async def test_each_users_stream_carries_exactly_their_changes(
    http_a: httpx.AsyncClient,
    users: list[User],
    tasks_db: AsyncEngine,
    operations: list[tuple[int, str, int]],
) -> None:
    """Three users with a stream each, random operations by all of them: each stream carries
    exactly its user's log, in order, and nothing of the others' (a final board of each user
    closes the comparison, so an entry of someone else would show up before it)."""
    await truncate_tasks(tasks_db)
    people = users[:3]
    async with contextlib.AsyncExitStack() as opened:
        streams: dict[uuid.UUID, EventReader] = {}
        starts: dict[uuid.UUID, str] = {}
        for user in people:
            stream = await opened.enter_async_context(open_stream(http_a, headers=user.headers))
            starts[user.id] = await ready(stream)
            streams[user.id] = stream
        for whose, operation, pick in operations:
            await apply_operation(http_a, people[whose], operation, pick)
        for user in people:
            last = await http_a.post("/api/boards", json={"name": "last"}, headers=user.headers)
            assert last.status_code == 201, last.text
        for user in people:
            expected = await all_changes(http_a, user, starts[user.id])
            assert await streams[user.id].changes(len(expected)) == expected
