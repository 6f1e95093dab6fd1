"""Alembic environment of the auth service (see taskgate_common.migrations)."""

from __future__ import annotations

from auth_service.core.config import Settings
from auth_service.models import Base
from taskgate_common.migrations import run_migrations

run_migrations(Base.metadata, lambda: Settings().database_url)
