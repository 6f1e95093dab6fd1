"""Property-based fuzzing of the tasks API from its own OpenAPI document (schemathesis).

Every operation gets deterministic valid and invalid requests, sent in process to the real app
on a real PostgreSQL with alice's real Bearer token; valid requests name alice's own id and one
of her real tasks. What she creates, moves or deletes is only ever her own: no operation is
excluded. The checks are in `taskgate_devstack.api_fuzzing`.
"""

from __future__ import annotations

from typing import Any

import pytest
from tasks_factories import User, create_task, running_app

from taskgate_devstack.api_fuzzing import fuzz_api
from tasks_service.core.config import Settings


@pytest.mark.timeout(240)
async def test_every_operation_survives_fuzzing(settings: Settings, alice: User) -> None:
    """On an app whose event streams end at once: the in-process transport returns a
    response only when its body is complete (streams are tested live in test_events.py)."""
    short_streams = settings.model_copy(update={"events_max_stream_seconds": 0.01})
    async with running_app(short_streams) as (_, http):

        async def prepare(operation: Any) -> tuple[dict[str, str], dict[str, str]]:
            task = await create_task(http, alice, title="fuzzing target")
            return alice.headers, {"user_id": str(alice.id), "task_id": str(task["id"])}

        report = await fuzz_api(http, "/api/openapi.json", prepare, base_url=str(http.base_url))
    print("\n" + report.summary("tasks"))
    assert report.operations >= 5
    assert not report.failures, "\n\n".join(report.failures)
