"""Leave the load balancer before stopping: on SIGTERM, readiness answers 503 for a drain period
while requests are still served; then uvicorn's own graceful shutdown runs.

Why: uvicorn closes its listening socket the moment it gets SIGTERM. A balancer that still
lists the replica (Traefik checks `/health/ready` every few seconds; Kubernetes removes an
endpoint once its readiness probe fails) keeps sending it new requests, which are then refused:
the gateway's retry covers idempotent ones, a POST becomes a 502. With the drain, readiness
fails first, the balancer's next check takes the replica out, and only then does the process
stop accepting connections and finish the requests it holds: a rolling restart drops nothing.

Set `<PREFIX>_SHUTDOWN_DRAIN_SECONDS` (`AUTH_`, `TASKS_`) above the balancer's check interval
plus its timeout; 0 (the default) stops at once, as before. Only SIGTERM drains (what
orchestrators and the dev launcher send); SIGINT (Ctrl-C) stops at once, and a second SIGTERM
during the drain ends it early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI

from taskgate_common.settings import ShutdownSettings

logger = logging.getLogger("taskgate.shutdown")

SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class ShutdownDrain:
    """The drain of one process: `draining` turns true at SIGTERM; the signal is handed on
    to the server's own handler (uvicorn's) once `drain_seconds` have passed."""

    def __init__(
        self,
        drain_seconds: float,
        wait: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.drain_seconds = drain_seconds
        self.draining = False
        self.wait = wait  # replaceable in tests
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: SignalHandler = None
        self._task: asyncio.Task[None] | None = None
        self._installed = False

    def is_draining(self) -> bool:
        return self.draining

    def install(self) -> bool:
        """Take over SIGTERM (in the lifespan: the server has installed its own handler by
        then). Nothing happens with a drain of 0 or outside the main thread (where no signal
        can be handled), so test apps and single-replica setups are untouched."""
        if self.drain_seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._installed = True
        return True

    async def uninstall(self) -> None:
        """Give SIGTERM back to the handler found at `install`; a drain still running (the
        server stopped for another reason, e.g. SIGINT) is dropped."""
        if self._installed and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)
        self._installed = False
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # A Python signal handler runs between two bytecodes of the main thread, possibly in
        # the middle of the event loop's own work: only a flag and a thread-safe hand-over here.
        if self.draining or self._loop is None:
            self._hand_on(signum, frame)  # a second SIGTERM: stop now
            return
        self.draining = True
        self._loop.call_soon_threadsafe(self._start_drain, signum)

    def _start_drain(self, signum: int) -> None:
        logger.warning(
            "SIGTERM: readiness now fails; stopping after the drain",
            extra={"drain_seconds": self.drain_seconds},
        )
        self._task = asyncio.get_running_loop().create_task(self._drain(signum))

    async def _drain(self, signum: int) -> None:
        await self.wait(self.drain_seconds)
        logger.warning("drain over: shutting down (in-flight requests are finished)")
        self._hand_on(signum, None)

    def _hand_on(self, signum: int, frame: FrameType | None) -> None:
        hand_on(self._previous, signum, frame)


def hand_on(previous: SignalHandler, signum: int, frame: FrameType | None) -> None:
    """What a signal would have done without a handler chained in front: the previous handler
    (the server's), else the default action (the process ends), unless it was ignored."""
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def install_graceful_shutdown(app: FastAPI, service: str) -> ShutdownDrain:
    """The drain of `service`'s app, with its time from `<SERVICE>_SHUTDOWN_DRAIN_SECONDS`,
    active while the app's lifespan runs; `app.state.shutdown_drain` holds it."""
    settings = ShutdownSettings(_env_prefix=f"{service.upper()}_")
    drain = ShutdownDrain(settings.shutdown_drain_seconds)
    app.state.shutdown_drain = drain
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with inner(application) as state:
            drain.install()
            try:
                yield state
            finally:
                await drain.uninstall()

    app.router.lifespan_context = lifespan
    return drain
