"""identity keys (one case-folding rule) and pending email changes

Expand: nullable `email_key`/`username_key` and `pending_email`. Backfill the keys in batches
with the service's own rule (`core/identity_keys.py`), refusing with a clear message if two
existing accounts fold to one key. Contract: keys NOT NULL, unique indexes on them instead of
the `lower()` indexes, and the `email_change` token purpose.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auth_service.core.identity_keys import identity_key

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
PURPOSES_BEFORE = "purpose IN ('password_reset', 'email_verification')"
PURPOSES_AFTER = "purpose IN ('password_reset', 'email_verification', 'email_change')"


def _backfill() -> None:
    bind = op.get_bind()
    seen: dict[tuple[str, str], str] = {}
    after = None
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, email, username FROM users"
                " WHERE CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)"
                " ORDER BY id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not rows:
            return
        updates = []
        for user_id, email, username in rows:
            keys = {"email": identity_key(email), "username": identity_key(username)}
            for field, key in keys.items():
                other = seen.setdefault((field, key), str(user_id))
                if other != str(user_id):
                    raise RuntimeError(
                        f"users {other} and {user_id} have the same {field} under the "
                        "case-folding rule; rename one of them, then run the migration again"
                    )
            updates.append(
                {"id": user_id, "email_key": keys["email"], "username_key": keys["username"]}
            )
        bind.execute(
            sa.text(
                "UPDATE users SET email_key = :email_key, username_key = :username_key "
                "WHERE id = :id"
            ),
            updates,
        )
        after = rows[-1][0]


def upgrade() -> None:
    op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("username_key", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("pending_email", sa.String(320), nullable=True))
    _backfill()
    op.alter_column("users", "email_key", nullable=False)
    op.alter_column("users", "username_key", nullable=False)
    op.create_index("uq_users_email_key", "users", ["email_key"], unique=True)
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_constraint("ck_email_tokens_purpose", "email_tokens", type_="check")
    op.create_check_constraint("ck_email_tokens_purpose", "email_tokens", PURPOSES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM email_tokens WHERE purpose = 'email_change'")
    op.drop_constraint("ck_email_tokens_purpose", "email_tokens", type_="check")
    op.create_check_constraint("ck_email_tokens_purpose", "email_tokens", PURPOSES_BEFORE)
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.drop_index("uq_users_username_key", table_name="users")
    op.drop_index("uq_users_email_key", table_name="users")
    op.drop_column("users", "pending_email")
    op.drop_column("users", "username_key")
    op.drop_column("users", "email_key")
