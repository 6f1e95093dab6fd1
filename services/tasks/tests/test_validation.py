"""Every validation rule answers 422 in the design's shape, naming the field; never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tasks_factories import User, create_task

INVALID_BODIES: list[tuple[dict[str, Any], list[str | int]]] = [
    ({}, ["body", "title"]),
    ({"title": ""}, ["body", "title"]),
    ({"title": "    "}, ["body", "title"]),
    ({"title": "x" * 201}, ["body", "title"]),
    ({"title": 42}, ["body", "title"]),
    ({"title": "ok", "description": "x" * 10_001}, ["body", "description"]),
    ({"title": "ok", "status": "blocked"}, ["body", "status"]),
    ({"title": "ok", "priority": "urgent"}, ["body", "priority"]),
    ({"title": "ok", "due_at": "2030-01-01T10:00:00"}, ["body", "due_at"]),
    ({"title": "ok", "due_at": "next tuesday"}, ["body", "due_at"]),
    ({"title": "ok", "labels": [f"l{i}" for i in range(21)]}, ["body", "labels"]),
    ({"title": "ok", "labels": ["x" * 51]}, ["body", "labels", 0]),
    ({"title": "ok", "labels": ["  "]}, ["body", "labels", 0]),
    ({"title": "ok", "labels": "work"}, ["body", "labels"]),
    ({"title": "ok", "owner_id": "6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11"}, ["body", "owner_id"]),
    ({"title": "ok", "version": 9}, ["body", "version"]),
    ({"title": "nul \x00 byte"}, ["body", "title"]),
    ({"title": "ok", "description": "nul \x00"}, ["body", "description"]),
    ({"title": "ok", "labels": ["a\x00"]}, ["body", "labels", 0]),
    ({"title": "ok", "due_at": "9999-12-31T23:00:00-05:00"}, ["body", "due_at"]),
    ({"title": "ok", "due_at": "0001-01-01T00:30:00+01:00"}, ["body", "due_at"]),
    ({"title": "ok", "due_at": "9999-12-31T23:59:59.999999Z"}, ["body", "due_at"]),
    ({"title": "ok", "due_at": "0001-01-01T00:00:00Z"}, ["body", "due_at"]),
]


@pytest.mark.parametrize(("body", "loc"), INVALID_BODIES)
async def test_create_rejects_invalid_fields(
    client: httpx.AsyncClient, alice: User, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = await client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert error["detail"]
    assert loc in [item["loc"] for item in error["errors"]]
    listing = await client.get("/api/tasks", headers=alice.headers)
    assert listing.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"status": None}, "status"),
        ({"labels": None}, "labels"),
        ({"title": "  "}, "title"),
        ({"priority": "critical"}, "priority"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_patch_rejects_invalid_fields(
    client: httpx.AsyncClient, alice: User, body: dict[str, Any], field: str
) -> None:
    task = await create_task(client, alice, title="Keep me")
    response = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    unchanged = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert unchanged.json()["title"] == "Keep me"
    assert unchanged.json()["version"] == 1


async def test_a_lone_surrogate_is_422(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.post(
        "/api/tasks",
        content=b'{"title": "broken \\ud800 text"}',
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.post(
        "/api/tasks",
        content=b"{not json",
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=blocked", "status"),
        ("priority=urgent", "priority"),
        ("sort=title", "sort"),
        ("due_before=2030-01-01T00:00:00", "due_before"),
        ("due_after=tomorrow", "due_after"),
        ("completed=maybe", "completed"),
        ("q=", "q"),
        ("colour=red", "colour"),
        ("cursor=" + "A" * 2000, "cursor"),  # other bad cursors: test_cursors.py
        ("q=%00", "q"),
        ("due_before=9999-12-31T23:00:00-05:00", "due_before"),
        ("due_before=9999-12-31T23:59:59-14:00", "due_before"),
        ("due_after=0001-01-01T00:00:00%2B14:00", "due_after"),
        ("due_before=9999-12-31T23:59:59.999999Z", "due_before"),
        ("due_after=0001-01-01T00:00:00Z", "due_after"),
    ],
)
async def test_bad_list_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, alice: User, query: str, field: str
) -> None:
    response = await client.get(f"/api/tasks?{query}", headers=alice.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in [str(part) for item in body["errors"] for part in item["loc"]]


async def test_move_rejects_two_anchors(client: httpx.AsyncClient, alice: User) -> None:
    one = await create_task(client, alice)
    two = await create_task(client, alice)
    three = await create_task(client, alice)
    response = await client.post(
        f"/api/tasks/{one['id']}/move",
        json={"before_id": two["id"], "after_id": three["id"]},
        headers=alice.headers,
    )
    assert response.status_code == 422
    assert "before_id or after_id" in response.json()["detail"]
