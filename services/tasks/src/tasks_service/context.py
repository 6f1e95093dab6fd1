"""What every request needs, built once per app: settings, database, key cache, revocations,
change notifications, metrics, the write limit."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from taskgate_common.database import DriverConnections
from tasks_service.core.access_tokens import TokenVerifier
from tasks_service.core.change_listener import ChangeListener
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache
from tasks_service.core.revocations import RevocationFollower
from tasks_service.core.write_limits import WriteLimits
from tasks_service.metrics import TasksMetrics


@dataclass
class TasksContext:
    settings: Settings
    engine: AsyncEngine
    db: DriverConnections  # connections for the repositories' SQL
    registry: CollectorRegistry
    metrics: TasksMetrics
    jwks: JwksCache
    verifier: TokenVerifier
    revocations: RevocationFollower
    listener: ChangeListener
    write_limits: WriteLimits | None = None  # None: rate limits disabled
