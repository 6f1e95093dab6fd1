"""Auth's revocations, followed in the background so a revoked login stops working here within
seconds, with no call to auth on the request path.

A background task polls auth's feed (`GET {TASKS_AUTH_REVOCATIONS_URL}?after=<cursor>`, every
`TASKS_REVOCATION_POLL_SECONDS`) and keeps, in memory:

- revoked sessions: `sid` → when to forget it;
- per user, the lowest token version still valid (`ver` below it is revoked): a `user` entry
  with `token_version` V says tokens with `ver < V` are dead (a password change, logout-all,
  role change…); when it also says `is_active: false` (deactivated or deleted), tokens with
  `ver <= V` are dead too, i.e. the minimum becomes V + 1. Reactivation moves `token_version` on
  (services/user_admin.py), so tokens issued after it carry a higher `ver` and pass.

The request path only looks these up in two dicts (`is_revoked`). Entries are forgotten
`retention_seconds` (from the feed: auth's access-token lifetime plus a margin that covers any
verifier's leeway) after they arrived: by then every token they could refuse has expired.

While auth is unreachable the last state is kept and tokens keep being served; failures back
off up to `TASKS_REVOCATION_RETRY_MAX_SECONDS` and show in `/health` and the metrics. Before the
first complete read of the feed the service cannot tell a revoked token from a good one:
readiness fails and a request waits up to `TASKS_REVOCATION_STARTUP_WAIT_SECONDS` for it, then
gets 503 (as before the first JWKS), never a silent pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import describe_fetch_error
from tasks_service.metrics import TasksMetrics

logger = logging.getLogger("tasks.revocations")

PAGE_LIMIT = 1000
# A round reads pages until the feed says there is no more; this bounds a misbehaving feed.
MAX_PAGES_PER_ROUND = 10_000
PRUNE_EVERY_SECONDS = 30.0
_CURSOR = re.compile(r"^\d{1,20}-\d{1,19}$")


class FeedError(Exception):
    """A feed answer that cannot be used."""


class RevocationsNotLoaded(RuntimeError):
    """The feed was never read to its end (what readiness reports)."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    kind: str  # "session" | "user"
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    token_version: int | None
    is_active: bool | None


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[FeedEntry]
    next: str
    more: bool
    retention_seconds: int


def _uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str):
        raise FeedError("an id is not a string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FeedError("an id is not a UUID") from None


def _entry(raw: object) -> FeedEntry | None:
    """One entry; None for a kind this version does not know (skipped, with a warning)."""
    if not isinstance(raw, dict):
        raise FeedError("an entry is not an object")
    kind = raw.get("kind")
    if kind == "session":
        user, session = _uuid(raw.get("user_id")), _uuid(raw.get("session_id"))
        return FeedEntry("session", user, session, None, None)
    if kind == "user":
        version = raw.get("token_version")
        active = raw.get("is_active")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise FeedError("a user entry has no usable token_version")
        if not isinstance(active, bool):
            raise FeedError("a user entry has no usable is_active")
        return FeedEntry("user", _uuid(raw.get("user_id")), None, version, active)
    logger.warning("skipping a revocation entry of unknown kind", extra={"kind": str(kind)[:32]})
    return None


def parse_page(document: Any) -> FeedPage:
    """A feed answer, checked strictly: a page that does not parse changes nothing."""
    if not isinstance(document, dict):
        raise FeedError("the answer is not an object")
    raw_entries = document.get("entries")
    cursor = document.get("next")
    more = document.get("more")
    retention = document.get("retention_seconds")
    if not isinstance(raw_entries, list):
        raise FeedError("the answer has no `entries` list")
    if not isinstance(cursor, str) or not _CURSOR.match(cursor):
        raise FeedError("the answer has no usable `next` cursor")
    if not isinstance(more, bool):
        raise FeedError("the answer has no `more` flag")
    if not isinstance(retention, int) or isinstance(retention, bool) or retention <= 0:
        raise FeedError("the answer has no usable `retention_seconds`")
    entries = [entry for raw in raw_entries if (entry := _entry(raw)) is not None]
    return FeedPage(entries, cursor, more, retention)


class CursorUnknown(Exception):
    """The feed does not know our cursor (410: its database was replaced); read it again."""


class RevocationFollower:
    """The revocation state, and the background task (`start()`) that keeps it current."""

    def __init__(
        self,
        settings: Settings,
        metrics: TasksMetrics,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._wall_clock = wall_clock
        self.enabled = settings.revocations_enabled
        self._url = settings.revocations_url
        self._cursor: str | None = None
        # sid → monotonic time after which it is forgotten.
        self._sessions: dict[uuid.UUID, float] = {}
        # user → (lowest valid token version, monotonic time after which it is forgotten).
        self._users: dict[uuid.UUID, tuple[int, float]] = {}
        self._loaded = not self.enabled
        self._loaded_event = asyncio.Event()
        if self._loaded:
            self._loaded_event.set()
        self._wake = asyncio.Event()
        self._last_success: float | None = None
        self._last_prune = clock()
        self._failures = 0
        self._last_error: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._polling = asyncio.Lock()
        # Told which users have new revocations, so that their open event streams end now
        # rather than at their next heartbeat (main.py wires the change listener in).
        self.on_revoked: Callable[[set[uuid.UUID]], None] | None = None

    # The request path: dict look-ups only.

    @property
    def loaded(self) -> bool:
        """True once the feed was read to its end (or following is switched off)."""
        return self._loaded

    def is_revoked(self, user_id: uuid.UUID, session_id: uuid.UUID, token_version: int) -> bool:
        if session_id in self._sessions:
            return True
        rule = self._users.get(user_id)
        return rule is not None and token_version < rule[0]

    async def wait_loaded(self, timeout: float) -> bool:
        """Before the first load: ask for a poll now and wait up to `timeout` for it."""
        if self._loaded:
            return True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._loaded_event.wait()
        return self._loaded

    # Lifecycle.

    async def start(self) -> None:
        """Begin following in the background; returns at once, whether or not auth answers."""
        if not self.enabled:
            logger.warning(
                "TASKS_REVOCATIONS_ENABLED is false: revoked tokens work here until they expire"
            )
            return
        if self._client is None:
            headers = {"Accept": "application/json", "User-Agent": "taskgate-tasks"}
            token = self._settings.auth_revocations_token
            if token is not None:
                headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            self._client = httpx.AsyncClient(
                timeout=self._settings.revocation_fetch_timeout_seconds, headers=headers
            )
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="revocations-follow")

    async def stop(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._runner = None
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def state(self) -> dict[str, Any]:
        """What /health reports."""
        now = self._clock()
        return {
            "enabled": self.enabled,
            "loaded": self._loaded,
            "sessions": len(self._sessions),
            "users": len(self._users),
            "age_seconds": (
                round(now - self._last_success, 1) if self._last_success is not None else None
            ),
            "consecutive_failures": self._failures,
            "last_error": self._last_error,
        }

    # The background work.

    async def _run(self) -> None:
        poll = self._settings.revocation_poll_seconds
        while True:
            try:
                ok = await self.poll()
            except Exception:  # the loop must outlive any surprise
                logger.exception("revocation poll crashed")
                ok = False
            delay = poll if ok else self._backoff()
            # At least one poll interval between attempts, however often requests ask.
            await asyncio.sleep(min(poll, delay))
            if delay > poll:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay - poll):
                        await self._wake.wait()
            self._wake.clear()

    def _backoff(self) -> float:
        exponent = min(max(self._failures - 1, 0), 16)
        return min(float(2**exponent), self._settings.revocation_retry_max_seconds)

    async def poll(self) -> bool:
        """Read the feed from the cursor to its end; True when it got there."""
        async with self._polling:
            try:
                await self._read_to_end()
            except CursorUnknown:
                logger.warning("the revocation feed does not know our cursor; reading it again")
                self._cursor = None
                return await self._read_again()
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, FeedError) as exc:
                self._record_failure(exc)
                return False
            self._record_success()
            return True

    async def _read_again(self) -> bool:
        """After a 410: the whole feed once more, from its start (the state is kept)."""
        try:
            await self._read_to_end()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, FeedError, CursorUnknown) as exc:
            self._record_failure(exc)
            return False
        self._record_success()
        return True

    async def _read_to_end(self) -> None:
        for _ in range(MAX_PAGES_PER_ROUND):
            page = await self._fetch(self._cursor)
            self._apply(page)
            if page.more and page.next == self._cursor:
                raise FeedError("the feed says there is more but its cursor did not move")
            self._cursor = page.next
            if not page.more:
                return
        raise FeedError("the feed did not end within the page bound")

    async def _fetch(self, cursor: str | None) -> FeedPage:
        if self._client is None:
            raise RuntimeError("RevocationFollower.start() was not called")
        params: dict[str, str | int] = {"limit": PAGE_LIMIT}
        if cursor is not None:
            params["after"] = cursor
        response = await self._client.get(self._url, params=params)
        if response.status_code == 410:
            raise CursorUnknown
        response.raise_for_status()
        return parse_page(response.json())

    def _apply(self, page: FeedPage) -> None:
        forget_at = self._clock() + page.retention_seconds
        for entry in page.entries:
            if entry.kind == "session":
                assert entry.session_id is not None
                self._sessions[entry.session_id] = max(
                    forget_at, self._sessions.get(entry.session_id, 0.0)
                )
            else:
                assert entry.token_version is not None
                lowest = entry.token_version + (0 if entry.is_active else 1)
                known = self._users.get(entry.user_id)
                if known is not None:
                    lowest, forget_at_user = max(lowest, known[0]), max(forget_at, known[1])
                else:
                    forget_at_user = forget_at
                self._users[entry.user_id] = (lowest, forget_at_user)
            self._metrics.revocation_entries.labels(kind=entry.kind).inc()
        if self.on_revoked is not None and page.entries:
            self.on_revoked({entry.user_id for entry in page.entries})

    def _prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        self._sessions = {sid: until for sid, until in self._sessions.items() if until > now}
        self._users = {user: rule for user, rule in self._users.items() if rule[1] > now}

    def _record_success(self) -> None:
        self._prune()
        self._last_success = self._clock()
        if self._failures:
            logger.info("revocation feed reachable again", extra={"after_failures": self._failures})
        self._failures = 0
        self._last_error = None
        self._metrics.revocation_polls.labels(result="success").inc()
        self._metrics.revocations_last_success.set(self._wall_clock())
        self._metrics.revocations_tracked.labels(kind="session").set(len(self._sessions))
        self._metrics.revocations_tracked.labels(kind="user").set(len(self._users))
        if not self._loaded:
            self._loaded = True
            self._loaded_event.set()
            logger.info(
                "revocation feed loaded",
                extra={"sessions": len(self._sessions), "users": len(self._users)},
            )

    def _record_failure(self, exc: Exception) -> None:
        self._failures += 1
        self._last_error = describe_fetch_error(exc)
        self._metrics.revocation_polls.labels(result="failure").inc()
        # Every failure while never loaded; then the first and every 60th, not once a second.
        if not self._loaded or self._failures == 1 or self._failures % 60 == 0:
            logger.warning(
                "revocation feed poll failed; keeping the last state",
                extra={
                    "error": self._last_error,
                    "consecutive_failures": self._failures,
                    "sessions": len(self._sessions),
                    "users": len(self._users),
                },
            )
