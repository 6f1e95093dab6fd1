"""The whole stack, started by the same launcher as `make dev`, on free ports in a temp dir."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from browser_support import CHROMIUM, chromium, chromium_available
from e2e_support import temporary_stack
from frontend_server import FrontendServer
from playwright.sync_api import Browser

from taskgate_devstack.stack import DevStack

_source_ips = itertools.count(0)


# The suite registers and logs in far more often than a person would; each test has its own
# source address, but a few run several accounts. The app limits are raised, not switched off,
# so their headers still show (test_abuse_limits.py); the lockout and Traefik's edge limits
# keep their defaults (test_gateway.py's burst still meets Traefik's 429).
E2E_APP_LIMITS = {
    "auth": {
        "AUTH_RATE_LIMIT_LOGIN_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_LOGIN_PER_ACCOUNT": "2000/minute",
        "AUTH_RATE_LIMIT_REGISTER_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_FAMILY": "1000/minute",
        "AUTH_RATE_LIMIT_FORGOT_PASSWORD_PER_IP": "1000/hour",
        "AUTH_RATE_LIMIT_FORGOT_PASSWORD_PER_ACCOUNT": "1000/hour",
        "AUTH_RATE_LIMIT_ACCOUNT_MAIL_PER_IP": "1000/hour",
        "AUTH_RATE_LIMIT_ACCOUNT_MAIL_PER_ACCOUNT": "1000/hour",
        "AUTH_RATE_LIMIT_PROFILE_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_PROFILE_PER_ACCOUNT": "1000/minute",
    },
    "tasks": {"TASKS_RATE_LIMIT_WRITES_PER_USER": "10000/minute"},
}


@pytest.fixture(scope="session")
def frontend_server() -> Iterator[FrontendServer]:
    """A dev server's stand-in on loopback, serving the README's frontend code."""
    with FrontendServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def stack(frontend_server: FrontendServer) -> Iterator[DevStack]:
    with temporary_stack(
        E2E_APP_LIMITS, prefix="taskgate-e2e-", extra_cors_origins=frontend_server.origins
    ) as dev_stack:
        yield dev_stack


@pytest.fixture(scope="session")
def gateway_url(stack: DevStack) -> str:
    # `localhost`, as in the issuer URL the stack gives the auth service.
    return f"http://localhost:{stack.config.ports['gateway']}"


def _own_address() -> str:
    n = next(_source_ips)  # 127.0.0.2 upwards, on to 127.0.1.2 after 250 tests
    return f"127.0.{n // 250}.{n % 250 + 2}"


def client_from_own_ip(base_url: str) -> httpx.AsyncClient:
    """A client with its own loopback source address (127.0.0.N), so the gateway's per-IP rate
    limits of one test do not spill into another."""
    transport = httpx.AsyncHTTPTransport(local_address=_own_address())
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=10.0)


@pytest.fixture
def sync_gateway(gateway_url: str) -> Iterator[httpx.Client]:
    """A blocking client of the gateway from its own address, for the browser tests: the
    browser itself can only come from 127.0.0.1, whose credential bucket they keep for it."""
    transport = httpx.HTTPTransport(local_address=_own_address())
    with httpx.Client(transport=transport, base_url=gateway_url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client that talks to the gateway only."""
    async with client_from_own_ip(gateway_url) as client:
        yield client


@pytest.fixture
async def another_gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway client, from a source address of its own."""
    async with client_from_own_ip(gateway_url) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's); skipped with the reason where it is not installed."""
    if not chromium_available():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)")
    with chromium() as launched:
        yield launched
