"""Public key discovery: the JWKS and an OpenID-style configuration document."""

from __future__ import annotations

from fastapi import APIRouter, Response

from auth_service.api import PREFIX
from auth_service.api.deps import Context
from auth_service.schemas import Jwks, OpenIdConfiguration

router = APIRouter(prefix=f"{PREFIX}/.well-known", tags=["discovery"])


def _cache(response: Response, max_age: int) -> None:
    response.headers["Cache-Control"] = f"public, max-age={max_age}"


@router.get("/jwks.json", response_model=Jwks, summary="The public keys that verify access tokens")
async def jwks(ctx: Context, response: Response) -> dict[str, list[dict[str, str]]]:
    _cache(response, ctx.settings.jwks_max_age_seconds)
    return ctx.keys.jwks()


@router.get(
    "/openid-configuration",
    response_model=OpenIdConfiguration,
    summary="Issuer metadata: where the keys and the token endpoint are",
)
async def openid_configuration(ctx: Context, response: Response) -> OpenIdConfiguration:
    _cache(response, ctx.settings.jwks_max_age_seconds)
    issuer = ctx.settings.issuer
    return OpenIdConfiguration(
        issuer=issuer,
        jwks_uri=ctx.settings.jwks_uri,
        token_endpoint=f"{issuer}/token",
        response_types_supported=["token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        token_endpoint_auth_methods_supported=["none"],
        grant_types_supported=["password", "refresh_token"],
    )
