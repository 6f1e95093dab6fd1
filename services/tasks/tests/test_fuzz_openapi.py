"""Property-based fuzzing of the tasks API from its own OpenAPI document (schemathesis).

Every operation gets deterministic valid and invalid requests, sent in process to the real app
on a real PostgreSQL with alice's real Bearer token; valid requests name alice's own id and one
of her real tasks. What she creates, moves or deletes is only ever her own: no operation is
excluded. The checks are in `taskgate_devstack.api_fuzzing`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tasks_factories import User, create_task

from taskgate_devstack.api_fuzzing import BASE_URL, fuzz_api


@pytest.mark.timeout(240)
async def test_every_operation_survives_fuzzing(app: FastAPI, alice: User) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:

        async def prepare(operation: Any) -> tuple[dict[str, str], dict[str, str]]:
            task = await create_task(http, alice, title="fuzzing target")
            return alice.headers, {"user_id": str(alice.id), "task_id": str(task["id"])}

        report = await fuzz_api(http, "/api/openapi.json", prepare)
    print("\n" + report.summary("tasks"))
    assert report.operations >= 5
    assert not report.failures, "\n\n".join(report.failures)
