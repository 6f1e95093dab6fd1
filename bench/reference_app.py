"""The floor for `GET /api/tasks?limit=20`: a bare ASGI app doing only the essential work.

One PyJWT RS256 verification, one asyncpg query, one JSON encoding — no framework, no
validation, no claims cache. The bench runs it under the same uvicorn settings as the services,
so `service / reference` is the cost of everything else.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import jwt

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

QUERY = """
SELECT id, owner_id, title, description, status, priority, due_at, labels, completed_at,
       version, created_at, updated_at
FROM tasks WHERE owner_id = $1 ORDER BY status, position, id LIMIT 21
"""

state: dict[str, Any] = {}


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def _startup() -> None:
    state["pool"] = await asyncpg.create_pool(
        os.environ["REF_DATABASE_URL"], min_size=10, max_size=10
    )
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(os.environ["REF_JWKS_URL"])).json()
    state["keys"] = {key["kid"]: jwt.PyJWK(key).key for key in jwks["keys"]}


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await _startup()
                await send({"type": "lifespan.startup.complete"})
        await state["pool"].close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    token = dict(scope["headers"]).get(b"authorization", b"")[7:].decode()
    try:
        kid = jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(
            token,
            state["keys"][kid],
            algorithms=["RS256"],
            audience="tasks-api",
            issuer=os.environ["REF_ISSUER"],
        )
    except (jwt.InvalidTokenError, KeyError):
        await _respond(send, 401, b'{"detail": "invalid token"}')
        return
    async with state["pool"].acquire() as connection:
        rows = await connection.fetch(QUERY, uuid.UUID(claims["sub"]))
    items = [dict(row) for row in rows[:20]]
    body = json.dumps({"items": items, "next_cursor": None}, default=_default).encode()
    await _respond(send, 200, body)
