"""A user's live change stream (`GET /api/events`), and the single-use tickets a browser's
EventSource presents instead of a Bearer header.

A stream is the change log read after a cursor, again whenever the owner's doorbell rings
(core/change_listener.py), so resuming from the last id a client saw repeats nothing and skips
nothing. It ends on its own, with a reason the client can act on: the token expired or was
revoked (reconnect with a fresh one), the stream's maximum age, or the process shutting down
(reconnect; another replica answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from taskgate_common.errors import ApiError, DatabaseUnavailable
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.change_listener import Subscription, TooManyStreams
from tasks_service.repositories import changes, stream_tickets
from tasks_service.repositories.changes import ChangeEntry
from tasks_service.services.access import unauthorized
from tasks_service.services.changes import check_cursor

logger = logging.getLogger("taskgate.tasks.events")

BATCH = 500


@dataclass(frozen=True, slots=True)
class Ready:
    """First item of every stream: the cursor it starts after."""

    cursor: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class End:
    code: str
    detail: str


StreamItem = Ready | ChangeEntry | Heartbeat | End


def _ticket_hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


async def issue_ticket(ctx: TasksContext, principal: Principal) -> str:
    ticket = secrets.token_urlsafe(32)
    async with ctx.db.connect() as db:
        await stream_tickets.add(
            db, _ticket_hash(ticket), principal, ctx.settings.events_ticket_ttl_seconds
        )
    return ticket


async def spend_ticket(ctx: TasksContext, ticket: str) -> Principal:
    """The caller a ticket was issued to; 401 if it is unknown, spent or expired, or if the
    token it was issued for has since expired or been revoked."""
    async with ctx.db.connect() as db:
        principal = await stream_tickets.spend(db, _ticket_hash(ticket))
    if principal is None:
        raise unauthorized("invalid_ticket", "The stream ticket is unknown, spent or expired")
    if principal.expires_at <= time.time():
        raise unauthorized("token_expired", "The token the ticket was issued for has expired")
    if ctx.revocations.is_revoked(principal.user_id, principal.session_id, principal.token_version):
        raise unauthorized("token_revoked", "The token was revoked; log in again")
    return principal


def too_many_streams(limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_streams",
        f"At most {limit} event streams per user; close one (or share one between tabs)",
        {"Retry-After": "30"},
    )


class EventStream:
    """Opened before the response starts, so that a bad cursor (410, 422) or one stream too
    many (429) is an ordinary JSON error; then iterated by the response."""

    def __init__(
        self,
        ctx: TasksContext,
        principal: Principal,
        after: int | None,
        after_loc: tuple[str, str] = ("header", "last-event-id"),
    ) -> None:
        """`after_loc`: where the client gave `after`, for a 422's `loc`."""
        self._ctx = ctx
        self._principal = principal
        self._after = after
        self._after_loc = after_loc
        self._subscribed: contextlib.ExitStack | None = None
        self._subscription: Subscription | None = None
        self.cursor = 0

    async def open(self) -> None:
        ctx = self._ctx
        stack = contextlib.ExitStack()
        try:
            self._subscription = stack.enter_context(
                ctx.listener.subscribe(self._principal.user_id)
            )
        except TooManyStreams:
            raise too_many_streams(ctx.listener.max_streams_per_user) from None
        # Subscribed first, read second: a change committed in between rings the bell.
        try:
            async with ctx.db.connect() as db:
                found = await changes.read(db, self._principal.user_id, 0, 0)
            if self._after is None:
                self.cursor = found.latest
            else:
                check_cursor(self._after, found.latest, found.purged_through, self._after_loc)
                self.cursor = self._after
        except BaseException:
            stack.close()
            raise
        self._subscribed = stack

    def close(self) -> None:
        if self._subscribed is not None:
            self._subscribed.close()
            self._subscribed = None

    async def items(self) -> AsyncIterator[StreamItem]:
        assert self._subscription is not None, "open() first"
        try:
            async for item in self._run(self._subscription):
                yield item
        finally:
            self.close()

    async def _run(self, subscription: Subscription) -> AsyncIterator[StreamItem]:
        ctx, principal = self._ctx, self._principal
        settings, listener, metrics = ctx.settings, ctx.listener, ctx.metrics
        yield Ready(self.cursor)
        started = time.monotonic()
        ends_at = min(principal.expires_at, time.time() + settings.events_max_stream_seconds)
        last_sent = started
        read = True  # the log is read at the start, on a wake-up, and on each poll
        while True:
            if listener.closing:
                yield End("server_shutdown", "The server is restarting; reconnect")
                return
            if ctx.revocations.is_revoked(
                principal.user_id, principal.session_id, principal.token_version
            ):
                yield End("token_revoked", "The token was revoked; log in again")
                return
            if read:
                subscription.wake.clear()
                entries, more = await self._read()
                for entry in entries:
                    yield entry
                    self.cursor = entry.seq
                    metrics.events_sent.inc()
                    lag = time.time() - entry.changed_at.timestamp()
                    metrics.event_lag.observe(max(0.0, lag))
                if entries:
                    last_sent = time.monotonic()
                if more:
                    continue
            remaining = ends_at - time.time()
            if remaining <= 0:
                if ends_at >= principal.expires_at:
                    yield End("token_expired", "The access token expired; reconnect with a new one")
                else:
                    yield End("stream_max_age", "The stream reached its maximum age; reconnect")
                return
            poll = listener.poll_interval()
            wait = min(
                remaining,
                settings.events_heartbeat_seconds - (time.monotonic() - last_sent),
                poll or remaining,
            )
            try:
                await asyncio.wait_for(subscription.wake.wait(), timeout=max(wait, 0.0))
                read = True
            except TimeoutError:
                read = poll is not None
            if time.monotonic() - last_sent >= settings.events_heartbeat_seconds:
                yield Heartbeat()
                last_sent = time.monotonic()

    async def _read(self) -> tuple[list[ChangeEntry], bool]:
        """The next entries after the stream's cursor; none while the database is away (the
        stream stays, and reads again at the next wake-up or poll)."""
        try:
            async with self._ctx.db.connect() as db:
                found = await changes.read(db, self._principal.user_id, self.cursor, BATCH + 1)
        except DatabaseUnavailable as exc:
            logger.warning("event stream could not read the change log: %s", exc)
            return [], False
        return found.entries[:BATCH], len(found.entries) > BATCH
