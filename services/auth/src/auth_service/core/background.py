"""Work that runs after the response (sending mail), tracked so nothing is lost silently.

Shutdown waits for in-flight jobs (bounded), and tests wait with `drain()` instead of sleeping.
A job that fails is logged here as a last resort; jobs count their own expected failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("taskgate.auth.jobs")


class BackgroundJobs:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, job: Coroutine[Any, Any, None], name: str) -> bool:
        """Start `job`; False (and the job is dropped) when `limit` jobs are already running."""
        if len(self._tasks) >= self._limit:
            job.close()
            return False
        task = asyncio.create_task(self._run(job, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never ran `job`: close it (no-op otherwise).
        task.add_done_callback(lambda _: job.close())
        return True

    @staticmethod
    async def _run(job: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await job
        except Exception:
            logger.exception("background job failed", extra={"job": name})

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no job runs, jobs started meanwhile included; False if `timeout` ran out."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def close(self, timeout: float) -> None:
        """At shutdown: give jobs `timeout` seconds, then cancel what is left (and say so)."""
        if await self.drain(timeout):
            return
        left = list(self._tasks)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        logger.warning("background jobs cancelled at shutdown", extra={"count": len(left)})
