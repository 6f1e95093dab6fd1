"""The asynchronous work behind the operator commands in `__main__`."""

from __future__ import annotations

from datetime import timedelta

from auth_service.core.config import Settings
from auth_service.core.passwords import PasswordHasher
from auth_service.models import User
from auth_service.services.bootstrap import create_admin
from auth_service.services.purge import PurgeReport, purge_sessions
from taskgate_common.database import create_engine, create_session_factory


async def purge(
    settings: Settings, *, older_than: timedelta, batch_size: int, max_batches: int | None
) -> PurgeReport:
    engine = create_engine(settings, application_name="taskgate-auth-purge")
    try:
        return await purge_sessions(
            create_session_factory(engine),
            older_than=older_than,
            batch_size=batch_size,
            max_batches=max_batches,
        )
    finally:
        await engine.dispose()


async def add_admin(settings: Settings, *, email: str, username: str, password: str) -> User:
    engine = create_engine(settings, application_name="taskgate-auth-cli")
    try:
        return await create_admin(
            create_session_factory(engine),
            PasswordHasher(
                1,
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            email=email,
            username=username,
            password=password,
        )
    finally:
        await engine.dispose()
