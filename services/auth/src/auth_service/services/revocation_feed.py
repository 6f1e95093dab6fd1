"""The revocation feed: what was revoked, for verifiers that check tokens without calling auth.

Entries are written by database triggers in the revoking transaction itself (migration 0005),
whatever code path revoked: a session (`kind = session`: logout, reuse detection, a device
ended…), or a user whose older tokens all stopped counting (`kind = user`: `token_version`
rose — logout-all, password change or reset, role change, (re)activation — or the user was
deactivated or deleted). The tasks service polls `GET /revocations` (at the service root, not
routed by the gateway) and refuses those tokens itself (docs/sessions.md).

Retention: an entry matters only while a token issued before it can still be accepted
somewhere, i.e. for the access-token lifetime plus any verifier's leeway. The feed hands out
entries younger than `retention_seconds` (`AUTH_ACCESS_TOKEN_TTL_SECONDS` +
`AUTH_REVOCATIONS_RETENTION_MARGIN_SECONDS`) and each replica deletes older ones every
`AUTH_REVOCATIONS_PURGE_INTERVAL_SECONDS` (a background task of the service; no cron needed).
A reader that was away longer than that loses nothing: what it missed has no live token left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from auth_service.context import AuthContext
from auth_service.repositories import revocations
from auth_service.repositories.revocations import Cursor, Entry, UnknownCursor
from taskgate_common.settings import read_secret_file

logger = logging.getLogger("taskgate.auth.revocations")

MAX_PAGE = 1000
PURGE_BATCH = 5000


class RevocationFeedSettings(BaseSettings):
    """`AUTH_REVOCATIONS_*`: kept apart from the service's `Settings`, read the same way."""

    model_config = SettingsConfigDict(env_prefix="AUTH_REVOCATIONS_", env_file=None, extra="ignore")

    token: SecretStr | None = Field(
        None,
        description="Bearer secret readers must send (TASKS_AUTH_REVOCATIONS_TOKEN); unset: "
        "the feed is open to whoever reaches the service's port",
    )
    token_file: Path | None = Field(
        None, description="File holding that secret (a mounted secret); wins over the variable"
    )
    retention_margin_seconds: int = Field(
        600,
        ge=300,
        le=86_400,
        description="Kept beyond the access-token lifetime: covers verifiers' leeway (≤ 300 s) "
        "and clock skew",
    )
    purge_interval_seconds: float = Field(
        300, gt=0, le=86_400, description="How often each replica deletes expired entries"
    )

    @field_validator("token", "token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _token_from_file(self) -> RevocationFeedSettings:
        if self.token_file is not None:
            self.token = SecretStr(read_secret_file(self.token_file, "AUTH_REVOCATIONS_TOKEN_FILE"))
        return self


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[Entry]
    next: Cursor
    more: bool
    retention_seconds: int


class RevocationFeed:
    """Reads pages of the feed and purges it in the background (`start()`)."""

    def __init__(self, ctx: AuthContext, settings: RevocationFeedSettings) -> None:
        self._ctx = ctx
        self.settings = settings
        self.retention_seconds = (
            ctx.settings.access_token_ttl_seconds + settings.retention_margin_seconds
        )
        self._purger: asyncio.Task[None] | None = None

    def authorized(self, authorization: str | None) -> bool:
        """Whether the request may read the feed (always, when no secret is configured)."""
        if self.settings.token is None:
            return True
        scheme, _, presented = (authorization or "").partition(" ")
        expected = self.settings.token.get_secret_value()
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        )

    async def page(self, after: Cursor, limit: int) -> FeedPage:
        """Up to `limit` entries after `after`; raises `UnknownCursor` for a foreign cursor."""
        async with self._ctx.db.connect() as db:
            entries = await revocations.page_after(
                db, after, limit=limit, retention_seconds=self.retention_seconds
            )
        last = entries[-1] if entries else None
        cursor = Cursor(last.txid, last.seq) if last is not None else after
        self._ctx.metrics.revocation_feed_entries.inc(len(entries))
        return FeedPage(entries, cursor, len(entries) == limit, self.retention_seconds)

    async def purge(self) -> int:
        """Delete every entry older than the retention, in batches; how many went."""
        total = 0
        while True:
            async with self._ctx.db.connect() as db:
                deleted = await revocations.purge_older_than(
                    db, self.retention_seconds, PURGE_BATCH
                )
            total += deleted
            if deleted < PURGE_BATCH:
                break
        self._ctx.metrics.revocations_purged.inc(total)
        return total

    async def start(self) -> None:
        if self._purger is None:
            self._purger = asyncio.create_task(self._purge_forever(), name="revocations-purge")

    async def stop(self) -> None:
        if self._purger is not None and not self._purger.done():
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        self._purger = None

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.purge_interval_seconds)
            try:
                purged = await self.purge()
            except Exception as exc:  # database down: the next round tries again
                logger.warning("revocation feed purge failed", extra={"error": type(exc).__name__})
                continue
            if purged:
                logger.info("revocation feed purged", extra={"entries": purged})


__all__ = ["FeedPage", "RevocationFeed", "RevocationFeedSettings", "UnknownCursor"]
