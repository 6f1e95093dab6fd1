"""Property-based fuzzing of both APIs through the real gateway (schemathesis).

The services' own suites fuzz each app in process; this sends the same deterministic valid and
invalid requests over HTTP through Traefik with the real gateway files, to the real services on
real PostgreSQL, so what the gateway adds or answers itself is checked too: no 5xx, every
status, content type and body documented, and every error in the design's shape (the checks
are in `taskgate_devstack.api_fuzzing`).

The edge limits count per client address, and a fuzzer sends hundreds of credential requests
from one: so this runs a gateway of its own (`private_gateway`: the same files, the same
shared services) with the edge limits raised through their documented variables. The default
limits are tested in test_gateway.py and test_gateway_errors.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import own_ip_client, private_gateway

from taskgate_devstack.api_fuzzing import FuzzReport, fuzz_api
from taskgate_devstack.stack import DevStack

# Per operation and mode; bounded so each test takes well under a minute (more on tasks, whose
# requests are cheap; auth hashes passwords).
AUTH_EXAMPLES = 30
TASKS_EXAMPLES = 40
RAISED_EDGE_LIMITS = {
    "TASKGATE_CREDENTIAL_RATE_AVERAGE": "100000",
    "TASKGATE_CREDENTIAL_RATE_BURST": "100000",
    "TASKGATE_GENERAL_RATE_AVERAGE": "100000",
    "TASKGATE_GENERAL_RATE_BURST": "100000",
}


@pytest.fixture(scope="module")
async def fuzz_gateway(
    stack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    workdir = tmp_path_factory.mktemp("fuzz-gateway")
    async with private_gateway(stack, workdir, RAISED_EDGE_LIMITS) as gateway:
        yield gateway.url


@pytest.fixture
async def http(fuzz_gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with own_ip_client(fuzz_gateway) as client:
        yield client


async def promote_to_admin(stack: DevStack, user_id: str) -> None:
    """What `python -m auth_service users create-admin` would have made, without a process
    per account: the role set in the auth database."""
    url = stack._service_envs["auth"]["AUTH_DATABASE_URL"].replace("+asyncpg", "")
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("UPDATE users SET role = 'admin' WHERE id = $1", user_id)
    finally:
        await connection.close()


async def new_admin(http: httpx.AsyncClient, stack: DevStack) -> GatewayAccount:
    account = await new_account(http)
    await promote_to_admin(stack, account.user_id)
    login = await http.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert login.status_code == 200, login.text
    account.access_token = login.json()["access_token"]
    return account


def public(prefix: str) -> Callable[[Any], bool]:
    """The operations the gateway routes: the service's own prefix."""
    return lambda operation: operation.path == prefix or operation.path.startswith(f"{prefix}/")


# Operator endpoints at each service's root: not in the public documents, not routed.
OPERATOR_PATHS = ("/health", "/health/live", "/health/ready", "/metrics", "/revocations")


async def check(http: httpx.AsyncClient, report: FuzzReport, name: str, operations: int) -> None:
    """No failure, and every documented operation is one the gateway routes (the documents
    offer no "Try it out" that can only be a 404); the operator endpoints stay unreachable."""
    print("\n" + report.summary(name))
    assert report.operations >= operations
    assert not report.failures, "\n\n".join(report.failures)
    assert [operation.path for operation in report.unrouted] == []
    for path in OPERATOR_PATHS:
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


@pytest.mark.timeout(240)
async def test_auth_api_survives_fuzzing_through_the_gateway(
    http: httpx.AsyncClient, fuzz_gateway: str, stack: DevStack
) -> None:
    """A fresh admin account and session per operation (as in the in-process fuzzing), so
    `logout-all`, `change-password` or PATCH `/auth/me` cannot spoil the other operations."""

    async def prepare(operation: Any) -> tuple[dict[str, str], None]:
        return (await new_admin(http, stack)).headers, None

    report = await fuzz_api(
        http,
        "/auth/openapi.json",
        prepare,
        base_url=fuzz_gateway,
        routed=public("/auth"),
        max_examples=AUTH_EXAMPLES,
    )
    await check(http, report, "auth (through the gateway)", 20)


@pytest.mark.timeout(240)
async def test_tasks_api_survives_fuzzing_through_the_gateway(
    http: httpx.AsyncClient, fuzz_gateway: str
) -> None:
    """One account; valid requests name its own id and one of its real tasks."""
    owner = await new_account(http)

    async def prepare(operation: Any) -> tuple[dict[str, str], dict[str, str]]:
        created = await http.post(
            "/api/tasks", json={"title": "fuzzing target"}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        return owner.headers, {"user_id": owner.user_id, "task_id": str(created.json()["id"])}

    report = await fuzz_api(
        http,
        "/api/openapi.json",
        prepare,
        base_url=fuzz_gateway,
        routed=public("/api"),
        max_examples=TASKS_EXAMPLES,
    )
    await check(http, report, "tasks (through the gateway)", 5)
