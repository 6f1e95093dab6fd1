"""The auth service's own Prometheus counters (the HTTP series: `common.metrics.HttpMetrics`)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.core.config import Settings
from auth_service.core.signing_keys import KeyRing, SigningKeyError, configured_key_files
from auth_service.migrate import MIGRATIONS
from taskgate_common.metrics import DatabaseMetrics


class BuiltParts(Protocol):
    """What `bind` reads of the app's context (`AuthContext` has it): named here rather than
    imported, since the context holds these metrics."""

    settings: Settings
    engine: AsyncEngine
    keys: KeyRing


# `success`: a rotation (a new successor minted); `grace_replay`: a just-rotated token presented
# again within AUTH_REFRESH_REUSE_GRACE_SECONDS, answered with the same successor; `reused`: a
# spent token outside that window, which revokes its family.
REFRESH_RESULTS = (
    "success",
    "grace_replay",
    "invalid",
    "expired",
    "revoked",
    "reused",
    "user_inactive",
)
REVOCATION_REASONS = (
    "logout",
    "logout_all",
    "password_change",
    "deactivated",
    "reuse",
    "password_reset",
    "device_revoked",  # the user ended one of his logins from the devices list
    "admin_revoked",  # an admin ended one login of a user
)
MAIL_KINDS = (
    "password_reset",
    "email_verification",
    "email_change",
    "email_change_notice",
    "email_change_taken",
)
MAIL_RESULTS = ("sent", "failed", "dropped")


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.database: DatabaseMetrics | None = None
        self.registrations = Counter(
            "auth_registrations_total", "Accounts registered", registry=registry
        )
        self.logins = Counter(
            "auth_logins_total",
            "Login attempts by result",
            ["result"],
            registry=registry,
        )
        self.tokens_issued = Counter(
            "auth_tokens_issued_total",
            "Tokens issued by type (access, refresh)",
            ["type"],
            registry=registry,
        )
        self.token_rejections = Counter(
            "auth_token_rejections_total",
            "Access tokens refused by this service, by reason",
            ["reason"],
            registry=registry,
        )
        self.refreshes = Counter(
            "auth_refreshes_total",
            "Refresh-token exchanges by result (success = rotated, grace_replay = answered "
            "with the successor of a just-rotated token)",
            ["result"],
            registry=registry,
        )
        self.refresh_reuse_detected = Counter(
            "auth_refresh_reuse_detected_total",
            "Spent refresh tokens presented again (each revokes its family)",
            registry=registry,
        )
        self.sessions_revoked = Counter(
            "auth_sessions_revoked_total",
            "Login sessions (refresh-token families) revoked, by reason",
            ["reason"],
            registry=registry,
        )
        self.emails = Counter(
            "auth_emails_total",
            "Mails by kind and result (sent to the relay, failed, dropped: queue full)",
            ["kind", "result"],
            registry=registry,
        )
        self.password_resets = Counter(
            "auth_password_resets_total",
            "Password resets with a mailed token, by result (success, invalid_token)",
            ["result"],
            registry=registry,
        )
        self.password_checks = Counter(
            "auth_password_checks_total",
            "Current-password checks of signed-in users (change-password, email change), "
            "by result (success, invalid_credentials)",
            ["result"],
            registry=registry,
        )
        self.email_changes = Counter(
            "auth_email_changes_total",
            "Email changes by step and result (requested, confirmed, invalid_token, taken)",
            ["result"],
            registry=registry,
        )
        self.email_verifications = Counter(
            "auth_email_verifications_total",
            "Email verifications with a mailed token, by result (success, invalid_token)",
            ["result"],
            registry=registry,
        )
        for kind in MAIL_KINDS:
            for mail_result in MAIL_RESULTS:
                self.emails.labels(kind=kind, result=mail_result)
        for counter in (self.password_resets, self.email_verifications):
            for outcome in ("success", "invalid_token"):
                counter.labels(result=outcome)
        for result in REFRESH_RESULTS:
            self.refreshes.labels(result=result)
        for reason in REVOCATION_REASONS:
            self.sessions_revoked.labels(reason=reason)
        for result in ("success", "invalid_credentials", "user_inactive", "email_not_verified"):
            self.logins.labels(result=result)
        for kind in ("access", "refresh"):
            self.tokens_issued.labels(type=kind)
        # The revocation feed (GET /revocations at the root; services/revocation_feed.py).
        self.revocation_feed_requests = Counter(
            "auth_revocation_feed_requests_total",
            "Reads of the revocation feed, by result (ok, unauthorized, cursor_unknown)",
            ["result"],
            registry=registry,
        )
        self.revocation_feed_entries = Counter(
            "auth_revocation_feed_entries_total",
            "Revocation feed entries handed out (each follower reads each entry once)",
            registry=registry,
        )
        self.revocations_purged = Counter(
            "auth_revocations_purged_total",
            "Revocation feed entries deleted after the retention (no live token left to refuse)",
            registry=registry,
        )
        for feed_result in ("ok", "unauthorized", "cursor_unknown"):
            self.revocation_feed_requests.labels(result=feed_result)

    def bind(self, ctx: BuiltParts) -> None:
        """The series that need the built context: the database's (pool, pending migrations)
        and the signing keys' age. Called once by `install_metrics`."""
        settings = ctx.settings
        self.database = DatabaseMetrics(
            self.registry,
            ctx.engine,
            settings.db_pool_size + settings.db_max_overflow,
            MIGRATIONS,
        )
        signing_keys = Gauge(
            "auth_signing_key_timestamp_seconds",
            "When each published signing key's file was last written (Unix time), by kid; "
            'active="true" marks the key that signs. Its age tells when to rotate',
            ["kid", "active"],
            registry=self.registry,
        )
        try:
            written = {
                entry.key.kid: entry.path.stat().st_mtime
                for entry in configured_key_files(settings)
            }
        except (SigningKeyError, OSError):
            written = {}  # keys handed over in memory (tests): no file, no age
        for key in ctx.keys.published:
            if key.kid in written:
                active = "true" if key.kid == ctx.keys.active.kid else "false"
                signing_keys.labels(kid=key.kid, active=active).set(written[key.kid])

    async def watch(self) -> None:
        if self.database is not None:
            await self.database.watch_migrations()
