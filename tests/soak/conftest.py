"""The soak run's stack: the `make dev` launcher on free ports, durable PostgreSQL (fsync on, as
in production), app limits raised so the load itself is not throttled (docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import temporary_stack

from taskgate_devstack.stack import DevStack

# Many sessions refreshing and logging in, and thousands of writes per user and minute: the
# app limits are raised (not switched off); the edge limits keep their defaults, and each soak
# client has its own source address, as each browser would.
SOAK_APP_LIMITS = {
    "auth": {
        "AUTH_RATE_LIMIT_LOGIN_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_LOGIN_PER_ACCOUNT": "5000/minute",
        "AUTH_RATE_LIMIT_REGISTER_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_FAMILY": "1000/minute",
    },
    "tasks": {"TASKS_RATE_LIMIT_WRITES_PER_USER": "100000/minute"},
}


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    with temporary_stack(SOAK_APP_LIMITS, "taskgate-soak-", fast_unsafe_postgres=False) as stack:
        yield stack


@pytest.fixture(scope="session")
def gateway_url(stack: DevStack) -> str:
    return f"http://localhost:{stack.config.ports['gateway']}"
