"""What every request needs, built once per app: settings, database, keys, hasher, metrics,
the mailer, the background jobs that send mail after a response, and the abuse limits."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_service.core.background import BackgroundJobs
from auth_service.core.config import Settings
from auth_service.core.lockout import LoginLockout
from auth_service.core.mailer import Mailer
from auth_service.core.passwords import PasswordHasher
from auth_service.core.signing_keys import KeyRing
from auth_service.core.throttle import CredentialLimits
from auth_service.metrics import AuthMetrics
from taskgate_common.database import DriverConnections


@dataclass
class AuthContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    db: DriverConnections  # driver-level SQL for the refresh exchange (the hot path)
    keys: KeyRing
    hasher: PasswordHasher
    registry: CollectorRegistry
    metrics: AuthMetrics
    mailer: Mailer
    jobs: BackgroundJobs
    limits: CredentialLimits
    lockout: LoginLockout
