"""Every registration and login rule answers 422 naming the field, in the design's shape."""

from __future__ import annotations

import httpx
import pytest

VALID = {"email": "valid@example.com", "username": "valid_user", "password": "long enough"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "abc"),  # too short
        ("username", "a" * 33),  # too long
        ("username", "has space"),
        ("username", "semi;colon"),
        ("username", "émile_x"),  # letters are ASCII only
        ("username", "at@sign"),
        ("password", "short7!"),  # 7 chars
        ("password", "x" * 129),
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("email", "a@b"),
        ("email", ""),
    ],
)
async def test_register_rule_breaks_are_422_naming_the_field(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await client.post("/auth/register", json={**VALID, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["detail"]
    assert any(error["loc"] == ["body", field] for error in body["errors"])
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    assert value not in response.text or value == ""  # rejected input is not echoed back


@pytest.mark.parametrize("field", ["email", "username", "password"])
async def test_register_missing_field_is_422(client: httpx.AsyncClient, field: str) -> None:
    body = {k: v for k, v in VALID.items() if k != field}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]


async def test_boundary_lengths_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "edge@example.com", "username": "a.b-", "password": "x" * 8},
    )
    assert response.status_code == 201
    response = await client.post(
        "/auth/register",
        json={"email": "edge2@example.com", "username": "z" * 32, "password": "y" * 128},
    )
    assert response.status_code == 201


async def test_password_is_never_echoed_in_a_validation_error(client: httpx.AsyncClient) -> None:
    secret = "hunter2-is-" + "x" * 130
    response = await client.post("/auth/register", json={**VALID, "password": secret})
    assert response.status_code == 422
    assert secret not in response.text


async def test_login_needs_an_identifier_and_a_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", json={"password": "whatever1"})
    assert response.status_code == 422
    assert "username or email" in response.json()["detail"]
    response = await client.post("/auth/login", json={"username": "someone"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'["a", "list"]', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"username=a&password=b", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_bodies_are_422_not_500(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(
        "/auth/register", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_oauth2_form_without_fields_is_invalid_request(client: httpx.AsyncClient) -> None:
    """The token endpoint answers RFC 6749 errors, not 422 (test_oauth_token_endpoint.py)."""
    response = await client.post("/auth/token", data={"grant_type": "password", "username": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
