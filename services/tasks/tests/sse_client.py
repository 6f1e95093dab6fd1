"""A Server-Sent Events reader for tests, over a real HTTP connection (httpx streaming), parsing
the stream as the WHATWG EventSource algorithm does: `event`, `data`, `id`, `retry` fields,
comments, blank line = dispatch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


class EventReader:
    """Events (and, as `Event("comment", ...)`, comments) of one open stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.last_id: str | None = None

    async def next(self, timeout: float = 10.0, *, comments: bool = False) -> Event:
        """The next event; fails the test if none arrives within `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self._next(comments)

    async def _next(self, comments: bool) -> Event:
        name, event_id = "message", None
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data or name != "message":
                    if event_id is not None:
                        self.last_id = event_id
                    return Event(name, "\n".join(data), event_id)
                continue
            if line.startswith(":"):
                if comments:
                    return Event("comment", line[1:].strip(), None)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
        raise EOFError("the stream ended")

    async def changes(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` change entries (skipping nothing but comments)."""
        found = []
        for _ in range(count):
            event = await self.next(timeout)
            assert event.event == "change", event
            found.append(event.json())
        return found

    async def until(self, entity_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Change entries up to and including the first about `entity_id`."""
        found: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while not found or found[-1]["id"] != entity_id:
                event = await self._next(comments=False)
                assert event.event == "change", event
                found.append(event.json())
        return found

    async def nothing_within(self, seconds: float) -> None:
        """Fails if an event arrives within `seconds` (comments are not events)."""
        try:
            event = await self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, url: str = "/api/events", **kwargs: Any
) -> AsyncIterator[EventReader]:
    """GET `url` as a stream; fails unless it is a 200 event stream."""
    async with http.stream("GET", url, **kwargs) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)
