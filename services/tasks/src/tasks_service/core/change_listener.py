"""Which of this process's event streams have something new: PostgreSQL `LISTEN` on the
tasks database, one connection per process.

The change-log trigger sends `pg_notify('taskgate_changes', owner)` in the writing
transaction; PostgreSQL delivers it at commit to every listening process, so a write through
any replica wakes the owner's streams on all of them. A notification only says "look"; a
stream then reads the log after its own cursor, so a lost or merged notification loses
nothing. While the connection is down (database restart), streams fall back to polling the
log every `fallback_poll_seconds`, and every stream is woken once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from taskgate_common.graceful_shutdown import SignalHandler, hand_on
from tasks_service.metrics import TasksMetrics

logger = logging.getLogger("taskgate.tasks.changes")

CHANNEL = "taskgate_changes"


class TooManyStreams(Exception):
    """The owner already holds the most streams this process allows."""


class Subscription:
    """One stream's doorbell: `wake` is set when the owner's log may have grown."""

    __slots__ = ("owner_id", "wake")

    def __init__(self, owner_id: uuid.UUID) -> None:
        self.owner_id = owner_id
        self.wake = asyncio.Event()


class ChangeListener:
    def __init__(
        self,
        database_url: str,
        metrics: TasksMetrics,
        *,
        max_streams_per_user: int,
        fallback_poll_seconds: float,
        connect_timeout: float = 5.0,
        retry_max_seconds: float = 10.0,
    ) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._metrics = metrics
        self.max_streams_per_user = max_streams_per_user
        self.fallback_poll_seconds = fallback_poll_seconds
        self._connect_timeout = connect_timeout
        self._retry_max = retry_max_seconds
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.listening = False
        self.closing = False  # the process is stopping: streams end, clients reconnect

    # -- streams ------------------------------------------------------------------------------

    @contextmanager
    def subscribe(self, owner_id: uuid.UUID) -> Iterator[Subscription]:
        """Register a stream of `owner_id` for as long as the block runs."""
        streams = self._subscribers.setdefault(owner_id, set())
        if len(streams) >= self.max_streams_per_user:
            if not streams:
                del self._subscribers[owner_id]
            raise TooManyStreams
        subscription = Subscription(owner_id)
        streams.add(subscription)
        self._metrics.event_streams.inc()
        try:
            yield subscription
        finally:
            streams.discard(subscription)
            if not streams:
                self._subscribers.pop(owner_id, None)
            self._metrics.event_streams.dec()

    def poll_interval(self) -> float | None:
        """None while notifications arrive; else how often streams should read the log."""
        return None if self.listening else self.fallback_poll_seconds

    def _wake(self, owner_id: uuid.UUID) -> None:
        for subscription in self._subscribers.get(owner_id, ()):
            subscription.wake.set()

    def wake_owners(self, owner_ids: Iterable[uuid.UUID]) -> None:
        """Ring these owners' streams for another reason than a change (e.g. a revocation
        they must check at once)."""
        for owner_id in owner_ids:
            self._wake(owner_id)

    def _wake_all(self) -> None:
        for streams in self._subscribers.values():
            for subscription in streams:
                subscription.wake.set()

    def close_streams(self) -> None:
        """End every stream (each sends its `end` event): the process is about to stop, and
        uvicorn would otherwise wait for them to finish before it does."""
        self.closing = True
        self._wake_all()

    def close_streams_on_signals(self) -> Callable[[], None]:
        """Chain SIGTERM and SIGINT so that they end the streams first, then do what they
        did (uvicorn's shutdown, or the drain that leads to it). Main thread only (test apps
        run elsewhere and are stopped by their tests). Returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous: dict[int, SignalHandler] = {
            number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)
        }

        def on_signal(number: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.close_streams)
            hand_on(previous[number], number, frame)

        for number in previous:
            signal.signal(number, on_signal)

        def undo() -> None:
            for number, handler in previous.items():
                if signal.getsignal(number) == on_signal:
                    signal.signal(number, handler)

        return undo

    # -- the LISTEN connection ----------------------------------------------------------------

    async def start(self) -> None:
        """Returns at once: the connection is made (and remade) in the background."""
        self._task = asyncio.create_task(self._run(), name="change-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
                delay = 0.5
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("change notifications unavailable: %r", exc)
            self._set_listening(False)
            self._wake_all()  # streams switch to polling at once
            await self._close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": "taskgate-tasks-listener"},
        )
        self._connection = connection
        connection.add_termination_listener(lambda _: self._lost.set())
        await connection.add_listener(CHANNEL, self._on_notification)
        self._set_listening(True)
        # Whatever was written while nobody listened: every stream reads its log once.
        self._wake_all()

    async def _watch(self, every: float = 30.0) -> None:
        """Return when the connection is lost: closed by the server (the termination
        callback), or silent to a ping (a network that dropped it without a word)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=every)
                return
            connection = self._connection
            if connection is None:
                return
            await connection.execute("SELECT 1", timeout=self._connect_timeout)

    def _on_notification(self, _: Any, __: int, ___: str, payload: str) -> None:
        self._metrics.change_notifications.inc()
        try:
            owner_id = uuid.UUID(payload)
        except ValueError:
            return
        self._wake(owner_id)

    def _set_listening(self, listening: bool) -> None:
        self.listening = listening
        self._metrics.change_listener_up.set(1 if listening else 0)

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)
