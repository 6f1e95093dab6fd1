"""The whole stack, started by the same launcher as `make dev`, on free ports in a temp dir."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack, StackConfig

_source_ips = itertools.count(2)


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    config = StackConfig.load()
    for name in config.ports:
        config.ports[name] = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="taskgate-e2e-"))
    dev_stack = DevStack(config, data_dir, logs_to_files=True, fast_unsafe_postgres=True)
    dev_stack.start()
    try:
        yield dev_stack
    finally:
        dev_stack.destroy()  # logs stay in data_dir for inspection; database files go


@pytest.fixture(scope="session")
def gateway_url(stack: DevStack) -> str:
    # `localhost`, as in the issuer URL the stack gives the auth service.
    return f"http://localhost:{stack.config.ports['gateway']}"


def client_from_own_ip(base_url: str) -> httpx.AsyncClient:
    """A client with its own loopback source address (127.0.0.N), so the gateway's per-IP rate
    limits of one test do not spill into another."""
    address = f"127.0.0.{next(_source_ips)}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=10.0)


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client that talks to the gateway only."""
    async with client_from_own_ip(gateway_url) as client:
        yield client
