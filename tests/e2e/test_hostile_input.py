"""Hostile input through the real gateway: forged and malformed JWTs, oversized and malformed
bodies. Every case is refused with a 4xx in the design's error shape, never a 5xx, and the
services answer normally afterwards (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import (
    AttackerServer,
    assert_error_shape,
    attacker_server,
    b64,
    hs256_with_public_key,
    own_ip_client,
    raw_request,
    segments,
    sign_raw,
    sign_rs256,
    stack_signing_key,
)

from auth_service.core.signing_keys import SigningKey, generate_private_key_pem
from taskgate_devstack.stack import DevStack

PROTECTED = ["/auth/me", "/api/tasks"]


@dataclass
class Forge:
    """Everything an attack needs: the real key (to show which headers alone are refused), an
    attacker's key and server, and the claims of a real token of a real account."""

    real: SigningKey
    attacker: SigningKey
    server: AttackerServer
    claims: dict[str, Any]
    account: GatewayAccount


@pytest.fixture(scope="module")
async def forge(stack: DevStack, gateway_url: str) -> AsyncIterator[Forge]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    attacker_pem = generate_private_key_pem()
    private = load_pem_private_key(attacker_pem, password=None)
    attacker = SigningKey.from_private_key(private)  # type: ignore[arg-type]
    async with own_ip_client(gateway_url) as client:
        account = await new_account(client)
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    with attacker_server(attacker) as server:
        yield Forge(stack_signing_key(stack), attacker, server, claims, account)
    # Nothing on the request path may ever have fetched a key from a URL in a token.
    assert server.requests == []


def fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {**claims, "iat": now, "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex, **changes}


# Each attack: name -> function of the forge giving the token to present.
ATTACKS: dict[str, Callable[[Forge], str]] = {
    "alg_none": lambda f: (
        segments({"alg": "none", "typ": "at+jwt", "kid": f.real.kid}, f.claims) + "."
    ),
    "alg_none_with_signature": lambda f: (
        segments({"alg": "none", "typ": "at+jwt", "kid": f.real.kid}, f.claims)
        + "."
        + b64(b"x" * 256)
    ),
    "alg_NoNe_mixed_case": lambda f: (
        segments({"alg": "NoNe", "typ": "at+jwt", "kid": f.real.kid}, f.claims) + "."
    ),
    "hs256_signed_with_public_key": lambda f: hs256_with_public_key(f.real, fresh(f.claims)),
    "rs512_instead_of_rs256": lambda f: jwt.encode(
        fresh(f.claims),
        f.real.private_key,
        algorithm="RS512",
        headers={"kid": f.real.kid, "typ": "at+jwt"},
    ),
    "kid_is_attacker_url": lambda f: sign_rs256(
        f.attacker, fresh(f.claims), kid=f"{f.server.url}/jwks.json"
    ),
    "kid_is_path": lambda f: sign_rs256(f.attacker, fresh(f.claims), kid="../../../../dev/null"),
    "kid_is_absolute_path": lambda f: sign_rs256(f.attacker, fresh(f.claims), kid="/etc/passwd"),
    "kid_is_sql": lambda f: sign_rs256(f.attacker, fresh(f.claims), kid="' OR '1'='1"),
    "kid_is_huge": lambda f: sign_rs256(f.attacker, fresh(f.claims), kid="k" * 5000),
    "kid_is_not_a_string": lambda f: sign_raw(
        f.attacker, {"typ": "at+jwt", "kid": {"$ne": None}}, fresh(f.claims)
    ),
    "jku_to_attacker_jwks": lambda f: sign_rs256(
        f.attacker, fresh(f.claims), kid=f.attacker.kid, jku=f"{f.server.url}/jwks.json"
    ),
    "jku_with_real_kid": lambda f: sign_rs256(
        f.attacker, fresh(f.claims), kid=f.real.kid, jku=f"{f.server.url}/jwks.json"
    ),
    "x5u_to_attacker": lambda f: sign_rs256(
        f.attacker, fresh(f.claims), kid=f.attacker.kid, x5u=f"{f.server.url}/cert.pem"
    ),
    "embedded_jwk_header": lambda f: sign_rs256(
        f.attacker, fresh(f.claims), kid=f.real.kid, jwk=f.attacker.public_jwk
    ),
    "other_issuer_with_own_jwks": lambda f: sign_rs256(
        f.attacker, fresh(f.claims, iss=f.server.url), kid=f.attacker.kid
    ),
    "real_key_wrong_issuer": lambda f: sign_rs256(f.real, fresh(f.claims, iss=f.server.url)),
    "real_key_wrong_audience": lambda f: sign_rs256(f.real, fresh(f.claims, aud=["billing"])),
    "real_key_expired": lambda f: sign_rs256(
        f.real, fresh(f.claims, iat=1_000_000, nbf=1_000_000, exp=1_000_600)
    ),
    "real_key_not_an_access_token": lambda f: sign_rs256(f.real, fresh(f.claims), typ="JWT"),
    "real_key_crit_unknown_extension": lambda f: sign_raw(
        f.real,
        {"typ": "at+jwt", "kid": f.real.kid, "crit": ["urn:attacker:bypass"]},
        fresh(f.claims),
    ),
    "real_key_crit_b64_false": lambda f: sign_raw(
        f.real, {"typ": "at+jwt", "kid": f.real.kid, "b64": False, "crit": ["b64"]}, fresh(f.claims)
    ),
    "real_key_crit_not_a_list": lambda f: sign_raw(
        f.real, {"typ": "at+jwt", "kid": f.real.kid, "crit": "exp"}, fresh(f.claims)
    ),
    "nested_jwt": lambda f: sign_raw(
        f.real,
        {"typ": "at+jwt", "kid": f.real.kid, "cty": "JWT"},
        f.account.access_token.encode(),
    ),
    "nested_jwt_attacker_inner": lambda f: sign_raw(
        f.attacker,
        {"typ": "at+jwt", "kid": f.attacker.kid, "cty": "JWT"},
        f.account.access_token.encode(),
    ),
    "payload_not_json": lambda f: sign_raw(f.real, {"typ": "at+jwt", "kid": f.real.kid}, b"\x00"),
    "payload_json_list": lambda f: sign_raw(f.real, {"typ": "at+jwt", "kid": f.real.kid}, b"[1]"),
    "sub_not_a_user_id": lambda f: sign_rs256(f.real, fresh(f.claims, sub="admin")),
    "header_not_utf8": lambda f: (
        b64(b'{"alg":"RS256","kid":"\xff\xfe"}') + "." + f.account.access_token.split(".", 1)[1]
    ),
    "payload_not_utf8": lambda f: sign_raw(
        f.real, {"typ": "at+jwt", "kid": f.real.kid}, b'{"sub":"\xff\xfe\xfd"}'
    ),
    "malformed_base64": lambda _: "eyJ!!!.eyJ***.c2ln~~",
    "two_segments": lambda f: f.account.access_token.rsplit(".", 1)[0],
    "four_segments": lambda f: f.account.access_token + ".AAAA",
    "only_dots": lambda _: "....",
    "padding_everywhere": lambda _: "====.====.====",
    "truncated_signature": lambda f: f.account.access_token[:-20],
    "signature_of_another_token": lambda f: (
        f.account.access_token.rsplit(".", 1)[0]
        + "."
        + sign_rs256(f.real, fresh(f.claims)).rsplit(".", 1)[1]
    ),
    "oversized_9k": lambda f: sign_rs256(f.real, fresh(f.claims, pad="x" * 9000)),
    "oversized_60k": lambda f: sign_rs256(f.attacker, fresh(f.claims, pad="x" * 60_000)),
}


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_forged_and_malformed_tokens_are_401_never_500(
    gateway: httpx.AsyncClient, forge: Forge, attack: str, path: str
) -> None:
    token = ATTACKS[attack](forge)
    response = await gateway.get(path, headers={"Authorization": f"Bearer {token}"})
    if attack == "oversized_60k":
        # Above the services' own header cap (`*_MAX_HEADER_BYTES`, 16 KiB): refused before
        # any token is looked at, in the same JSON shape.
        assert response.status_code == 431, (path, response.status_code, response.text[:300])
        assert_error_shape(response)
        assert response.json()["code"] == "headers_too_large"
        return
    assert response.status_code == 401, (attack, path, response.status_code, response.text[:300])
    assert_error_shape(response)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize(
    "raw",
    [
        b"Bearer \xff\xfe\xfd.\x80\x81.\xc3\x28",
        b"Bearer " + b"\xe2\x82" * 20,
        b"Bearer a.b.c\x7f",
        b"Basic dXNlcjpwYXNz",
        b"Bearer",
        b"bearer x",
    ],
)
async def test_non_utf8_and_odd_authorization_headers_are_401(
    gateway: httpx.AsyncClient, path: str, raw: bytes
) -> None:
    response = await gateway.get(path, headers={b"Authorization": raw})
    if response.status_code == 400:
        # A control character in a header value: Traefik's HTTP server refuses the request
        # before routing it, so before any middleware: its own plain-text 400 (the one gateway
        # error that is not JSON, docs/architecture.md); nothing reaches a service.
        assert b"\x7f" in raw, response.text
        return
    assert response.status_code == 401, (raw, response.text[:300])
    assert_error_shape(response)


async def test_a_token_for_a_user_that_does_not_exist_is_401_at_auth(
    gateway: httpx.AsyncClient, forge: Forge
) -> None:
    # Even signed with the real key (which only auth holds); tasks cannot know who exists and
    # accepts it by design (docs/reliability.md), showing that user an empty task list.
    token = sign_rs256(forge.real, fresh(forge.claims, sub=str(uuid.uuid4())))
    response = await gateway.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert_error_shape(response)


async def test_real_token_with_jku_header_is_checked_against_the_real_keys_only(
    gateway: httpx.AsyncClient, forge: Forge
) -> None:
    """`jku`/`x5u` are ignored, not followed: a token the real key signed still works with
    them set, and the attacker's server named in them is never asked (checked in `forge`)."""
    token = sign_rs256(
        forge.real,
        fresh(forge.claims),
        jku=f"{forge.server.url}/jwks.json",
        x5u=f"{forge.server.url}/cert.pem",
    )
    for path in PROTECTED:
        response = await gateway.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (path, response.text)


async def test_services_answer_normally_after_the_attacks(
    gateway: httpx.AsyncClient, forge: Forge, stack: DevStack
) -> None:
    account = await new_account(gateway)
    created = await gateway.post(
        "/api/tasks", json={"title": "still fine"}, headers=account.headers
    )
    assert created.status_code == 201
    assert stack.failed_process() is None
    for name in ("auth", "tasks"):
        ready = await gateway.get(f"{stack.url(name)}/health/ready")
        assert ready.status_code == 200, ready.text


# ---------------------------------------------------------------------------------------------
# Bodies

TEN_MB = 10 * 1024 * 1024


def deep_json(depth: int) -> bytes:
    return b'{"title": ' + b"[" * depth + b"]" * depth + b"}"


def bodies() -> dict[str, tuple[bytes, str]]:
    return {
        "deeply_nested_json": (deep_json(100_000), "application/json"),
        "deeply_nested_objects": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
        "invalid_utf8": (b'{"title": "\xff\xfe\xfd"}', "application/json"),
        "truncated_json": (b'{"title": "unterminated', "application/json"),
        "not_json": (b"title=hello", "application/json"),
        "form_content_type": (b"title=hello", "application/x-www-form-urlencoded"),
        "text_content_type": (b'{"title": "hello"}', "text/plain"),
        "xml": (b"<task><title>x</title></task>", "application/xml"),
        "multipart_garbage": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
        "json_null": (b"null", "application/json"),
        "json_list": (b"[]", "application/json"),
        "huge_number": (b'{"title": "x", "priority": 1' + b"0" * 5000 + b"}", "application/json"),
        "nan": (b'{"title": NaN}', "application/json"),
        "nul_in_title": (b'{"title": "a\\u0000b"}', "application/json"),
        "lone_surrogate": (b'{"title": "\\ud800"}', "application/json"),
        "empty": (b"", "application/json"),
    }


async def _ready(client: httpx.AsyncClient, stack: DevStack) -> None:
    for name in ("auth", "tasks"):
        ready = await client.get(f"{stack.url(name)}/health/ready")
        assert ready.status_code == 200, ready.text


@pytest.fixture(scope="module")
async def body_account(gateway_url: str) -> GatewayAccount:
    async with own_ip_client(gateway_url) as client:
        return await new_account(client)


@pytest.mark.parametrize("name", sorted(bodies()))
@pytest.mark.parametrize("target", ["gateway", "direct"])
async def test_malformed_bodies_are_4xx(
    gateway: httpx.AsyncClient,
    stack: DevStack,
    body_account: GatewayAccount,
    name: str,
    target: str,
) -> None:
    content, content_type = bodies()[name]
    headers = {**body_account.headers, "Content-Type": content_type}
    for service, path in (("tasks", "/api/tasks"), ("auth", "/auth/register")):
        url = path if target == "gateway" else f"{stack.url(service)}{path}"
        response = await gateway.post(url, content=content, headers=headers, timeout=30.0)
        assert 400 <= response.status_code < 500, (name, url, response.status_code, response.text)
        assert_error_shape(response)
    await _ready(gateway, stack)


@pytest.mark.parametrize("path", ["/api/tasks", "/auth/register", "/auth/login", "/auth/me"])
async def test_ten_megabyte_bodies_are_413_at_the_gateway(
    gateway: httpx.AsyncClient, body_account: GatewayAccount, path: str
) -> None:
    # The gateway answers 413 and closes the connection without reading the rest, so the
    # client must read while it writes (httpx would only report the broken pipe).
    method = "PATCH" if path == "/auth/me" else "POST"
    status, body = await raw_request(
        str(gateway.base_url),
        method,
        path,
        {**body_account.headers, "Content-Type": "application/json"},
        b'{"title": "' + b"x" * TEN_MB + b'"}',
    )
    assert status == 413, body[:300]
    # The gateway's own 413 in the design's shape (the json-errors plugin).
    assert b"content-type: application/json" in body.lower(), body[:300]
    assert b'"code":"payload_too_large"' in body, body[:300]
    assert (await gateway.get("/api/tasks", headers=body_account.headers)).status_code == 200


@pytest.mark.parametrize("path", ["/api/tasks", "/auth/register", "/auth/login"])
async def test_ten_megabyte_bodies_directly_to_a_service_are_4xx_without_hanging(
    gateway: httpx.AsyncClient, stack: DevStack, body_account: GatewayAccount, path: str
) -> None:
    service = path.split("/")[1].replace("api", "tasks")
    url = f"{stack.url(service)}{path}"
    content = b'{"title": "' + b"x" * TEN_MB + b'", "username": "u", "password": "p"}'
    started = time.monotonic()
    try:
        response = await gateway.post(
            url,
            content=content,
            headers={**body_account.headers, "Content-Type": "application/json"},
            timeout=60.0,
        )
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        # The service refuses a declared 10 MB body at once (413, `Connection: close`) without
        # reading it, so the client may see the connection end while still sending: not a 5xx.
        response = None
    assert time.monotonic() - started < 60
    if response is not None:
        assert 400 <= response.status_code < 500, response.text[:300]
        assert_error_shape(response)
    await _ready(gateway, stack)
    created = await gateway.post(
        f"{stack.url('tasks')}/api/tasks", json={"title": "after"}, headers=body_account.headers
    )
    assert created.status_code == 201


async def test_many_malformed_requests_at_once_leave_the_services_up(
    gateway: httpx.AsyncClient, stack: DevStack, body_account: GatewayAccount
) -> None:
    requests = [
        gateway.post(
            f"{stack.url('tasks')}/api/tasks",
            content=content,
            headers={**body_account.headers, "Content-Type": content_type},
            timeout=60.0,
        )
        for content, content_type in list(bodies().values()) * 3
    ]
    responses = await asyncio.gather(*requests)
    assert all(400 <= r.status_code < 500 for r in responses), [r.status_code for r in responses]
    await _ready(gateway, stack)
