"""Auth settings, read from `AUTH_*` environment variables (see docs/configuration.md)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from taskgate_common.settings import CommaList, ServiceSettings

SERVICE_AUDIENCE = "auth-api"


class Settings(ServiceSettings):
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
    signing_key_file: Path = Path(".data/keys/signing-key.pem")
    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(7 * 86_400, ge=300, le=90 * 86_400)
    jwks_max_age_seconds: int = Field(300, ge=0, le=86_400)
    token_leeway_seconds: int = Field(30, ge=0, le=300)
    password_hash_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="Password hashes computed at once (each Argon2id hash holds 64 MiB)",
    )
    docs_enabled: bool = True

    @field_validator("issuer")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @cached_property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"
