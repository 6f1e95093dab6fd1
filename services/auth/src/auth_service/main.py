"""The auth service's app factory: `uvicorn --factory auth_service.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from auth_service.api import PREFIX
from auth_service.api.routes import accounts, devices, discovery, oauth, recovery, sessions, users
from auth_service.api.routes import revocation_feed as revocation_feed_routes
from auth_service.context import AuthContext
from auth_service.core.background import BackgroundJobs
from auth_service.core.config import Settings
from auth_service.core.lockout import LoginLockout
from auth_service.core.mailer import Mailer
from auth_service.core.passwords import PasswordHasher
from auth_service.core.signing_keys import KeyRing, key_ring_for
from auth_service.core.throttle import CredentialLimits
from auth_service.metrics import AuthMetrics
from auth_service.services.bootstrap import bootstrap_admin
from auth_service.services.revocation_feed import RevocationFeed, RevocationFeedSettings
from taskgate_common.database import (
    create_driver_connections,
    create_engine,
    create_session_factory,
)
from taskgate_common.health import HealthCheck
from taskgate_common.json_logs import configure_logging
from taskgate_common.metrics import new_registry
from taskgate_common.rate_limits import (
    build_limiter,
)
from taskgate_common.service_app import (
    add_routes,
    database_check,
    install_platform,
    new_service_app,
)

SERVICE = "auth"
VERSION = version("taskgate-auth")

logger = logging.getLogger("taskgate.auth")


def build_context(settings: Settings, keys: KeyRing | None = None) -> AuthContext:
    keys = keys or key_ring_for(settings)  # first: a bad key configuration stops startup
    mailer = Mailer(settings)  # so does an unreadable SMTP password file
    engine = create_engine(settings, application_name="taskgate-auth")
    registry = new_registry()
    sessions = create_session_factory(engine)
    limiter = build_limiter(settings, registry, SERVICE)
    return AuthContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        db=create_driver_connections(engine, settings),
        keys=keys,
        hasher=PasswordHasher(
            settings.password_hash_concurrency,
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        registry=registry,
        metrics=AuthMetrics(registry),
        mailer=mailer,
        jobs=BackgroundJobs(settings.mail_queue_limit),
        limits=CredentialLimits(settings, limiter),
        lockout=LoginLockout(settings, limiter, registry),
    )


def create_app(settings: Settings | None = None, keys: KeyRing | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(SERVICE, settings.log_level)
    ctx = build_context(settings, keys)
    feed = RevocationFeed(ctx, RevocationFeedSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ctx.hasher.warm_up()
        await bootstrap_admin(ctx)
        if not settings.mail_enabled:
            logger.warning("AUTH_SMTP_HOST is not set: no reset or verification mail is sent")
        await feed.start()  # its periodic purge
        yield
        await feed.stop()
        # Mails already accepted are sent before the database goes (bounded by the timeout).
        await ctx.jobs.close(settings.mail_shutdown_timeout_seconds)
        await ctx.engine.dispose()

    app = new_service_app(
        title="taskgate auth",
        summary="Accounts, passwords and RS256 access tokens with a public JWKS",
        version=VERSION,
        prefix=PREFIX,
        public_url=settings.issuer,
        docs_enabled=settings.docs_enabled,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.revocation_feed = feed

    add_routes(
        app, accounts.router, sessions.router, recovery.router, users.router, discovery.router
    )
    add_routes(app, revocation_feed_routes.router)  # at the root, outside /auth: not routed
    add_routes(app, oauth.router)
    add_routes(app, devices.router)

    def checks() -> dict[str, HealthCheck]:
        return {"database": database_check(ctx.db)}

    install_platform(
        app,
        service=SERVICE,
        version=VERSION,
        checks=checks,
        registry=ctx.registry,
        cors_origins=settings.cors_origins,
        cors_setting="AUTH_CORS_ORIGINS",
        expose_headers=["ETag", "Location"],
        rate_limit_headers=settings.rate_limit_enabled,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    return app
