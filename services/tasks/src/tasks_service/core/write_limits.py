"""The per-user limit on task writes (docs/security.md).

Reads are never limited here (the gateway's per-IP limit covers them); every other method
counts against the verified caller's own bucket, so one account cannot flood the database
whatever addresses it comes from. A failed store lets writes through by default.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request

from taskgate_common.rate_limits import AppRateLimiter, Limit
from tasks_service.core.config import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteLimits:
    def __init__(self, settings: Settings, limiter: AppRateLimiter) -> None:
        self.limiter = limiter
        self.fail_closed = settings.rate_limit_fail_closed
        self.per_user = Limit.parse("task_writes_user", settings.rate_limit_writes_per_user)

    async def hit(self, request: Request, user_id: uuid.UUID) -> None:
        if request.method in READ_METHODS:
            return
        await self.limiter.hit(request, (self.per_user, str(user_id)), fail_closed=self.fail_closed)
