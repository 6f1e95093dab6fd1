"""sessions as devices, race-safe refresh, and the revocation feed

- `refresh_sessions`: `rotation_secret` (per-login key from which a successor refresh token is
  derived, so a token re-presented within the grace window gets the same successor back),
  `last_used_at`, `user_agent`, `client_address` (what the devices list shows).
- `revocations`: an append-only feed of what was revoked, written by triggers in the same
  transaction as the revocation itself, whatever code path made it: a session revoked, a user
  whose `token_version` rose, who was deactivated or deleted. `txid` lets a reader hand out
  only entries no concurrent transaction can still precede (docs/sessions.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)

# One statement each: asyncpg prepares what it runs, and a prepared statement is one command.
TRIGGERS = [
    """
CREATE FUNCTION record_session_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revocations (kind, session_id, user_id)
    VALUES ('session', NEW.id, NEW.user_id);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER refresh_sessions_revoked
AFTER UPDATE OF revoked_at ON refresh_sessions
FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
EXECUTE FUNCTION record_session_revocation()
""",
    """
CREATE FUNCTION record_user_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO revocations (kind, user_id, token_version, is_active)
        VALUES ('user', OLD.id, OLD.token_version, false);
        RETURN NULL;
    END IF;
    INSERT INTO revocations (kind, user_id, token_version, is_active)
    VALUES ('user', NEW.id, NEW.token_version, NEW.is_active);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER users_revoked
AFTER UPDATE OF token_version, is_active ON users
FOR EACH ROW WHEN (
    NEW.token_version > OLD.token_version OR (OLD.is_active AND NOT NEW.is_active)
)
EXECUTE FUNCTION record_user_revocation()
""",
    """
CREATE TRIGGER users_deleted
AFTER DELETE ON users
FOR EACH ROW EXECUTE FUNCTION record_user_revocation()
""",
]


def upgrade() -> None:
    op.add_column("refresh_sessions", sa.Column("rotation_secret", sa.LargeBinary(32)))
    op.add_column("refresh_sessions", sa.Column("last_used_at", TIMESTAMP))
    op.add_column("refresh_sessions", sa.Column("user_agent", sa.String(256)))
    op.add_column("refresh_sessions", sa.Column("client_address", sa.String(64)))
    # Raw SQL: SQLAlchemy has no type for xid8.
    op.execute(
        """
        CREATE TABLE revocations (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            kind varchar(16) NOT NULL CONSTRAINT ck_revocations_kind
                CHECK (kind IN ('session', 'user')),
            session_id uuid,
            user_id uuid NOT NULL,
            token_version integer,
            is_active boolean,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.create_index("ix_revocations_created_at", "revocations", ["created_at"])
    # The feed reads in (txid, seq) order after a cursor: a range scan however large it grows.
    op.execute("CREATE INDEX ix_revocations_txid_seq ON revocations (txid, seq)")
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER users_deleted ON users")
    op.execute("DROP TRIGGER users_revoked ON users")
    op.execute("DROP TRIGGER refresh_sessions_revoked ON refresh_sessions")
    op.execute("DROP FUNCTION record_user_revocation()")
    op.execute("DROP FUNCTION record_session_revocation()")
    op.drop_table("revocations")
    op.drop_column("refresh_sessions", "client_address")
    op.drop_column("refresh_sessions", "user_agent")
    op.drop_column("refresh_sessions", "last_used_at")
    op.drop_column("refresh_sessions", "rotation_secret")
