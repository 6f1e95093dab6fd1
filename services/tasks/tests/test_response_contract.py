"""The hot paths write JSON bytes directly; they must say exactly what the schemas document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from tasks_factories import User

from tasks_service.schemas import StatusBoard, TaskOut, TaskPage


async def _seed(client: httpx.AsyncClient, user: User) -> str:
    bodies = [
        {"title": "plain"},
        {
            "title": "full",
            "description": "every field set",
            "priority": "high",
            "due_at": "2031-05-01T09:30:00.250000+02:00",
            "labels": ["a", "b"],
        },
        {"title": "finished", "status": "done"},
    ]
    ids = []
    for body in bodies:
        response = await client.post("/api/tasks", json=body, headers=user.headers)
        assert response.status_code == 201
        ids.append(str(response.json()["id"]))
    return ids[1]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/api/tasks?limit=2", TaskPage),
        ("/api/tasks?sort=due_at", TaskPage),
        ("/api/board", StatusBoard),
        ("/api/{user}/tasks", list[TaskOut]),
        ("/api/tasks/{task}", TaskOut),
        ("/api/{user}/tasks/{task}", TaskOut),
    ],
)
async def test_bodies_are_what_pydantic_would_write_for_the_schema(
    client: httpx.AsyncClient, alice: User, path: str, schema: Any
) -> None:
    task_id = await _seed(client, alice)
    response = await client.get(path.format(user=alice.id, task=task_id), headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    adapter: TypeAdapter[Any] = TypeAdapter(schema)
    validated = adapter.validate_json(response.content)
    assert adapter.dump_python(validated, mode="json") == response.json()
