"""Seed users and tasks through the public API, and produce wrk data files per scenario."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


@dataclass
class BenchUser:
    username: str
    password: str
    access_token: str


async def _bounded(jobs: list[Coroutine[Any, Any, T]], limit: int = 16) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Coroutine[Any, Any, T]) -> T:
        async with semaphore:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def _login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    tokens: dict[str, str] = response.json()
    return tokens


async def _new_user(client: httpx.AsyncClient, tasks: int) -> BenchUser:
    username = f"bench_{uuid.uuid4().hex[:12]}"
    password = f"bench password {username}"
    registered = await client.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    registered.raise_for_status()
    tokens = await _login(client, username, password)
    user = BenchUser(username, password, tokens["access_token"])
    headers = {"Authorization": f"Bearer {user.access_token}"}
    for n in range(tasks):
        created = await client.post(
            "/api/tasks",
            json={"title": f"seed card {n}", "labels": ["seed"], "priority": "medium"},
            headers=headers,
        )
        created.raise_for_status()
    return user


async def seed_users(base_url: str, users: int, tasks: int) -> list[BenchUser]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        result: list[BenchUser] = await _bounded([_new_user(client, tasks) for _ in range(users)])
    return result


async def fresh_refresh_tokens(base_url: str, users: list[BenchUser], count: int) -> list[str]:
    """`count` new sessions (one login each): refresh tokens are single use."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        pairs = await _bounded(
            [
                _login(client, users[i % len(users)].username, users[i % len(users)].password)
                for i in range(count)
            ]
        )
    return [pair["refresh_token"] for pair in pairs]


async def current_tasks(base_url: str, users: list[BenchUser]) -> list[tuple[str, str, int]]:
    """(token, task id, current version) for every seeded task."""
    records: list[tuple[str, str, int]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for user in users:
            headers = {"Authorization": f"Bearer {user.access_token}"}
            cursor = None
            while True:
                params: dict[str, str | int] = {"limit": 100, "label": "seed"}
                if cursor:
                    params["cursor"] = cursor
                page = (await client.get("/api/tasks", params=params, headers=headers)).json()
                records += [(user.access_token, t["id"], t["version"]) for t in page["items"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
    return records


def write_records(path: Path, records: list[tuple[object, ...]]) -> Path:
    path.write_text("".join("\t".join(str(field) for field in r) + "\n" for r in records))
    return path
