"""Third-party OAuth and JOSE libraries, used unchanged, through the real gateway.

authlib's httpx client takes the token endpoint from the RFC 8414 document, logs in with the
password grant, refreshes by itself when its access token has expired, calls the tasks API, and
revokes; a wrong password raises authlib's error. joserfc verifies an access token from the
JWKS. This mirrors the "OAuth clients" example of docs/auth-api.md.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]
from e2e_support import new_account
from joserfc import jwt
from joserfc.jwk import KeySet

with warnings.catch_warnings():
    # authlib prefers the httpx2 package and says so once, on import; taskgate uses httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )
    from authlib.oauth2.rfc8414 import (  # type: ignore[import-untyped]
        AuthorizationServerMetadata,
    )

METADATA = "/auth/.well-known/oauth-authorization-server"

# Source addresses of their own (conftest uses 127.0.x.y, reliability_support 127.1.x.y), so the
# gateway's strict per-IP credential limit of one test does not reach another.
_addresses = itertools.count(0)


def _own_address() -> str:
    n = next(_addresses)
    return f"127.2.{n // 250}.{n % 250 + 2}"


@pytest.fixture
async def metadata(gateway: httpx.AsyncClient) -> dict[str, Any]:
    response = await gateway.get(METADATA)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture
async def oauth(metadata: dict[str, Any]) -> AsyncIterator[AsyncOAuth2Client]:
    """What a third-party developer writes: a public client, the endpoint from discovery."""
    async with AsyncOAuth2Client(
        client_id="third-party-e2e",
        token_endpoint=metadata["token_endpoint"],
        transport=httpx.AsyncHTTPTransport(local_address=_own_address()),
        timeout=10.0,
    ) as client:
        yield client


def test_authlib_accepts_the_metadata(metadata: dict[str, Any]) -> None:
    """authlib's RFC 8414 validator passes every field but one: it reads the empty
    `response_types_supported` (exact: there is no authorization endpoint) as missing."""
    document = AuthorizationServerMetadata(metadata)
    for key in document.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(document, f"validate_{key}")()
    assert metadata["response_types_supported"] == []
    assert metadata["grant_types_supported"] == ["password", "refresh_token"]


async def test_both_discovery_documents_agree(
    gateway: httpx.AsyncClient, gateway_url: str, metadata: dict[str, Any]
) -> None:
    openid = (await gateway.get("/auth/.well-known/openid-configuration")).json()
    assert openid == metadata
    assert metadata["issuer"] == f"{gateway_url}/auth"
    assert metadata["token_endpoint"] == f"{gateway_url}/auth/token"
    assert metadata["revocation_endpoint"] == f"{gateway_url}/auth/revoke"


async def test_authlib_password_grant_and_automatic_refresh(
    gateway: httpx.AsyncClient, gateway_url: str, oauth: AsyncOAuth2Client
) -> None:
    account = await new_account(gateway)

    token = await oauth.fetch_token(username=account.username, password=account.password)
    assert token["token_type"].lower() == "bearer"
    first_refresh = token["refresh_token"]
    assert (await oauth.get(f"{gateway_url}/api/tasks")).status_code == 200

    # The access token "expires": authlib refreshes on its own before the next call.
    oauth.token["expires_at"] = int(time.time()) - 60
    tasks = await oauth.get(f"{gateway_url}/api/tasks")
    assert tasks.status_code == 200, tasks.text
    assert oauth.token["refresh_token"] != first_refresh
    assert oauth.token["expires_at"] > time.time()


async def test_authlib_revocation_ends_the_login(
    gateway: httpx.AsyncClient, metadata: dict[str, Any], oauth: AsyncOAuth2Client
) -> None:
    account = await new_account(gateway)
    token = await oauth.fetch_token(username=account.username, password=account.password)

    revoked = await oauth.revoke_token(
        metadata["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200

    with pytest.raises(OAuthError) as refused:
        await oauth.refresh_token(metadata["token_endpoint"])
    assert refused.value.error == "invalid_grant"


async def test_authlib_raises_on_a_wrong_password(
    gateway: httpx.AsyncClient, oauth: AsyncOAuth2Client
) -> None:
    account = await new_account(gateway)
    with pytest.raises(OAuthError) as raised:
        await oauth.fetch_token(username=account.username, password="not the password")
    assert raised.value.error == "invalid_grant"
    assert not oauth.token  # the error body was not stored as a token


async def test_joserfc_verifies_an_access_token_from_the_jwks(
    gateway: httpx.AsyncClient, metadata: dict[str, Any]
) -> None:
    account = await new_account(gateway)
    jwks = await gateway.get(metadata["jwks_uri"])
    assert jwks.status_code == 200

    token = jwt.decode(
        account.access_token, KeySet.import_key_set(jwks.json()), algorithms=["RS256"]
    )

    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    assert token.claims["iss"] == metadata["issuer"]
    assert "tasks-api" in token.claims["aud"]
    assert token.claims["sub"] == account.user_id
    jwt.JWTClaimsRegistry(
        leeway=5,
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": "tasks-api"},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nbf={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)


async def test_the_gateways_own_limit_at_the_token_endpoint_is_an_oauth_error(
    gateway: httpx.AsyncClient, oauth: AsyncOAuth2Client
) -> None:
    """The e2e app limits are raised (conftest), so a 429 here is Traefik's credential limit
    (burst 10 per address): it must carry `error` too, or authlib would store the body as a
    token, the very bug of issue 14."""
    account = await new_account(gateway)
    raised: list[OAuthError] = []
    for _ in range(15):
        try:
            await oauth.fetch_token(username=account.username, password="not the password")
        except OAuthError as error:
            raised.append(error)
    assert len(raised) == 15
    assert {error.error for error in raised} == {"invalid_grant", "slow_down"}
    assert not oauth.token
