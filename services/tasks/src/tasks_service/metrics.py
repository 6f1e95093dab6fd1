"""The tasks service's own Prometheus series (the HTTP series: `common.metrics.HttpMetrics`)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from taskgate_common.metrics import DatabaseMetrics
from tasks_service.core.config import Settings
from tasks_service.migrate import MIGRATIONS


class BuiltParts(Protocol):
    """What `bind` reads of the app's context (`TasksContext` has it): named here rather than
    imported, since the context holds these metrics."""

    settings: Settings
    engine: AsyncEngine


REJECTION_REASONS = (
    "missing",
    "malformed",
    "bad_algorithm",
    "not_access_token",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "invalid_claims",
    "invalid",
    "revoked",
)
REVOCATION_KINDS = ("session", "user")
UPDATE_OPERATIONS = ("patch", "replace", "move", "complete")


class TasksMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.database: DatabaseMetrics | None = None
        self.jwks_refreshes = Counter(
            "tasks_jwks_refreshes_total",
            "Successful JWKS fetches, by what triggered them",
            ["trigger"],
            registry=registry,
        )
        self.jwks_fetch_failures = Counter(
            "tasks_jwks_fetch_failures_total",
            "JWKS fetches that failed (the last good key set stays in use)",
            ["trigger"],
            registry=registry,
        )
        self.jwks_keys = Gauge(
            "tasks_jwks_keys", "Verification keys currently cached", registry=registry
        )
        self.jwks_last_success = Gauge(
            "tasks_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful JWKS fetch (0: never)",
            registry=registry,
        )
        # Set to the cache's own verdict at scrape time (JwksCache): no clock comparison
        # between Prometheus and this host, and no threshold to keep in step with the TTL.
        self.jwks_stale = Gauge(
            "tasks_jwks_stale",
            "1 while the cached key set is past its max-age or was never fetched (the last "
            "keys stay in use; a key rotated in at auth is not seen)",
            registry=registry,
        )
        self.token_rejections = Counter(
            "tasks_token_rejections_total",
            "Access tokens refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.revocation_polls = Counter(
            "tasks_revocation_polls_total",
            "Polls of auth's revocation feed, by result (a failure keeps the last state)",
            ["result"],
            registry=registry,
        )
        self.revocation_entries = Counter(
            "tasks_revocation_entries_total",
            "Revocation feed entries applied, by kind (session, user)",
            ["kind"],
            registry=registry,
        )
        self.revocations_tracked = Gauge(
            "tasks_revocations_tracked",
            "Revoked sessions and users with revoked token versions currently remembered",
            ["kind"],
            registry=registry,
        )
        self.revocations_last_success = Gauge(
            "tasks_revocations_last_success_timestamp_seconds",
            "Unix time of the last poll that read the feed to its end (0: never)",
            registry=registry,
        )
        self.tasks_created = Counter(
            "tasks_tasks_created_total", "Tasks created", registry=registry
        )
        self.tasks_updated = Counter(
            "tasks_tasks_updated_total",
            "Task changes, by operation",
            ["operation"],
            registry=registry,
        )
        self.tasks_deleted = Counter(
            "tasks_tasks_deleted_total", "Tasks deleted", registry=registry
        )
        # Live updates (GET /api/events, core/change_listener.py).
        self.event_streams = Gauge(
            "tasks_event_streams", "Event streams open in this process", registry=registry
        )
        self.events_sent = Counter(
            "tasks_events_sent_total", "Change events written to streams", registry=registry
        )
        self.event_lag = Histogram(
            "tasks_event_lag_seconds",
            "From a change's commit to its event being written to a stream",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.change_notifications = Counter(
            "tasks_change_notifications_total",
            "Change notifications received from PostgreSQL (LISTEN)",
            registry=registry,
        )
        self.change_listener_up = Gauge(
            "tasks_change_listener_up",
            "1 while this process listens for change notifications; 0: streams poll the log",
            registry=registry,
        )
        self.changes_purged = Counter(
            "tasks_changes_purged_total",
            "Change-log entries removed after the retention period",
            registry=registry,
        )
        for trigger in ("scheduled", "unknown_kid"):
            self.jwks_refreshes.labels(trigger=trigger)
            self.jwks_fetch_failures.labels(trigger=trigger)
        for reason in REJECTION_REASONS:
            self.token_rejections.labels(reason=reason)
        for operation in UPDATE_OPERATIONS:
            self.tasks_updated.labels(operation=operation)
        for result in ("success", "failure"):
            self.revocation_polls.labels(result=result)
        for kind in REVOCATION_KINDS:
            self.revocation_entries.labels(kind=kind)
            self.revocations_tracked.labels(kind=kind)

    def bind(self, ctx: BuiltParts) -> None:
        """The database's series (pool, pending migrations), which need the built engine.
        Called once by `install_metrics`."""
        settings = ctx.settings
        self.database = DatabaseMetrics(
            self.registry,
            ctx.engine,
            settings.db_pool_size + settings.db_max_overflow,
            MIGRATIONS,
        )

    async def watch(self) -> None:
        if self.database is not None:
            await self.database.watch_migrations()
