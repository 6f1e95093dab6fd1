"""Property-based fuzzing of the auth API from its own OpenAPI document (schemathesis).

Every operation gets deterministic valid and invalid requests, sent in process to the real app
on a real PostgreSQL with a real Bearer token of an admin (so the admin routes are reached).
Each operation gets a fresh account and session, so operations with side effects on the caller
(`logout-all`, `change-password`, PATCH `/auth/me`) cannot spoil the others: none is excluded.
The checks are in `taskgate_devstack.api_fuzzing`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from auth_factories import LoginFn, MakeAccountFn, bearer
from fastapi import FastAPI

from taskgate_devstack.api_fuzzing import BASE_URL, fuzz_api


@pytest.mark.timeout(240)
async def test_every_operation_survives_fuzzing(
    app: FastAPI, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:

        async def prepare(operation: Any) -> tuple[dict[str, str], None]:
            admin = await make_account("admin")
            return bearer((await open_session(admin))["access_token"]), None

        report = await fuzz_api(http, "/auth/openapi.json", prepare)
    print("\n" + report.summary("auth"))
    assert report.operations >= 20
    assert not report.failures, "\n\n".join(report.failures)
