"""Settings every service has; each service subclasses this with its own env prefix."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode


def _split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list, so lists are easy to set in a shell or .env."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


class ServiceSettings(BaseSettings):
    database_url: str = Field(
        description="SQLAlchemy URL of the service's own PostgreSQL (postgresql+asyncpg://...)",
    )
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(5.0, gt=0)
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_ms: int = Field(15_000, ge=0)
    log_level: str = "INFO"
    cors_origins: CommaList = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS"
    )
