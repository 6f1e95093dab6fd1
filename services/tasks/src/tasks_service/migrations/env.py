"""Alembic environment of the tasks service (see taskgate_common.migrations)."""

from __future__ import annotations

from taskgate_common.migrations import run_migrations
from tasks_service.core.config import Settings
from tasks_service.models import Base

run_migrations(Base.metadata, lambda: Settings().database_url)
