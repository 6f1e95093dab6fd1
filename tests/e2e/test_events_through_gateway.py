"""The event stream through the real Traefik: unbuffered (an event arrives while the stream is
open), uncompressed whatever the client accepts, alive past the gateway's request timeouts,
and its errors in the design's JSON shape."""

from __future__ import annotations

import time

import httpx
from e2e_support import new_account
from sse_client import open_stream

# Longer than every timeout of the entrypoint (readTimeout and writeTimeout, 30 s) and the
# upstream's response-header timeout (25 s): a stream cut by any of them ends before this.
OUTLIVE_SECONDS = 35


async def test_a_stream_outlives_the_gateway_timeouts_and_delivers_at_once(
    gateway: httpx.AsyncClient,
) -> None:
    owner = await new_account(gateway)
    headers = {**owner.headers, "Accept-Encoding": "gzip, br"}
    async with open_stream(gateway, headers=headers, timeout=60) as stream:
        response = stream.response
        assert "content-encoding" not in response.headers
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-content-type-options"] == "nosniff"  # the gateway's headers
        assert (await stream.next()).event == "ready"
        created = await gateway.post("/api/tasks", json={"title": "first"}, headers=owner.headers)
        assert created.status_code == 201
        await stream.until(created.json()["id"], timeout=5)
        started = time.monotonic()
        heartbeats = 0
        while time.monotonic() - started < OUTLIVE_SECONDS:
            event = await stream.next(timeout=20, comments=True)
            assert event.event in ("comment", "change"), event  # the column's count, then idle
            heartbeats += event.event == "comment"
        assert heartbeats >= 2  # every 15 s
        late = await gateway.post("/api/tasks", json={"title": "late"}, headers=owner.headers)
        assert late.status_code == 201
        assert (await stream.until(late.json()["id"], timeout=5))[-1]["data"]["title"] == "late"


async def test_stream_errors_come_through_in_the_json_shape(gateway: httpx.AsyncClient) -> None:
    anonymous = await gateway.get("/api/events")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    spent = await gateway.get("/api/events?ticket=not-a-ticket")
    assert spent.status_code == 401
    assert spent.json()["code"] == "invalid_ticket"


async def test_an_eventsource_ticket_works_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    owner = await new_account(gateway)
    issued = await gateway.post("/api/events/tickets", headers=owner.headers)
    assert issued.status_code == 201, issued.text
    async with open_stream(gateway, f"/api/events?ticket={issued.json()['ticket']}") as stream:
        assert (await stream.next()).event == "ready"
