"""Helpers for the end-to-end tests (on pytest's pythonpath, unlike conftest)."""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack, StackConfig

_numbers = itertools.count(1)


@contextmanager
def temporary_stack(
    app_env: dict[str, dict[str, str]],
    prefix: str,
    fast_unsafe_postgres: bool = True,
    extra_cors_origins: Sequence[str] = (),
    gateway_env: dict[str, str] | None = None,
    replicas: int = 1,
) -> Iterator[DevStack]:
    """The `make dev` stack on free ports in a temporary directory, with extra environment
    per service (e.g. raised app rate limits) and for the gateway (e.g. its tracing), and
    browser origins allowed besides the dev defaults; logs stay in its directory, databases
    go. `replicas` > 1: that many processes per service behind the gateway, and a Redis."""
    config = StackConfig.load()
    config.set_replicas(replicas)
    for name in config.ports:
        config.ports[name] = free_port()
    if gateway_env and config.gateway is not None:
        config.gateway.env.update(gateway_env)
    for service in config.services:
        service.env.update(app_env.get(service.name, {}))
        for key, value in service.env.items():
            if key.endswith("_CORS_ORIGINS") and extra_cors_origins:
                service.env[key] = ",".join([value, *extra_cors_origins])
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    stack = DevStack(
        config, data_dir, logs_to_files=True, fast_unsafe_postgres=fast_unsafe_postgres
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.destroy()


@dataclass
class GatewayAccount:
    user_id: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def new_account(client: httpx.AsyncClient) -> GatewayAccount:
    """Register and log in through the gateway."""
    n = next(_numbers)
    username = f"e2e_{n}_{uuid.uuid4().hex[:8]}"
    password = f"e2e password {n}"
    registered = await client.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    assert registered.status_code == 201, registered.text
    tokens = await client.post("/auth/login", json={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return GatewayAccount(
        registered.json()["id"], username, password, body["access_token"], body["refresh_token"]
    )
