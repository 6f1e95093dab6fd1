"""Standard clients, unchanged, against the app in process: the discovery documents say exactly
what works, authlib logs in, refreshes and revokes, and joserfc verifies an access token from
the JWKS. tests/e2e/test_oauth_clients_e2e.py does the same through the gateway."""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from auth_factories import ISSUER, Account, MakeAccountFn, bearer
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet

with warnings.catch_warnings():
    # authlib prefers the httpx2 package and says so once, on import; taskgate uses httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

METADATA = "/auth/.well-known/oauth-authorization-server"
OPENID = "/auth/.well-known/openid-configuration"

EXPECTED_METADATA = {
    "issuer": ISSUER,
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
    "revocation_endpoint": f"{ISSUER}/revoke",
    "grant_types_supported": ["password", "refresh_token"],
    "response_types_supported": [],
    "token_endpoint_auth_methods_supported": ["none"],
    "revocation_endpoint_auth_methods_supported": ["none"],
}


@pytest.fixture
async def oauth(app: FastAPI) -> AsyncIterator[AsyncOAuth2Client]:
    """authlib's httpx client for a public client, endpoints taken from the RFC 8414 document."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        metadata = (await http.get(METADATA)).json()
    async with AsyncOAuth2Client(
        client_id="taskgate-tests",
        token_endpoint=metadata["token_endpoint"],
        token_endpoint_auth_method="none",
        revocation_endpoint_auth_method="none",
        transport=httpx.ASGITransport(app=app),
    ) as client:
        client.metadata["revocation_endpoint"] = metadata["revocation_endpoint"]
        yield client


async def test_both_documents_say_exactly_what_the_endpoints_accept(
    client: httpx.AsyncClient,
) -> None:
    metadata = await client.get(METADATA)
    openid = await client.get(OPENID)
    for response in (metadata, openid):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.json() == EXPECTED_METADATA
    # Nothing that does not exist: no authorization endpoint, no ID token, no scopes.
    assert (
        not {
            "authorization_endpoint",
            "id_token_signing_alg_values_supported",
            "subject_types_supported",
            "scopes_supported",
            "userinfo_endpoint",
        }
        & openid.json().keys()
    )


async def test_every_advertised_endpoint_exists(client: httpx.AsyncClient) -> None:
    metadata = (await client.get(METADATA)).json()
    jwks = await client.get(metadata["jwks_uri"])
    assert jwks.status_code == 200
    assert jwks.json()["keys"]
    for name in ("token_endpoint", "revocation_endpoint"):
        response = await client.post(metadata[name], data={})
        assert response.status_code == 400, name  # invalid_request, not 404 or 405
        assert response.json()["error"] == "invalid_request"


async def test_every_advertised_grant_type_works(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    metadata = (await client.get(METADATA)).json()
    account = await make_account()
    forms: dict[str, dict[str, str]] = {
        "password": {"username": account.username, "password": account.password},
    }
    refresh_token: str | None = None
    for grant_type in metadata["grant_types_supported"]:
        form = forms.get(grant_type, {})
        if grant_type == "refresh_token":
            assert refresh_token is not None
            form = {"refresh_token": refresh_token}
        response = await client.post(
            metadata["token_endpoint"], data={"grant_type": grant_type, **form}
        )
        assert response.status_code == 200, (grant_type, response.text)
        refresh_token = response.json()["refresh_token"]
    assert set(metadata["grant_types_supported"]) == {"password", "refresh_token"}


async def _fetch(oauth: AsyncOAuth2Client, account: Account) -> dict[str, Any]:
    token: dict[str, Any] = await oauth.fetch_token(
        username=account.username, password=account.password
    )
    return token


async def test_authlib_logs_in_refreshes_by_itself_and_revokes(
    oauth: AsyncOAuth2Client, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    token = await _fetch(oauth, account)
    assert token["token_type"].lower() == "bearer"
    first_refresh = token["refresh_token"]
    assert (await oauth.get("http://testserver/auth/me")).json()["id"] == account.id

    oauth.token["expires_at"] = int(time.time()) - 10  # authlib now thinks it has expired
    me = await oauth.get("http://testserver/auth/me")
    assert me.status_code == 200
    assert oauth.token["refresh_token"] != first_refresh
    assert oauth.token["expires_at"] > time.time()

    revoked = await oauth.revoke_token(
        oauth.metadata["revocation_endpoint"],
        token=oauth.token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    with pytest.raises(OAuthError) as raised:
        await oauth.refresh_token(oauth.metadata["token_endpoint"])
    assert raised.value.error == "invalid_grant"


async def test_authlib_raises_on_a_wrong_password(
    oauth: AsyncOAuth2Client, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    with pytest.raises(OAuthError) as raised:
        await oauth.fetch_token(username=account.username, password="wrong password")
    assert raised.value.error == "invalid_grant"
    assert raised.value.description == "Incorrect username or password"
    assert not oauth.token  # the error body was not taken for a token


async def test_joserfc_verifies_an_access_token_from_the_jwks(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": account.username, "password": account.password},
    )
    access_token = response.json()["access_token"]
    metadata = (await client.get(METADATA)).json()
    keys = KeySet.import_key_set((await client.get(metadata["jwks_uri"])).json())

    token = jwt.decode(access_token, keys, algorithms=["RS256"])

    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "RS256"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": "tasks-api"},
        sub={"essential": True, "value": account.id},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)
    assert (await client.get("/auth/me", headers=bearer(access_token))).status_code == 200
