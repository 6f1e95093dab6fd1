"""Load and concurrency against the real service processes (directly: the gateway's per-IP
edge limits are not what is under test here, and the e2e stack's app limits are high)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import httpx
from e2e_support import GatewayAccount, new_account
from reliability_support import all_tasks, own_ip_client

from taskgate_devstack.stack import DevStack

CLIENTS = 200
USERS = 8
SECONDS = 3.0


async def test_200_clients_create_move_delete_and_the_final_state_adds_up(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    users = []
    for _ in range(USERS):  # each from its own address: the edge limits credential calls
        async with own_ip_client(str(gateway.base_url)) as client:
            users.append(await new_account(client))
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    ops: Counter[str] = Counter()
    kept: dict[str, set[str]] = {user.user_id: set() for user in users}
    unexpected: list[tuple[str, int]] = []

    async def client_loop(http: httpx.AsyncClient, user: GatewayAccount, seed: int) -> None:
        rng = random.Random(seed)
        mine: list[str] = []  # each client touches only the tasks it created
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            action = rng.choice(["create", "create", "move", "delete"]) if mine else "create"
            if action == "create":
                response = await http.post(
                    "/api/tasks", json={"title": f"c{seed}"}, headers=user.headers
                )
                if response.status_code == 201:
                    mine.append(response.json()["id"])
            elif action == "move":
                task = rng.choice(mine)
                status = rng.choice(["todo", "in_progress", "done"])
                response = await http.post(
                    f"/api/tasks/{task}/move", json={"status": status}, headers=user.headers
                )
            else:
                task = mine.pop(rng.randrange(len(mine)))
                response = await http.delete(f"/api/tasks/{task}", headers=user.headers)
            ops[f"{action} {response.status_code}"] += 1
            if response.status_code >= 300:
                unexpected.append((action, response.status_code))
        kept[user.user_id].update(mine)

    async with httpx.AsyncClient(base_url=stack.url("tasks"), limits=limits, timeout=30.0) as http:
        started = time.monotonic()
        async with asyncio.timeout(120):  # no deadlock: everything ends, bounded
            await asyncio.gather(*(client_loop(http, users[i % USERS], i) for i in range(CLIENTS)))
        elapsed = time.monotonic() - started
        assert unexpected == [], Counter(unexpected)
        stored_total = 0
        for user in users:
            stored = await all_tasks(http, user.headers)
            assert all(task["owner_id"] == user.user_id for task in stored)  # no leak
            assert {task["id"] for task in stored} == kept[user.user_id]
            assert len(stored) == len(kept[user.user_id])
            stored_total += len(stored)
            # Positions in each column stay a strict order: no two cards share a place.
            board = (await http.get("/api/board", headers=user.headers)).json()
            for column in board["columns"]:
                ids = [card["id"] for card in column["items"]]
                assert len(ids) == len(set(ids))
    print(
        f"\n{CLIENTS} clients x {USERS} users for {elapsed:.1f}s: {sum(ops.values())} "
        f"requests {dict(ops)}; {stored_total} tasks stored, all accounted for"
    )


async def test_concurrent_if_match_writers_exactly_one_wins_per_version(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    user = await new_account(gateway)
    async with httpx.AsyncClient(base_url=stack.url("tasks"), timeout=30.0) as http:
        created = await http.post("/api/tasks", json={"title": "v1"}, headers=user.headers)
        task_id = created.json()["id"]
        etag = created.headers["etag"]
        winners: list[str] = []
        for round_ in range(5):
            responses = await asyncio.gather(
                *(
                    http.patch(
                        f"/api/tasks/{task_id}",
                        json={"title": f"round {round_} writer {w}"},
                        headers={**user.headers, "If-Match": etag},
                    )
                    for w in range(20)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == Counter({200: 1, 412: 19}), statuses
            winner = next(r for r in responses if r.status_code == 200)
            winners.append(winner.json()["title"])
            etag = winner.headers["etag"]
        final = (await http.get(f"/api/tasks/{task_id}", headers=user.headers)).json()
        assert final["title"] == winners[-1]  # the last winner's write, nothing lost over it
        assert final["version"] == created.json()["version"] + 5
    print(f"\nIf-Match: 5 rounds x 20 writers -> 5 winners, 95 x 412; final {final['title']!r}")


async def test_refresh_storms(gateway: httpx.AsyncClient, stack: DevStack) -> None:
    account = await new_account(gateway)
    credentials = {"username": account.username, "password": account.password}
    async with httpx.AsyncClient(base_url=stack.url("auth"), timeout=30.0) as http:
        logins = await asyncio.gather(
            *(http.post("/auth/login", json=credentials) for _ in range(20))
        )
        assert all(r.status_code == 200 for r in logins)
        tokens = [r.json()["refresh_token"] for r in logins]

        async def honest(token: str) -> int:
            for _ in range(5):
                response = await http.post("/auth/refresh", json={"refresh_token": token})
                assert response.status_code == 200, response.text  # no false reuse detection
                token = response.json()["refresh_token"]
            final = await http.post("/auth/refresh", json={"refresh_token": token})
            assert final.status_code == 200
            return 6

        async with asyncio.timeout(120):
            honest_total = sum(await asyncio.gather(*(honest(token) for token in tokens)))

        shared = (await http.post("/auth/login", json=credentials)).json()["refresh_token"]
        async with asyncio.timeout(60):
            storm = await asyncio.gather(
                *(http.post("/auth/refresh", json={"refresh_token": shared}) for _ in range(20))
            )
        # Many tabs refreshing one token at once: every one succeeds (the grace window) and
        # they all end up holding the same single successor.
        statuses = Counter(r.status_code for r in storm)
        assert statuses == Counter({200: 20}), statuses
        assert len({r.json()["refresh_token"] for r in storm}) == 1
    print(
        f"\nrefresh storm: 20 families x 6 refreshes = {honest_total} all 200; "
        f"one token x 20 at once -> {dict(statuses)}"
    )
