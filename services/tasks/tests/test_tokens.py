"""Every token rejection of the design, against auth's real key and JWKS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tasks_factories import (
    AuthServer,
    User,
    bearer,
    claims_for,
    hs256_with_public_key,
    metric,
    sign,
    unsigned,
)

from auth_service.core.signing_keys import SigningKey, generate_private_key_pem
from auth_service.core.signing_keys import SigningKey as Key

Forge = Callable[[SigningKey, str, uuid.UUID], str]


def _other_key() -> SigningKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = serialization.load_pem_private_key(generate_private_key_pem(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return Key.from_private_key(private)


OTHER_KEY = _other_key()
NOW = int(time.time())
INVALID = "invalid_token"


def signed(
    header: dict[str, Any] | None = None, key: SigningKey | None = None, **claims: Any
) -> Forge:
    """A forger: auth's real key (or `key`), auth-like claims with `claims` changed."""

    def forge(auth_key: SigningKey, issuer: str, subject: uuid.UUID) -> str:
        return sign(key or auth_key, claims_for(issuer, subject, **claims), **(header or {}))

    return forge


CASES: dict[str, tuple[Forge, str, str]] = {
    # name: (forge(auth key, issuer, subject), response code, rejection reason in metrics)
    "alg none": (lambda k, i, s: unsigned(k, claims_for(i, s)), INVALID, "bad_algorithm"),
    "HS256 with the public key": (
        lambda k, i, s: hs256_with_public_key(k, claims_for(i, s)),
        INVALID,
        "bad_algorithm",
    ),
    "RS512": (lambda k, i, s: _rs512(k, claims_for(i, s)), INVALID, "bad_algorithm"),
    "not a JWT": (lambda k, i, s: "not.a.jwt", INVALID, "malformed"),
    "garbage": (lambda k, i, s: "abc", INVALID, "malformed"),
    "no typ": (signed({"typ": None}), INVALID, "not_access_token"),
    "typ JWT (an ID token)": (signed({"typ": "JWT"}), INVALID, "not_access_token"),
    "unknown kid": (signed({"kid": OTHER_KEY.kid}, key=OTHER_KEY), INVALID, "unknown_key"),
    "no kid": (signed({"kid": None}), INVALID, "unknown_key"),
    "another key claiming auth's kid": (
        lambda k, i, s: sign(OTHER_KEY, claims_for(i, s), kid=k.kid),
        INVALID,
        "bad_signature",
    ),
    "tampered payload": (lambda k, i, s: _tampered(k, i, s), INVALID, "bad_signature"),
    "wrong issuer": (signed(iss="http://evil.example/auth"), INVALID, "wrong_issuer"),
    "audience without tasks-api": (signed(aud=["auth-api"]), INVALID, "wrong_audience"),
    "expired": (signed(iat=NOW - 1000, nbf=NOW - 1000, exp=NOW - 100), "token_expired", "expired"),
    "not yet valid (nbf)": (signed(nbf=NOW + 600), INVALID, "not_yet_valid"),
    # `nbf` is now required (the shared verifier), so it stays in and `iat` alone is late.
    "issued in the future (iat)": (signed(iat=NOW + 600), INVALID, "not_yet_valid"),
    "no exp": (signed(exp=None), INVALID, "invalid_claims"),
    "no iat": (signed(iat=None), INVALID, "invalid_claims"),
    "no aud": (signed(aud=None), INVALID, "invalid_claims"),
    "no iss": (signed(iss=None), INVALID, "invalid_claims"),
    "no sub": (signed(sub=None), INVALID, "invalid_claims"),
    # Every claim auth writes is required by the one verifier both services share.
    "no nbf": (signed(nbf=None), INVALID, "invalid_claims"),
    "no jti": (signed(jti=None), INVALID, "invalid_claims"),
    "no sid": (signed(sid=None), INVALID, "invalid_claims"),
    "no role": (signed(role=None), INVALID, "invalid_claims"),
    "no ver": (signed(ver=None), INVALID, "invalid_claims"),
    "sid not a UUID": (signed(sid="session-1"), INVALID, "invalid_claims"),
    "ver not an integer": (signed(ver="1"), INVALID, "invalid_claims"),
    "ver negative": (signed(ver=-1), INVALID, "invalid_claims"),
    "ver a boolean": (signed(ver=True), INVALID, "invalid_claims"),
    "jti a number": (signed(jti=7), INVALID, "invalid_claims"),
    "role empty": (signed(role=""), INVALID, "invalid_claims"),
    "kid longer than 256 characters": (signed({"kid": "k" * 257}), INVALID, "unknown_key"),
    "sub not a UUID": (signed(sub="alice"), INVALID, "invalid_claims"),
    "sub a number": (signed(sub=42), INVALID, "invalid_claims"),
    "sub a UUID in braces": (
        signed(sub="{6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11}"),
        INVALID,
        "invalid_claims",
    ),
}


def _tampered(key: SigningKey, issuer: str, subject: uuid.UUID) -> str:
    genuine = sign(key, claims_for(issuer, subject))
    forged = sign(key, claims_for(issuer, uuid.uuid4()))
    head, _, signature = genuine.split(".")
    return f"{head}.{forged.split('.')[1]}.{signature}"


def _rs512(key: SigningKey, claims: dict[str, Any]) -> str:
    import jwt

    return jwt.encode(
        claims, key.private_key, algorithm="RS512", headers={"kid": key.kid, "typ": "at+jwt"}
    )


@pytest.mark.parametrize("case", list(CASES))
async def test_rejected_tokens(
    client: httpx.AsyncClient, auth_server: AuthServer, auth_key: SigningKey, alice: User, case: str
) -> None:
    forge, code, reason = CASES[case]
    token = forge(auth_key, auth_server.issuer, alice.id)
    before = await metric(client, "tasks_token_rejections_total", reason=reason)
    response = await client.get("/api/tasks", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"detail", "code"}
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="tasks-api", error="invalid_token"')
    assert await metric(client, "tasks_token_rejections_total", reason=reason) == before + 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": "Bearer"}]
)
async def test_missing_token(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/api/tasks", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "A Bearer access token is required",
        "code": "not_authenticated",
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tasks-api"'


async def test_every_api_route_needs_a_token(client: httpx.AsyncClient, alice: User) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    some_id = "6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11"
    api_paths = {path: ops for path, ops in spec["paths"].items() if path.startswith("/api/")}
    assert len(api_paths) >= 6
    for path, methods in api_paths.items():
        url = path.replace("{task_id}", some_id).replace("{user_id}", str(alice.id))
        for method in methods:
            response = await client.request(method.upper(), url, json={"title": "x"})
            assert response.status_code == 401, (method, path)


async def test_real_tokens_are_accepted_with_small_clock_skew(
    client: httpx.AsyncClient, auth_server: AuthServer, auth_key: SigningKey, alice: User
) -> None:
    real = await client.get("/api/tasks", headers=alice.headers)
    assert real.status_code == 200
    # Within the 30 s leeway on either side.
    skewed = sign(
        auth_key,
        claims_for(
            auth_server.issuer, alice.id, iat=NOW + 10, nbf=NOW + 10, exp=int(time.time()) - 10
        ),
    )
    response = await client.get("/api/tasks", headers=bearer(skewed))
    assert response.status_code == 200, response.text
    # A plain string `aud` naming tasks-api is fine too.
    single = sign(auth_key, claims_for(auth_server.issuer, alice.id, aud="tasks-api"))
    assert (await client.get("/api/tasks", headers=bearer(single))).status_code == 200
