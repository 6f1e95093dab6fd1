"""Auth settings, read from `AUTH_*` environment variables (see docs/configuration.md)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from auth_service.core.client_ip import parse_networks
from taskgate_common.rate_limits import check_limit
from taskgate_common.settings import CommaList, RateLimitSettings, ServiceSettings

SERVICE_AUDIENCE = "auth-api"


class Settings(RateLimitSettings, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=None, extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/taskgate_auth"
    issuer: str = Field(
        "http://localhost:8080/auth",
        description="Public issuer URL; the `iss` claim and the base of discovery URLs",
    )
    token_audience: CommaList = Field(
        default_factory=lambda: ["tasks-api", SERVICE_AUDIENCE],
        description="The `aud` claim of access tokens",
    )
    signing_key_file: Path = Field(
        Path(".data/keys/signing-key.pem"),
        description="The one signing key, used when neither keys dir nor key files are set",
    )
    signing_keys_dir: Path | None = Field(
        None, description="Directory whose *.pem files are all published; one of them signs"
    )
    signing_key_files: CommaList = Field(
        default_factory=list, description="PEM files, all published; one of them signs"
    )
    active_key_id: str | None = Field(
        None,
        description="The signing key among several: its kid, file name or file stem",
    )
    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(7 * 86_400, ge=300, le=90 * 86_400)
    session_max_age_seconds: int = Field(
        30 * 86_400,
        ge=300,
        le=365 * 86_400,
        description="Absolute lifetime of a login; rotation never extends a family past it",
    )
    refresh_reuse_grace_seconds: int = Field(
        30,
        ge=0,
        le=300,
        description="How long a just-rotated refresh token still answers with its successor "
        "(concurrent tabs); 0 turns the grace window off",
    )
    cookie_secure: bool = Field(
        True, description="Mark the refresh cookie Secure; false only for plain-HTTP dev setups"
    )
    refresh_cookie_name: str = Field(
        "taskgate_refresh", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Refresh cookie name"
    )
    bootstrap_admin_email: str | None = None
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    bootstrap_admin_password_file: Path | None = None
    jwks_max_age_seconds: int = Field(300, ge=0, le=86_400)
    token_leeway_seconds: int = Field(30, ge=0, le=300)
    password_hash_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="Password hashes computed at once (each Argon2id hash holds 64 MiB)",
    )
    # Argon2id cost. One lane (parallelism 1): a hash then uses one core, so N cores verify N
    # passwords at once and login capacity is exactly cores / hash time. Older hashes with
    # other parameters still verify and are re-hashed with these on the next login.
    argon2_time_cost: int = Field(2, ge=1, le=10)
    argon2_memory_kib: int = Field(65_536, ge=8_192, le=1_048_576)
    argon2_parallelism: int = Field(1, ge=1, le=16)
    docs_enabled: bool = True

    # Email: forgotten passwords and address verification (docs/email.md).
    frontend_url: str = Field(
        "http://localhost:8080",
        description="Base of the links in mails: {frontend_url}/reset-password?token=...",
    )
    require_verified_email: bool = Field(
        False, description="Refuse login (403 email_not_verified) until the email is verified"
    )
    reset_token_ttl_seconds: int = Field(1800, ge=60, le=86_400)
    verify_email_token_ttl_seconds: int = Field(86_400, ge=300, le=30 * 86_400)
    smtp_host: str | None = Field(None, description="SMTP server; unset means no mail is sent")
    smtp_port: int = Field(587, ge=1, le=65_535)
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (submission, 587), tls (implicit, 465) or none"
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    smtp_from: str = Field("taskgate <no-reply@localhost>", description="The From header")
    smtp_timeout_seconds: float = Field(10.0, gt=0, le=120)
    smtp_validate_certs: bool = True
    smtp_max_concurrent: int = Field(4, ge=1, le=64, description="SMTP connections at once")
    mail_queue_limit: int = Field(
        1000, ge=1, le=100_000, description="Mails waiting to be sent; more are dropped"
    )
    mail_shutdown_timeout_seconds: float = Field(
        8.0, ge=0, le=120, description="How long shutdown waits for mails still being sent"
    )

    # Abuse protection (docs/security.md). Limits use the `limits` notation: "10/minute",
    # "5/minute;100/hour". Login, /token and every other password check share their buckets.
    rate_limit_fail_closed: bool = Field(
        True, description="Refuse credential requests (503) while the rate-limit store is down"
    )
    rate_limit_login_per_ip: str = "10/minute"
    rate_limit_login_per_account: str = "5/minute"
    rate_limit_register_per_ip: str = "5/minute"
    rate_limit_refresh_per_ip: str = "60/minute"
    rate_limit_refresh_per_family: str = "30/minute"
    rate_limit_forgot_password_per_ip: str = "20/hour"
    rate_limit_forgot_password_per_account: str = "3/hour"
    rate_limit_account_mail_per_ip: str = "20/hour"
    rate_limit_account_mail_per_account: str = "5/hour"
    rate_limit_profile_per_ip: str = "30/minute"
    rate_limit_profile_per_account: str = "10/minute"
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="CIDRs whose X-Forwarded-For is believed (the gateway); empty: nobody",
    )
    lockout_threshold: int = Field(
        10, ge=0, le=1000, description="Failed logins in a row that lock a login name; 0: never"
    )
    lockout_window_seconds: int = Field(
        900, ge=1, description="Failures count towards a lockout for this long"
    )
    lockout_base_delay_seconds: int = Field(60, ge=1, description="The first lockout's length")
    lockout_max_delay_seconds: int = Field(3600, ge=1, description="Cap of the doubling delay")
    lockout_memory_seconds: int = Field(
        86_400, ge=1, description="How long past lockouts keep doubling the next one"
    )

    @field_validator(
        "rate_limit_login_per_ip",
        "rate_limit_login_per_account",
        "rate_limit_register_per_ip",
        "rate_limit_refresh_per_ip",
        "rate_limit_refresh_per_family",
        "rate_limit_forgot_password_per_ip",
        "rate_limit_forgot_password_per_account",
        "rate_limit_account_mail_per_ip",
        "rate_limit_account_mail_per_account",
        "rate_limit_profile_per_ip",
        "rate_limit_profile_per_account",
    )
    @classmethod
    def _limit(cls, value: str) -> str:
        return check_limit(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("issuer", "frontend_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("smtp_host", "smtp_username", "smtp_password_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Compose passes `${SMTP_HOST:-}` as an empty string: that means "not set"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_password", mode="before")
    @classmethod
    def _empty_password_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def mail_enabled(self) -> bool:
        return self.smtp_host is not None

    @cached_property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"
