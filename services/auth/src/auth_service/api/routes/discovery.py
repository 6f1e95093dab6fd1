"""Discovery: the JWKS, and the server's metadata at the RFC 8414 and the OpenID addresses.

Both metadata documents are one and the same: this is an OAuth 2.0 authorization server with a
token endpoint (password and refresh_token grants) and a revocation endpoint, for public
clients. It is not an OpenID provider (no authorization endpoint, no ID token), so no OpenID
field claims otherwise; the document stays at `openid-configuration` because clients (and the
tasks service) find the JWKS there.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from auth_service.api import PREFIX
from auth_service.api.deps import Context
from auth_service.context import AuthContext
from auth_service.schemas import AuthorizationServerMetadata, Jwks

router = APIRouter(prefix=f"{PREFIX}/.well-known", tags=["discovery"])


def _cache(response: Response, max_age: int) -> None:
    response.headers["Cache-Control"] = f"public, max-age={max_age}"


@router.get(
    "/jwks.json",
    response_model=Jwks,
    summary="The public keys that verify access tokens",
    operation_id="getJwks",
)
async def jwks(ctx: Context, response: Response) -> dict[str, list[dict[str, str]]]:
    _cache(response, ctx.settings.jwks_max_age_seconds)
    return ctx.keys.jwks()


def _metadata(ctx: AuthContext) -> AuthorizationServerMetadata:
    """What the endpoints accept, and nothing they do not (docs/decisions.md: "OAuth 2.0
    endpoints")."""
    issuer = ctx.settings.issuer
    return AuthorizationServerMetadata(
        issuer=issuer,
        token_endpoint=f"{issuer}/token",
        jwks_uri=ctx.settings.jwks_uri,
        revocation_endpoint=f"{issuer}/revoke",
        grant_types_supported=["password", "refresh_token"],
        response_types_supported=[],  # no authorization endpoint
        token_endpoint_auth_methods_supported=["none"],
        revocation_endpoint_auth_methods_supported=["none"],
    )


@router.get(
    "/oauth-authorization-server",
    response_model=AuthorizationServerMetadata,
    summary="OAuth 2.0 authorization server metadata (RFC 8414)",
    operation_id="getAuthorizationServerMetadata",
)
async def oauth_authorization_server(
    ctx: Context, response: Response
) -> AuthorizationServerMetadata:
    _cache(response, ctx.settings.jwks_max_age_seconds)
    return _metadata(ctx)


@router.get(
    "/openid-configuration",
    response_model=AuthorizationServerMetadata,
    summary="The same metadata at the OpenID discovery address (where the JWKS is found); "
    "there are no ID tokens",
    operation_id="getOpenidConfiguration",
)
async def openid_configuration(ctx: Context, response: Response) -> AuthorizationServerMetadata:
    _cache(response, ctx.settings.jwks_max_age_seconds)
    return _metadata(ctx)
