"""The README's "Build a frontend" code, run as written in Chromium on another origin.

The page comes from a dev server's stand-in on loopback (frontend_server.py, an origin the e2e
stack allows besides `make dev`'s defaults) and calls the real gateway, so every preflight, CORS
header, cookie and `If-Match` goes through what a browser really does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from frontend_server import FrontendServer
from playwright.sync_api import Browser, BrowserContext, Page

from taskgate_devstack.stack import DevStack


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (cookies included) per test."""
    context = browser.new_context()
    yield context
    context.close()


def open_frontend(context: BrowserContext, server: FrontendServer, host: str, api: str) -> Page:
    """The frontend's page, served on `host`, calling the gateway at `api`."""
    page = context.new_page()
    page.goto(server.url(host, api))
    return page


def _register(http: httpx.Client) -> dict[str, str]:
    """An account, registered from an address of its own (the browser has 127.0.0.1)."""
    username = f"spa_{uuid.uuid4().hex[:10]}"
    password = "frontend password"
    registered = http.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    assert registered.status_code == 201, registered.text
    return {"username": username, "password": password}


def _gateway(stack: DevStack, host: str) -> str:
    return f"http://{host}:{stack.config.ports['gateway']}"


JOURNEY = """async ({username, password}) => {
  await login(username, password);
  await refresh();
  const { data: task, etag } = await createTask("Try taskgate");
  const moved = await moveTask(task.id, etag, "in_progress");
  let stale = null;
  try {
    await moveTask(task.id, etag, "done");
  } catch (error) {
    stale = { status: error.status, code: error.code };
  }
  return { created: task.status, moved: moved.data.status, etagChanged: moved.etag !== etag,
           stale };
}"""


def test_readme_code_logs_in_refreshes_creates_and_moves_from_another_origin(
    context: BrowserContext,
    stack: DevStack,
    frontend_server: FrontendServer,
    sync_gateway: httpx.Client,
) -> None:
    api = _gateway(stack, "localhost")
    page = open_frontend(context, frontend_server, "localhost", api)

    result: dict[str, Any] = page.evaluate(JOURNEY, _register(sync_gateway))

    assert result == {
        "created": "todo",
        "moved": "in_progress",
        "etagChanged": True,
        "stale": {"status": 412, "code": "version_mismatch"},
    }


def test_the_refresh_cookie_keeps_the_login_across_a_reload(
    context: BrowserContext,
    stack: DevStack,
    frontend_server: FrontendServer,
    sync_gateway: httpx.Client,
) -> None:
    api = _gateway(stack, "localhost")
    page = open_frontend(context, frontend_server, "localhost", api)
    account = _register(sync_gateway)
    page.evaluate("async ({username, password}) => login(username, password)", account)

    page.reload()  # the access token was only in memory
    tasks = page.evaluate(
        "async () => { await refresh(); return (await call('/api/tasks')).data; }"
    )

    assert tasks == {"items": [], "next_cursor": None}


def test_a_page_on_127_0_0_1_works_with_the_api_on_127_0_0_1(
    context: BrowserContext,
    stack: DevStack,
    frontend_server: FrontendServer,
    sync_gateway: httpx.Client,
) -> None:
    api = _gateway(stack, "127.0.0.1")
    page = open_frontend(context, frontend_server, "127.0.0.1", api)

    result: dict[str, Any] = page.evaluate(JOURNEY, _register(sync_gateway))

    assert result["moved"] == "in_progress"
    assert result["stale"] == {"status": 412, "code": "version_mismatch"}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
@pytest.mark.parametrize("port", [3000, 4200, 5173, 8080])
def test_make_dev_allows_the_usual_dev_server_origins(
    stack: DevStack, host: str, port: int
) -> None:
    origin = f"http://{host}:{port}"
    for path in ("/auth/login", "/api/tasks"):
        preflight = httpx.options(
            _gateway(stack, "localhost") + path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,if-match",
            },
            timeout=10,
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin


def test_a_page_and_an_api_under_two_host_names_get_a_clear_error(
    context: BrowserContext,
    stack: DevStack,
    frontend_server: FrontendServer,
    sync_gateway: httpx.Client,
) -> None:
    """`localhost` and `127.0.0.1` are two sites: the browser keeps no SameSite cookie for the
    page, so the refresh has no token, and the error says why and what to do."""
    api = _gateway(stack, "127.0.0.1")
    page = open_frontend(context, frontend_server, "localhost", api)
    account = _register(sync_gateway)

    error = page.evaluate(
        """async ({username, password}) => {
          await login(username, password);
          try { await refresh(); } catch (e) { return { status: e.status, code: e.code,
                                                         detail: e.message }; }
        }""",
        account,
    )

    assert error["status"] == 401
    assert error["code"] == "refresh_token_missing"
    assert "use one host name for both" in error["detail"]


def test_a_page_on_an_origin_nobody_listed_is_refused_clearly(stack: DevStack) -> None:
    """What the browser's network panel shows for the refused preflight (through the gateway)."""
    api = _gateway(stack, "localhost")
    preflight = httpx.options(
        f"{api}/api/tasks",
        headers={
            "Origin": "http://localhost:3001",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )

    assert preflight.status_code == 403
    body = preflight.json()
    assert body["code"] == "origin_not_allowed"
    assert "http://localhost:3001" in body["detail"]
    assert "TASKS_CORS_ORIGINS" in body["detail"]
    assert "access-control-allow-origin" not in preflight.headers


SYNC = """async ({username, password}) => {
  await login(username, password);
  window.seen = [];
  window.loads = 0;
  await syncFrom(async () => { window.loads += 1; }, (change) => window.seen.push(change));
  const { data: task } = await createTask("made in this tab");
  return task.id;
}"""

SEEN = """async (id) => {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const change = window.seen.find((c) => c.id === id);
    if (change) return { op: change.op, data: change.data, loads: window.loads };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}"""


def test_the_sync_code_follows_changes_live_from_this_tab_and_another_device(
    context: BrowserContext,
    stack: DevStack,
    frontend_server: FrontendServer,
    sync_gateway: httpx.Client,
) -> None:
    """docs/tasks-api.md's EventSource code, with a stream ticket, through the gateway: the
    page's own change and one made by another login of the same user (another device)."""
    api = _gateway(stack, "localhost")
    page = open_frontend(context, frontend_server, "localhost", api)
    account = _register(sync_gateway)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    own_id = page.evaluate(SYNC, account)
    own = page.evaluate(SEEN, own_id)
    assert own is not None
    assert own["op"] == "upsert"
    assert own["data"]["title"] == "made in this tab"
    assert own["loads"] == 1

    device = sync_gateway.post("/auth/login", json=account)
    assert device.status_code == 200, device.text
    elsewhere = sync_gateway.post(
        "/api/tasks",
        json={"title": "made on a phone"},
        headers={"Authorization": f"Bearer {device.json()['access_token']}"},
    )
    assert elsewhere.status_code == 201
    deleted = sync_gateway.delete(
        f"/api/tasks/{own_id}",
        headers={"Authorization": f"Bearer {device.json()['access_token']}"},
    )
    assert deleted.status_code == 204
    seen = page.evaluate(SEEN, elsewhere.json()["id"])
    assert seen is not None
    assert seen["data"]["title"] == "made on a phone"
    ops = page.evaluate("(id) => window.seen.filter((c) => c.id === id).map((c) => c.op)", own_id)
    assert ops == ["upsert", "delete"]
    assert console_errors == []
