"""Tasks settings, read from `TASKS_*` environment variables (see docs/configuration.md)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from taskgate_common.rate_limits import check_limit
from taskgate_common.settings import RateLimitSettings, ServiceSettings, read_secret_file

SERVICE_AUDIENCE = "tasks-api"
MIN_CURSOR_SECRET_LENGTH = 32


def _random_cursor_secret() -> SecretStr:
    """Unset: a key of this process alone; its cursors are refused by any other process."""
    return SecretStr(secrets.token_urlsafe(32))


def _check_cursor_secret(value: SecretStr, source: str) -> SecretStr:
    """A short key would let cursors be forged by guessing it."""
    if len(value.get_secret_value()) < MIN_CURSOR_SECRET_LENGTH:
        raise ValueError(f"{source} must be at least {MIN_CURSOR_SECRET_LENGTH} characters")
    return value


class Settings(RateLimitSettings, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TASKS_", env_file=None, extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/taskgate_tasks"
    auth_issuer: str = Field(
        "http://localhost:8080/auth",
        description="The `iss` every access token must carry; the base of JWKS discovery",
    )
    auth_jwks_url: HttpUrl | None = Field(
        None,
        description="Where to fetch the JWKS; empty means discover it from the issuer's "
        "openid-configuration",
    )
    token_audience: str = Field(SERVICE_AUDIENCE, description="Required member of `aud`")
    token_leeway_seconds: int = Field(30, ge=0, le=300)
    token_cache_size: int = Field(10_000, ge=0, le=1_000_000)
    jwks_default_ttl_seconds: float = Field(300, gt=0)
    jwks_min_ttl_seconds: float = Field(60, gt=0)
    jwks_max_ttl_seconds: float = Field(3600, gt=0)
    jwks_unknown_kid_cooldown_seconds: float = Field(30, ge=0)
    jwks_fetch_timeout_seconds: float = Field(5, gt=0, le=60)
    jwks_retry_max_seconds: float = Field(60, gt=0)
    # Following auth's revocation feed (core/revocations.py, docs/sessions.md).
    revocations_enabled: bool = Field(
        True,
        description="Follow auth's revocation feed; false: revoked tokens work until they "
        "expire (only for setups that cannot reach auth's root)",
    )
    auth_revocations_url: HttpUrl | None = Field(
        None,
        description="Auth's revocation feed (at its root, not routed by the gateway); empty: "
        "`/revocations` at the origin of TASKS_AUTH_JWKS_URL, else of TASKS_AUTH_ISSUER",
    )
    auth_revocations_token: SecretStr | None = Field(
        None, description="Bearer secret the feed asks for (AUTH_REVOCATIONS_TOKEN); unset: none"
    )
    auth_revocations_token_file: Path | None = Field(
        None, description="File holding that secret (a mounted secret); wins over the variable"
    )
    revocation_poll_seconds: float = Field(
        1.0, ge=0.05, le=60, description="Pause between two polls of the feed"
    )
    revocation_fetch_timeout_seconds: float = Field(5, gt=0, le=60)
    revocation_retry_max_seconds: float = Field(
        5, gt=0, le=300, description="Longest pause between polls while auth is unreachable"
    )
    revocation_startup_wait_seconds: float = Field(
        3,
        ge=0,
        le=60,
        description="How long a request waits for the first load of the feed before a 503",
    )
    docs_enabled: bool = True
    # Signs list cursors (core/cursor.py). Replicas behind one gateway need the same one: a
    # cursor from another key is refused (422 `invalid_cursor`; the client restarts the list).
    cursor_secret: SecretStr = Field(
        default_factory=_random_cursor_secret,
        description="Key signing list cursors (at least 32 characters); unset: random per process",
    )
    cursor_secret_file: Path | None = Field(
        None, description="File holding the cursor key (a mounted secret); wins over the variable"
    )
    # Live updates (docs/tasks-api.md, "Staying in sync"): the change log and its streams.
    changes_retention_hours: float = Field(
        168, gt=0, description="How long change-log entries are kept (older cursors get 410)"
    )
    changes_purge_interval_seconds: float = Field(
        600, gt=0, description="How often a process purges entries past the retention"
    )
    events_heartbeat_seconds: float = Field(
        15, gt=0, le=300, description="Idle time after which a stream sends a keep-alive comment"
    )
    events_max_streams_per_user: int = Field(
        10, ge=1, le=1000, description="Event streams one user may hold open in one process"
    )
    events_max_stream_seconds: float = Field(
        1800, gt=0, description="A stream's longest life; the client then reconnects"
    )
    events_fallback_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often streams read the log while LISTEN is down"
    )
    events_ticket_ttl_seconds: float = Field(
        30, gt=0, le=300, description="Lifetime of a single-use stream ticket"
    )
    # Abuse protection (docs/security.md): writes per user, in the `limits` notation.
    rate_limit_writes_per_user: str = Field(
        "120/minute", description="Task writes (any method but GET/HEAD/OPTIONS) per user"
    )
    rate_limit_fail_closed: bool = Field(
        False, description="Refuse writes (503) while the rate-limit store is down"
    )

    @field_validator("rate_limit_writes_per_user")
    @classmethod
    def _limit(cls, value: str) -> str:
        return check_limit(value)

    @field_validator("auth_issuer")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator(
        "auth_jwks_url", "auth_revocations_url", "auth_revocations_token_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("auth_revocations_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("cursor_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        """Compose passes `${TASKS_CURSOR_SECRET:-}`: empty means "not set", so random."""
        return _random_cursor_secret() if value in ("", None) else value

    @field_validator("cursor_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        return _check_cursor_secret(value, "TASKS_CURSOR_SECRET")

    @field_validator("cursor_secret_file", mode="before")
    @classmethod
    def _empty_file_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _secret_from_file(self) -> Settings:
        """Read at startup, so an unreadable or short secret stops the service at once
        instead of every cursor failing later."""
        if self.cursor_secret_file is not None:
            text = read_secret_file(self.cursor_secret_file, "TASKS_CURSOR_SECRET_FILE")
            self.cursor_secret = _check_cursor_secret(SecretStr(text), "TASKS_CURSOR_SECRET_FILE")
        return self

    @model_validator(mode="after")
    def _revocations_token_from_file(self) -> Settings:
        if self.auth_revocations_token_file is not None:
            text = read_secret_file(
                self.auth_revocations_token_file, "TASKS_AUTH_REVOCATIONS_TOKEN_FILE"
            )
            self.auth_revocations_token = SecretStr(text)
        return self

    @model_validator(mode="after")
    def _ttl_bounds(self) -> Settings:
        if self.jwks_min_ttl_seconds > self.jwks_max_ttl_seconds:
            raise ValueError("jwks_min_ttl_seconds must not exceed jwks_max_ttl_seconds")
        return self

    @property
    def cursor_key(self) -> bytes:
        """The HMAC key of list cursors."""
        return self.cursor_secret.get_secret_value().encode()

    @property
    def discovery_url(self) -> str:
        return f"{self.auth_issuer}/.well-known/openid-configuration"

    @property
    def revocations_url(self) -> str:
        """The feed: as configured, else `/revocations` at auth's origin (the JWKS URL's, which
        points at auth itself in every shipped setup, else the issuer's)."""
        if self.auth_revocations_url is not None:
            return str(self.auth_revocations_url)
        parts = urlsplit(str(self.auth_jwks_url) if self.auth_jwks_url else self.auth_issuer)
        return f"{parts.scheme}://{parts.netloc}/revocations"
