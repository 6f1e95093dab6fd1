"""The API docs as a newcomer uses them, through the gateway: offline, and logged in by Swagger.

`/auth/docs` and `/api/docs` must load with no request leaving the machine (Swagger UI is served
by the services from a pinned PyPI package), offer only what the gateway routes, and log in with
the OAuth2 password flow ("Authorize", username and password) so that "Try it out" works.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from browser_support import cut_off_network
from playwright.sync_api import Browser, Page, Response, expect

from taskgate_devstack.stack import DevStack

DOCS = {"auth": "/auth/docs", "tasks": "/api/docs"}
DOCUMENTS = {"auth": "/auth/openapi.json", "tasks": "/api/openapi.json"}
PREFIXES = {"auth": "/auth/", "tasks": "/api/"}
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _document(gateway_url: str, service: str) -> dict[str, Any]:
    response = httpx.get(gateway_url + DOCUMENTS[service], timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _register(http: httpx.Client) -> tuple[str, str]:
    username = f"docs_{uuid.uuid4().hex[:10]}"
    password = "swagger ui password"
    registered = http.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    assert registered.status_code == 201, registered.text
    return username, password


@pytest.mark.parametrize("service", DOCS)
def test_docs_page_loads_nothing_from_outside(gateway_url: str, service: str) -> None:
    """Every URL the page names is a path on the gateway, and each is served from there."""
    page = httpx.get(gateway_url + DOCS[service], timeout=10)
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), "the page names an outside URL"

    assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assert len(assets) >= 3  # the script, the stylesheet, the icon
    for asset in assets:
        assert asset.startswith(PREFIXES[service]), asset
        served = httpx.get(gateway_url + asset, timeout=10)
        assert served.status_code == 200, asset
        expected = next(kind for suffix, kind in ASSET_TYPES.items() if asset.endswith(suffix))
        assert served.headers["content-type"].startswith(expected), asset
        assert "immutable" in served.headers["cache-control"]


def test_docs_assets_outside_the_list_are_not_served(gateway_url: str) -> None:
    response = httpx.get(gateway_url + "/api/docs/assets/5.31.0/index.html", timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("service", DOCS)
def test_documents_declare_the_password_flow_and_the_gateway(
    stack: DevStack, gateway_url: str, service: str
) -> None:
    document = _document(gateway_url, service)

    schemes = document["components"]["securitySchemes"]
    assert schemes["OAuth2"]["flows"]["password"]["tokenUrl"] == "/auth/token"
    # Swagger UI and generated clients resolve paths against the server: the gateway.
    gateway_origin = f"http://localhost:{stack.config.ports['gateway']}"
    assert [server["url"] for server in document["servers"]] == [gateway_origin]


@pytest.mark.parametrize("service", DOCS)
def test_documents_offer_only_what_the_gateway_routes(gateway_url: str, service: str) -> None:
    """No `/health*`, `/metrics` or `/revocations`: "Try it out" there could only be a 404."""
    paths = _document(gateway_url, service)["paths"]
    assert paths
    assert [path for path in paths if not path.startswith(PREFIXES[service])] == []


def _authorize(page: Page, username: str, password: str) -> None:
    """Swagger UI's Authorize dialog: the OAuth2 password flow, then close the dialog."""
    page.locator("button.authorize").first.click()
    page.locator("#oauth_username").fill(username)
    page.locator("#oauth_password").fill(password)
    page.locator(".auth-btn-wrapper button.authorize").click()
    expect(page.get_by_role("button", name="Remove authorization")).to_be_visible()
    page.get_by_role("button", name="Close").click()


def _try_it_out(page: Page, operation: str, url: str) -> Response:
    """ "Try it out" then "Execute" on one operation (`tag-operationId`); its answer."""
    block = f"#operations-{operation}"
    page.locator(f"{block} .opblock-summary").click()
    page.locator(f"{block} button.try-out__btn").click()
    with page.expect_response(re.compile(url)) as answer:
        page.locator(f"{block} button.execute").click()
    return answer.value


def test_swagger_password_flow_then_try_it_out_in_chromium(
    browser: Browser, gateway_url: str, sync_gateway: httpx.Client
) -> None:
    """The newcomer's path on `/api/docs`, in a real browser with the internet cut off:
    Authorize with a username and password (the token comes from `/auth/token` through the
    gateway), then "Try it out" on the task list answers 200 with the caller's tasks."""
    username, password = _register(sync_gateway)
    page = browser.new_page()
    refused = cut_off_network(page, gateway_url)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(gateway_url + "/api/docs")
    expect(page.locator("#operations-tasks-listTasks")).to_be_visible()
    _authorize(page, username, password)
    answer = _try_it_out(page, "tasks-listTasks", r"/api/tasks")

    assert answer.status == 200
    assert answer.json() == {"items": [], "next_cursor": None}
    assert refused == []
    assert errors == []
    page.close()


def test_swagger_on_auth_docs_logs_in_the_same_way(
    browser: Browser, gateway_url: str, sync_gateway: httpx.Client
) -> None:
    username, password = _register(sync_gateway)
    page = browser.new_page()
    refused = cut_off_network(page, gateway_url)

    page.goto(gateway_url + "/auth/docs")
    _authorize(page, username, password)
    answer = _try_it_out(page, "accounts-getMe", r"/auth/me$")

    assert answer.status == 200
    assert answer.json()["username"] == username
    assert refused == []
    page.close()


def test_the_token_endpoint_takes_swagger_uis_form(sync_gateway: httpx.Client) -> None:
    """What Swagger UI's password flow posts (no client credentials, an empty scope)."""
    username, password = _register(sync_gateway)
    form = {"grant_type": "password", "username": username, "password": password, "scope": ""}
    token = sync_gateway.post("/auth/token", data=form)
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert sync_gateway.get("/api/tasks", headers=bearer).status_code == 200


# The names generated clients call (`client.listTasks()`): renaming one breaks every client
# built on it, so each stays; new operations add to these.
STABLE_OPERATION_IDS = {
    "auth": {
        "register", "login", "getMe", "updateMe", "refresh", "logout", "logoutAll",
        "changePassword", "forgotPassword", "resetPassword", "requestEmailVerification",
        "verifyEmail", "confirmEmailChange", "requestToken", "revokeToken", "getJwks",
        "getOpenidConfiguration", "listMySessions", "endMySession",
    },
    "tasks": {
        "createTask", "listTasks", "getTask", "patchTask", "replaceTask", "deleteTask",
        "moveTask", "toggleTaskComplete", "getStatusBoard", "listBoards", "createBoard",
        "getBoard", "updateBoard", "deleteBoard", "moveBoard", "createColumn", "updateColumn",
        "deleteColumn", "moveColumn", "listColumnTasks",
    },
}  # fmt: skip


def test_operation_ids_are_stable_readable_method_names(gateway_url: str) -> None:
    seen: list[str] = []
    for service, expected in STABLE_OPERATION_IDS.items():
        paths = _document(gateway_url, service)["paths"]
        ids = [operation["operationId"] for item in paths.values() for operation in item.values()]
        assert expected <= set(ids), expected - set(ids)
        seen += ids
    assert [name for name in seen if not re.fullmatch(r"[a-z][a-zA-Z]*", name)] == []
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("service", DOCS)
def test_every_answer_documents_its_headers_and_error_body(gateway_url: str, service: str) -> None:
    document = _document(gateway_url, service)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "429" in responses, where  # the gateway's limit applies everywhere
            for status, response in responses.items():
                headers = response.get("headers", {})
                assert "X-Request-ID" in headers, f"{where} {status}"
                if status == "429":
                    assert {"Retry-After", "RateLimit-Reset"} <= headers.keys(), where
                if status >= "400":
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.rsplit("/", 1)[1] in (
                        "ErrorBody",
                        "ValidationErrorBody",
                        "OAuthErrorBody",
                    ), where


def test_task_answers_document_etag_location_and_paging_headers(gateway_url: str) -> None:
    paths = _document(gateway_url, "tasks")["paths"]
    assert {"ETag", "Location"} <= paths["/api/tasks"]["post"]["responses"]["201"]["headers"].keys()
    assert "ETag" in paths["/api/tasks/{task_id}"]["patch"]["responses"]["200"]["headers"]
    assert "ETag" in paths["/api/tasks/{task_id}"]["patch"]["responses"]["412"]["headers"]
    listing = paths["/api/{user_id}/tasks"]["get"]["responses"]["200"]["headers"]
    assert {"Link", "X-Next-Cursor"} <= listing.keys()
    # Writes carry the quota of the write limit they counted against.
    assert "RateLimit-Remaining" in paths["/api/tasks"]["post"]["responses"]["201"]["headers"]
