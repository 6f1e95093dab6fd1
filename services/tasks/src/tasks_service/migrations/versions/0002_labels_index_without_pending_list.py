"""labels index without a pending list

A GIN index with `fastupdate` (PostgreSQL's default) queues new entries in a pending list and
merges it into the index when the list is full, inside whichever insert filled it: that insert
then took ~300 ms (the creates' p99 in `make bench`, while their median was 7 ms). Without it,
every insert pays its small share.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX ix_tasks_labels SET (fastupdate = off)")
    # Entries already pending would otherwise wait for the next vacuum.
    op.execute("SELECT gin_clean_pending_list('ix_tasks_labels'::regclass)")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_tasks_labels RESET (fastupdate)")
