"""The auth service's own Prometheus counters (HTTP metrics come from the instrumentator)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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
        for result in ("success", "invalid_credentials", "user_inactive"):
            self.logins.labels(result=result)
        for kind in ("access", "refresh"):
            self.tokens_issued.labels(type=kind)
