"""The auth database: users, refresh-token sessions (one per login), and emailed tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    username: Mapped[str] = mapped_column(String(32))
    # `core/identity_keys.py`: what uniqueness and look-ups compare, set with the value.
    email_key: Mapped[str] = mapped_column(Text)
    username_key: Mapped[str] = mapped_column(Text)
    # A new address asked for, waiting for its owner to open the link mailed to it; login,
    # resets and notices keep using `email` until then.
    pending_email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda e: [m.value for m in e]),
        default=Role.USER,
        server_default=Role.USER.value,
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    email_verified: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        # Uniqueness compares identity keys: "Alice", "alice" and its fullwidth twin are one.
        Index("uq_users_email_key", "email_key", unique=True),
        Index("uq_users_username_key", "username_key", unique=True),
        # The admin listing pages in this order.
        Index("ix_users_created_at_id", "created_at", "id"),
    )


class RefreshSession(Base):
    """One login: the family that every rotated refresh token of that login belongs to."""

    __tablename__ = "refresh_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    # The key a successor refresh token is derived from (HMAC of the presented token), so a
    # token re-presented within the grace window gets the same successor back. NULL for
    # logins older than migration 0005: they rotate without a grace window.
    rotation_secret: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # What the devices list shows; set at login and on every refresh.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    client_address: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_refresh_sessions_user_id", "user_id"),
        # What `sessions purge` looks for.
        Index("ix_refresh_sessions_expires_at", "expires_at"),
        Index(
            "ix_refresh_sessions_revoked_at",
            "revoked_at",
            postgresql_where=text("revoked_at IS NOT NULL"),
        ),
    )


class RefreshToken(Base):
    """A refresh token, stored only as the SHA-256 of its value."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("refresh_sessions.id", ondelete="CASCADE")
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when the token is exchanged; presenting it again afterwards is reuse.
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_refresh_tokens_session_id", "session_id"),)


class Revocation(Base):
    """One entry of the revocation feed, written only by database triggers (migration 0005)
    in the revoking transaction: a session revoked, or a user whose older access tokens all
    stopped counting (`token_version` rose, deactivated, deleted). `txid` (xid8) is left out
    of the model: SQLAlchemy has no type for it, and only the feed's SQL reads it."""

    __tablename__ = "revocations"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    user_id: Mapped[uuid.UUID] = mapped_column()
    token_version: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_revocations_created_at", "created_at"),
        CheckConstraint("kind IN ('session', 'user')", name="ck_revocations_kind"),
    )


class TokenPurpose(enum.StrEnum):
    PASSWORD_RESET = "password_reset"
    EMAIL_VERIFICATION = "email_verification"
    EMAIL_CHANGE = "email_change"


class EmailToken(Base):
    """A single-use token sent by mail, stored only as the SHA-256 of its value.

    `email` is the address it was sent to: the account's address for a reset or a
    verification, the pending address for an email change. Once that address is no longer the
    one it was sent for, the token is refused. Using a token deletes its row.
    """

    __tablename__ = "email_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_email_tokens_user_id_purpose", "user_id", "purpose"),
        CheckConstraint(
            "purpose IN ('password_reset', 'email_verification', 'email_change')",
            name="ck_email_tokens_purpose",
        ),
    )
