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
    "password_reset",
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
