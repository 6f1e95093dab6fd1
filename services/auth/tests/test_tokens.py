"""Access tokens: verifiable from the JWKS alone, and refused by /auth/me when they should be."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from auth_factories import ISSUER, Account, LoginFn, RegisterFn, SqlFn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth_service.core.signing_keys import SigningKey, rfc7638_thumbprint


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/auth/me", headers=_bearer(token))


def _claims(account: Account, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": account.id,
        "aud": ["tasks-api", "auth-api"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),
        "role": "user",
        "ver": 0,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: SigningKey, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(
        claims,
        key.private_key,
        algorithm="RS256",
        headers={"kid": key.kid, "typ": "at+jwt", **headers},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_token_verifies_with_pyjwt_from_the_jwks_alone(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn
) -> None:
    account = await register()
    token = (await login(account))["access_token"]

    jwks_response = await client.get("/auth/.well-known/jwks.json")
    assert jwks_response.status_code == 200
    assert jwks_response.headers["cache-control"] == "public, max-age=300"
    jwks = jwt.PyJWKSet.from_dict(jwks_response.json())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])

    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="tasks-api", issuer=ISSUER)
    assert claims["sub"] == account.id
    assert "tasks-api" in claims["aud"]
    assert claims["role"] == "user"
    assert claims["ver"] == 0
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] <= claims["iat"] + 1
    uuid.UUID(claims["sid"])
    assert claims["jti"]


async def test_kid_is_the_rfc7638_thumbprint(client: httpx.AsyncClient) -> None:
    jwk = (await client.get("/auth/.well-known/jwks.json")).json()["keys"][0]
    assert jwk["kid"] == rfc7638_thumbprint(jwk)
    assert {"kty": "RSA", "use": "sig", "alg": "RS256"}.items() <= jwk.items()
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()  # never the private part


def test_thumbprint_matches_the_rfc7638_example() -> None:
    """RFC 7638 section 3.1 gives this key and thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
        "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG"
        "jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }
    assert rfc7638_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_openid_configuration(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public, max-age=")
    body = response.json()
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert body["token_endpoint"] == f"{ISSUER}/token"
    # Not an OpenID provider: no ID token, so no ID-token algorithm (test_oauth_clients.py has
    # the whole document). The access tokens' algorithm is each JWK's `alg`.
    assert "id_token_signing_alg_values_supported" not in body
    jwks = (await client.get(body["jwks_uri"])).json()
    assert {key["alg"] for key in jwks["keys"]} == {"RS256"}


async def test_a_token_signed_by_us_by_hand_is_accepted(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn, signing_key: SigningKey
) -> None:
    """Control case for the rejections below: the forging helper itself makes valid tokens
    (for a session that exists: see the next test)."""
    account = await register()
    sid = jwt.decode((await login(account))["access_token"], options={"verify_signature": False})[
        "sid"
    ]
    response = await _me(client, _sign(signing_key, _claims(account, sid=sid)))
    assert response.status_code == 200


async def test_a_validly_signed_token_for_an_unknown_session_is_refused(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn, signing_key: SigningKey
) -> None:
    """Fails closed: no session row (never made, or purged) is not "not revoked". A token
    with no `sid` at all is not one auth issued: the shared verifier refuses it outright."""
    account = await register()
    await login(account)
    response = await _me(client, _sign(signing_key, _claims(account, sid=str(uuid.uuid4()))))
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    response = await _me(client, _sign(signing_key, _claims(account, sid=None)))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def _forged_cases(signing_key: SigningKey, account: Account) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    good = _claims(account)
    public_pem = signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header_none = _b64(
        json.dumps({"alg": "none", "typ": "at+jwt", "kid": signing_key.kid}).encode()
    )
    unsigned = f"{header_none}.{_b64(json.dumps(good).encode())}."
    hs256_header = _b64(
        json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": signing_key.kid}).encode()
    )
    import hashlib
    import hmac

    hs_body = f"{hs256_header}.{_b64(json.dumps(good).encode())}"
    hs_sig = _b64(hmac.new(public_pem, hs_body.encode(), hashlib.sha256).digest())
    other_key = SigningKey.from_private_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    valid = _sign(signing_key, good)
    head, _, sig = valid.split(".")
    tampered_claims = {**good, "role": "admin"}
    tampered = f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{sig}"
    return {
        "expired": (
            _sign(signing_key, _claims(account, iat=now - 4000, nbf=now - 4000, exp=now - 3000)),
            "token_expired",
        ),
        "not_yet_valid": (_sign(signing_key, _claims(account, nbf=now + 3600)), "invalid_token"),
        "alg_none": (unsigned, "invalid_token"),
        "hs256_with_public_key": (f"{hs_body}.{hs_sig}", "invalid_token"),
        "unknown_kid": (_sign(other_key, good), "invalid_token"),
        "known_kid_other_key": (
            jwt.encode(
                good,
                other_key.private_key,
                algorithm="RS256",
                headers={"kid": signing_key.kid, "typ": "at+jwt"},
            ),
            "invalid_token",
        ),
        "wrong_issuer": (
            _sign(signing_key, _claims(account, iss="http://evil/auth")),
            "invalid_token",
        ),
        "wrong_audience": (
            _sign(signing_key, _claims(account, aud=["other-api"])),
            "invalid_token",
        ),
        "tampered_payload": (tampered, "invalid_token"),
        "not_an_access_token_typ": (_sign(signing_key, good, typ="JWT"), "invalid_token"),
        "missing_exp": (_sign(signing_key, _claims(account, exp=None)), "invalid_token"),
        # The verifier both services share requires every claim auth writes.
        "missing_nbf": (_sign(signing_key, _claims(account, nbf=None)), "invalid_token"),
        "missing_jti": (_sign(signing_key, _claims(account, jti=None)), "invalid_token"),
        "missing_ver": (_sign(signing_key, _claims(account, ver=None)), "invalid_token"),
        "missing_role": (_sign(signing_key, _claims(account, role=None)), "invalid_token"),
        "sid_not_a_uuid": (_sign(signing_key, _claims(account, sid="s-1")), "invalid_token"),
        "sub_uuid_in_braces": (
            _sign(signing_key, _claims(account, sub="{" + account.id + "}")),
            "invalid_token",
        ),
        "kid_too_long": (_sign(signing_key, good, kid="k" * 257), "invalid_token"),
        "sub_not_a_uuid": (_sign(signing_key, _claims(account, sub="admin")), "invalid_token"),
        "garbage": ("not.a.jwt", "invalid_token"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not_yet_valid",
        "alg_none",
        "hs256_with_public_key",
        "unknown_kid",
        "known_kid_other_key",
        "wrong_issuer",
        "wrong_audience",
        "tampered_payload",
        "not_an_access_token_typ",
        "missing_exp",
        "missing_nbf",
        "missing_jti",
        "missing_ver",
        "missing_role",
        "sid_not_a_uuid",
        "sub_uuid_in_braces",
        "kid_too_long",
        "sub_not_a_uuid",
        "garbage",
    ],
)
async def test_me_rejects_bad_tokens(
    client: httpx.AsyncClient, register: RegisterFn, signing_key: SigningKey, case: str
) -> None:
    account = await register()
    token, code = _forged_cases(signing_key, account)[case]
    response = await _me(client, token)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_refresh_token_is_not_a_bearer_token(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn
) -> None:
    tokens = await login(await register())
    response = await _me(client, tokens["refresh_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_missing_bearer_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_version_below_the_users_is_revoked(
    client: httpx.AsyncClient,
    register: RegisterFn,
    login: LoginFn,
    sql: SqlFn,
) -> None:
    account = await register()
    token = (await login(account))["access_token"]
    await sql("UPDATE users SET token_version = token_version + 1")
    response = await _me(client, token)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("UPDATE users SET is_active = false", "user_inactive"),
        ("DELETE FROM users", "invalid_token"),
    ],
)
async def test_inactive_or_deleted_user_gets_401(
    client: httpx.AsyncClient,
    register: RegisterFn,
    login: LoginFn,
    sql: SqlFn,
    statement: str,
    code: str,
) -> None:
    account = await register()
    token = (await login(account))["access_token"]
    await sql(statement)
    response = await _me(client, token)
    assert response.status_code == 401
    assert response.json()["code"] == code


async def test_inactive_user_cannot_log_in(
    client: httpx.AsyncClient, register: RegisterFn, sql: SqlFn
) -> None:
    account = await register()
    await sql("UPDATE users SET is_active = false")
    response = await client.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "user_inactive"
