"""Request and response bodies of the auth API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from auth_service.models import Role

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"

Username = Annotated[
    str,
    StringConstraints(min_length=4, max_length=32, pattern=USERNAME_PATTERN),
    Field(description="4-32 letters, digits, `_`, `.` or `-`; unique regardless of case"),
]


def _lower_domain(email: str) -> str:
    """Domains are case-insensitive; the local part is kept as typed (uniqueness ignores case)."""
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[
    EmailStr,
    StringConstraints(max_length=320),
    AfterValidator(_lower_domain),
    Field(description="A deliverable-looking address; unique regardless of case"),
]
Password = Annotated[str, Field(min_length=8, max_length=128, description="8-128 characters")]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username
    password: Password


class LoginRequest(BaseModel):
    """Log in with a username or an email address (either field may carry either)."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    email: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    password: Annotated[str, Field(min_length=1, max_length=128)]

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginRequest:
        if not (self.username or self.email):
            raise ValueError("username or email is required")
        return self

    @property
    def identifier(self) -> str:
        return (self.username or self.email or "").strip()


class AdminCreateUserRequest(RegisterRequest):
    role: Role = Role.USER


class AdminUpdateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> AdminUpdateUserRequest:
        if self.role is None and self.is_active is None:
            raise ValueError("give role and/or is_active")
        return self


CurrentPassword = Annotated[
    str, Field(min_length=1, max_length=128, description="The account's current password")
]


class UpdateMeRequest(BaseModel):
    """A new username takes effect at once; a new email needs `current_password` and stays
    `pending_email` until the link mailed to it is opened."""

    model_config = ConfigDict(extra="forbid")

    username: Username | None = None
    email: Email | None = None
    current_password: CurrentPassword | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateMeRequest:
        if self.username is None and self.email is None:
            raise ValueError("give username and/or email")
        if self.email is not None and self.current_password is None:
            raise ValueError("changing the email needs current_password")
        return self


class ChangePasswordRequest(BaseModel):
    """`old_password` is accepted for `current_password` (for `/users/me/password` clients)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    current_password: Annotated[
        CurrentPassword,
        Field(validation_alias=AliasChoices("current_password", "old_password")),
    ]
    new_password: Password


MailedToken = Annotated[
    str, Field(min_length=1, max_length=512, description="The `token` parameter of the link")
]


class ForgotPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class Accepted(BaseModel):
    detail: str


class ResetPasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: MailedToken
    new_password: Password


class VerifyEmailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: MailedToken


class ConfirmEmailChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: MailedToken


RefreshTokenValue = Annotated[str, Field(min_length=1, max_length=4096)]


class RefreshRequest(BaseModel):
    """The refresh token; leave it out to use the refresh cookie (browser mode)."""

    model_config = ConfigDict(extra="ignore")

    refresh_token: RefreshTokenValue | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    role: Role
    is_active: bool
    email_verified: bool
    pending_email: str | None = Field(
        None, description="A new address waiting for its confirmation link to be opened"
    )
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserOut]
    total: int = Field(description="Users in all pages")
    limit: int
    offset: int


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str | None = Field(
        None, description="Absent in cookie mode, where it travels in the refresh cookie"
    )
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires")


class Jwk(BaseModel):
    kty: Literal["RSA"]
    kid: str
    use: Literal["sig"]
    alg: Literal["RS256"]
    n: str
    e: str


class Jwks(BaseModel):
    keys: list[Jwk]


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 metadata; the openid-configuration document is the same one. It lists exactly
    what the endpoints accept: no authorization endpoint, no ID token, no scopes."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    grant_types_supported: list[Literal["password", "refresh_token"]]
    response_types_supported: list[str] = Field(
        description="Empty: there is no authorization endpoint"
    )
    token_endpoint_auth_methods_supported: list[Literal["none"]]
    revocation_endpoint_auth_methods_supported: list[Literal["none"]]


class OAuthErrorBody(BaseModel):
    """An error of the OAuth endpoints (RFC 6749 section 5.2, RFC 7009 section 2.2.1), with the
    design's `detail` and `code` beside `error` and `error_description`."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "unsupported_token_type",
        "slow_down",
        "temporarily_unavailable",
        "server_error",
    ]
    error_description: str
    detail: str
    code: str


class SessionOut(BaseModel):
    """One live login of a user (a device): `GET /auth/sessions`."""

    id: uuid.UUID = Field(description="The session id: the `sid` of its access tokens")
    created_at: datetime = Field(description="When the login happened")
    last_used_at: datetime | None = Field(
        description="The login or its latest refresh; null only for a login older than this "
        "field that has not refreshed since"
    )
    expires_at: datetime = Field(description="When it ends unless refreshed again")
    device: str | None = Field(
        description='A short description of the client, e.g. "Firefox on Linux", from its '
        "User-Agent at the latest login or refresh"
    )
    client_address: str | None = Field(
        description='The network it was last used from: IPv4 /24 ("203.0.113.0/24"), IPv6 /48'
    )
    current: bool = Field(description="Whether this is the login of the access token presented")


class SessionPage(BaseModel):
    items: list[SessionOut]
    total: int = Field(description="Live sessions in all pages")
    limit: int
    offset: int
