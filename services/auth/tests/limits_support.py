"""Apps with the rate limits on, and clients from chosen addresses, for the abuse tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.main import create_app

CLIENT_IP = "192.0.2.10"


@asynccontextmanager
async def limited_app(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """An auth app of its own with the limits on (the suite's shared app has them off)."""
    app = create_app(settings.model_copy(update={"rate_limit_enabled": True, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


def client(app: FastAPI, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def metric(app: FastAPI, name: str, **labels: str) -> float:
    ctx: AuthContext = app.state.ctx
    return ctx.registry.get_sample_value(name, labels) or 0.0


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/auth/login", json={"username": username, "password": password})
