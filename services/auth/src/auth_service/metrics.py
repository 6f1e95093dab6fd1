"""The auth service's own Prometheus counters (HTTP metrics come from the instrumentator)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REFRESH_RESULTS = ("success", "invalid", "expired", "revoked", "reused", "user_inactive")
REVOCATION_REASONS = (
    "logout",
    "logout_all",
    "password_change",
    "deactivated",
    "reuse",
)


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
            "Refresh-token exchanges by result",
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
        for result in REFRESH_RESULTS:
            self.refreshes.labels(result=result)
        for reason in REVOCATION_REASONS:
            self.sessions_revoked.labels(reason=reason)
        for result in ("success", "invalid_credentials", "user_inactive"):
            self.logins.labels(result=result)
        for kind in ("access", "refresh"):
            self.tokens_issued.labels(type=kind)
