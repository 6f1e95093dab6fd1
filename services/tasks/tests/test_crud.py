"""Creating, reading, changing and deleting tasks, with ETags and If-Match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from tasks_factories import User, create_task


async def test_crud_round_trip(client: httpx.AsyncClient, alice: User) -> None:
    created = await client.post(
        "/api/tasks",
        json={
            "title": "  Write the report  ",
            "description": "Quarterly numbers",
            "priority": "high",
            "due_at": "2031-05-01T09:30:00+02:00",
            "labels": ["work", " urgent ", "work"],
        },
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert created.headers["Location"] == f"/api/tasks/{task['id']}"
    assert created.headers["ETag"] == '"1"'
    assert task["title"] == "Write the report"
    assert task["status"] == "todo"
    assert task["priority"] == "high"
    assert task["labels"] == ["work", "urgent"]
    assert task["owner_id"] == str(alice.id)
    assert task["version"] == 1
    assert task["completed"] is False
    assert task["completed_at"] is None
    assert datetime.fromisoformat(task["due_at"]) == datetime(2031, 5, 1, 7, 30, tzinfo=UTC)
    created_at = datetime.fromisoformat(task["created_at"])
    assert created_at.utcoffset() == timedelta(0)

    fetched = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.headers["ETag"] == '"1"'
    assert fetched.json() == task

    patched = await client.patch(
        f"/api/tasks/{task['id']}",
        json={"title": "Write the final report", "due_at": None},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    assert patched.headers["ETag"] == '"2"'
    body = patched.json()
    assert body["title"] == "Write the final report"
    assert body["due_at"] is None
    assert body["description"] == "Quarterly numbers"  # untouched by a partial update
    assert body["version"] == 2
    assert datetime.fromisoformat(body["updated_at"]) >= datetime.fromisoformat(task["updated_at"])

    replaced = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "Replaced"}, headers=alice.headers
    )
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["title"] == "Replaced"
    assert body["description"] == ""  # a full replace resets what it leaves out
    assert body["priority"] == "medium"
    assert body["labels"] == []
    assert body["version"] == 3

    deleted = await client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    gone = await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "No task with this id", "code": "task_not_found"}


async def test_a_patch_that_changes_nothing_keeps_the_version(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create_task(client, alice, title="Same", priority="low")
    response = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": "Same", "priority": "low"}, headers=alice.headers
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert response.headers["ETag"] == '"1"'


async def test_status_done_sets_and_clears_completed_at(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create_task(client, alice)
    done = await client.patch(
        f"/api/tasks/{task['id']}", json={"status": "done"}, headers=alice.headers
    )
    assert done.json()["completed"] is True
    completed_at = datetime.fromisoformat(done.json()["completed_at"])
    assert completed_at.utcoffset() is not None

    in_progress = await client.patch(
        f"/api/tasks/{task['id']}", json={"status": "in_progress"}, headers=alice.headers
    )
    assert in_progress.json()["completed_at"] is None
    assert in_progress.json()["completed"] is False

    created_done = await create_task(client, alice, status="done")
    assert created_done["completed_at"] is not None


async def test_complete_toggles_between_done_and_todo(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create_task(client, alice, status="in_progress")
    first = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert first.status_code == 200
    assert first.json()["status"] == "done"
    assert first.json()["completed_at"] is not None
    second = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert second.json()["status"] == "todo"
    assert second.json()["completed_at"] is None
    assert second.json()["version"] == 3


async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create_task(client, alice, title="Original")
    url = f"/api/tasks/{task['id']}"
    fresh = await client.patch(
        url, json={"title": "First writer"}, headers={**alice.headers, "If-Match": '"1"'}
    )
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == '"2"'

    attempts = [
        client.patch(
            url, json={"title": "Second writer"}, headers={**alice.headers, "If-Match": '"1"'}
        ),
        client.put(
            url, json={"title": "Second writer"}, headers={**alice.headers, "If-Match": '"1"'}
        ),
        client.delete(url, headers={**alice.headers, "If-Match": '"1"'}),
        client.patch(f"{url}/complete", headers={**alice.headers, "If-Match": '"1"'}),
        client.post(
            f"{url}/move", json={"status": "done"}, headers={**alice.headers, "If-Match": '"1"'}
        ),
        client.patch(url, json={"title": "Weak"}, headers={**alice.headers, "If-Match": 'W/"2"'}),
        client.patch(url, json={"title": "Junk"}, headers={**alice.headers, "If-Match": "garbage"}),
        # A tag beyond any version the database can hold matches nothing (not a 500).
        client.patch(
            url,
            json={"title": "Huge"},
            headers={**alice.headers, "If-Match": '"999999999999999999"'},
        ),
        client.delete(url, headers={**alice.headers, "If-Match": '"999999999999999999"'}),
        # A stale tag on a patch that would change nothing is still a failed precondition.
        client.patch(
            url, json={"title": "First writer"}, headers={**alice.headers, "If-Match": '"1"'}
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 412, response.text
        assert response.json()["code"] == "version_mismatch"
        assert response.headers["ETag"] == '"2"'

    current = await client.get(url, headers=alice.headers)
    assert current.json()["title"] == "First writer"
    assert current.json()["status"] == "todo"
    assert current.json()["version"] == 2


async def test_matching_if_match_applies(client: httpx.AsyncClient, alice: User) -> None:
    task = await create_task(client, alice)
    url = f"/api/tasks/{task['id']}"
    listed = await client.patch(
        url, json={"title": "Listed"}, headers={**alice.headers, "If-Match": '"7", "1"'}
    )
    assert listed.status_code == 200
    star = await client.put(url, json={"title": "Star"}, headers={**alice.headers, "If-Match": "*"})
    assert star.status_code == 200
    deleted = await client.delete(url, headers={**alice.headers, "If-Match": '"3"'})
    assert deleted.status_code == 204


async def test_unknown_task_ids_answer_404_on_every_route(
    client: httpx.AsyncClient, alice: User
) -> None:
    url = "/api/tasks/6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11"
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"title": "x"}),
        ("PUT", url, {"title": "x"}),
        ("DELETE", url, None),
        ("PATCH", f"{url}/complete", None),
        ("POST", f"{url}/move", {"status": "done"}),
    ]:
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "task_not_found"


async def test_a_malformed_task_id_is_422(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/tasks/not-a-uuid", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["loc"] == ["path", "task_id"]
