"""Settings every service has; each service subclasses this with its own env prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from taskgate_common.rate_limits import check_storage_url


def _split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list, so lists are easy to set in a shell or .env."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def read_secret_file(path: Path, variable: str, error: type[Exception] = ValueError) -> str:
    """A mounted secret (`*_FILE` settings) without its trailing newline.

    An unreadable file raises `error` naming the variable and the path, never the content.
    """
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise error(f"cannot read {variable} {path}: {exc.strerror}") from None


class ServiceSettings(BaseSettings):
    database_url: str = Field(
        description="SQLAlchemy URL of the service's own PostgreSQL (postgresql+asyncpg://...)",
    )
    # A password in the URL shows in `docker inspect` and /proc/*/environ: Compose mounts it as
    # a file instead, and the URL names no password (compose.yaml).
    database_password_file: Path | None = Field(
        None, description="File holding the database password; it replaces the URL's password"
    )
    # A fixed pool: overflow connections are opened and closed per burst (a new PostgreSQL
    # backend each), which under steady load above the pool size means one per request.
    db_pool_size: int = Field(20, ge=1, le=200)
    db_max_overflow: int = Field(0, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(5.0, gt=0)
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_ms: int = Field(15_000, ge=0)
    # The planner's cost of a random page read: PostgreSQL's 4.0 models spinning disks, and
    # with it the planner sorted whole columns rather than walk an index to the first cards
    # (tests/test_query_plans.py). 1.1 is the usual value for SSD and cached data.
    db_random_page_cost: float = Field(1.1, gt=0, le=100)
    # PostgreSQL may plan a prepared statement (asyncpg prepares them all) once for any
    # parameters after five runs; without the LIMIT and keyset values, such a plan read and
    # sorted a whole column for one page (64 ms at 100,000 tasks in `make bench-scale`).
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = (
        "force_custom_plan"
    )
    log_level: str = "INFO"
    cors_origins: CommaList = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS"
    )
    # Checked by the service itself too, not only the gateway: a service port may be exposed.
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; above it: 413"
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest total of request headers accepted; above it: 431"
    )

    @model_validator(mode="after")
    def _password_from_file(self) -> Self:
        """The URL without a password plus the mounted file: the password is in no variable."""
        if self.database_password_file is not None:
            password = read_secret_file(self.database_password_file, "DATABASE_PASSWORD_FILE")
            url = make_url(self.database_url).set(password=password)
            self.database_url = url.render_as_string(hide_password=False)
        return self


class RateLimitSettings(BaseSettings):
    """What both services' application rate limits share (docs/security.md)."""

    rate_limit_enabled: bool = Field(True, description="Master switch of the app rate limits")
    rate_limit_storage_url: str = Field(
        "memory://",
        description="memory:// (per process) or redis://host:6379/0 (shared by replicas)",
    )
    rate_limit_storage_timeout_seconds: float = Field(
        0.25, gt=0, le=10, description="Bound on each call to the store; then fail open/closed"
    )
    rate_limit_strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = (
        "moving-window"
    )

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        return check_storage_url(value.strip())


class ShutdownSettings(BaseSettings):
    """The drain before a graceful shutdown (graceful_shutdown.py), read with the service's
    prefix: `AUTH_SHUTDOWN_DRAIN_SECONDS`, `TASKS_SHUTDOWN_DRAIN_SECONDS`."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    shutdown_drain_seconds: float = Field(
        0.0,
        ge=0,
        le=300,
        description="After SIGTERM, readiness fails and requests are still served this long "
        "before the server stops accepting; set it above the balancer's health-check interval "
        "plus timeout when several replicas sit behind one. 0: stop at once",
    )
