"""change log

Every insert, visible update and delete of a task, board or column appends an entry to the
owner's change log, written by a trigger in the writing transaction: no change without its
entry, no entry without its change, whichever code path wrote. The log feeds incremental sync
(`GET /api/changes`) and the event stream (`GET /api/events`); `pg_notify('taskgate_changes',
owner)` at commit wakes every tasks process's streams of that owner.

Commit order per owner: a cursor is the `seq` of the last entry a client has. A gapless read
needs the owner's entries to become visible in `seq` order, so every write of one owner holds
the owner's advisory lock until it commits (`lock_owner(owner)`, taken before any row): the
next writer of that owner only draws a `seq` once the previous one is visible. The trigger
refuses a change made without that lock, so a code path that forgets it fails its tests instead
of losing an entry under concurrency. Bulk loads (benchmark and test seeding) may turn the log
off for their transaction with `SET LOCAL taskgate.change_log = 'off'`.

Entries are kept for TASKS_CHANGES_RETENTION_HOURS; the purge records, per owner, the last
`seq` it removed (`change_horizons`), and a cursor below it is answered 410 `sync_expired`.

`stream_tickets`: single-use tickets a browser's EventSource (which cannot send a header)
presents instead of its Bearer token; only their SHA-256 is stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (("tasks", "task"), ("boards", "board"), ("board_columns", "column"))


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE changes (
            owner_id uuid NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            entity text NOT NULL CONSTRAINT ck_changes_entity
                CHECK (entity IN ('task', 'board', 'column')),
            entity_id uuid NOT NULL,
            version integer NOT NULL,
            deleted boolean NOT NULL,
            data jsonb,
            changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            CONSTRAINT pk_changes PRIMARY KEY (owner_id, seq)
        )
        """
    )
    # The purge finds old entries by time; entries are appended in time order, so a BRIN
    # index (a few pages) does it without a B-tree on every insert.
    op.execute("CREATE INDEX ix_changes_changed_at ON changes USING brin (changed_at)")
    op.execute(
        """
        CREATE TABLE change_horizons (
            owner_id uuid PRIMARY KEY,
            purged_through bigint NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE stream_tickets (
            ticket_hash bytea PRIMARY KEY,
            owner_id uuid NOT NULL,
            role text NOT NULL,
            session_id uuid NOT NULL,
            token_version integer NOT NULL,
            kid text NOT NULL,
            issued_at bigint NOT NULL,
            token_expires_at bigint NOT NULL,
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION lock_owner(owner uuid) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            -- The uuid's first 8 bytes as a signed bigint: one lock per owner.
            PERFORM pg_advisory_xact_lock(
                ('x' || left(replace(owner::text, '-', ''), 16))::bit(64)::bigint);
            PERFORM set_config('taskgate.locked_owner', owner::text, true);
        END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed record;
        BEGIN
            IF current_setting('taskgate.change_log', true) = 'off' THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'DELETE' THEN
                changed := OLD;
            ELSE
                changed := NEW;
            END IF;
            IF current_setting('taskgate.locked_owner', true)
                    IS DISTINCT FROM changed.owner_id::text THEN
                RAISE EXCEPTION 'change to % of owner % without lock_owner()',
                    TG_TABLE_NAME, changed.owner_id;
            END IF;
            INSERT INTO changes (owner_id, entity, entity_id, version, deleted, data)
            VALUES (changed.owner_id, TG_ARGV[0], changed.id, changed.version,
                    TG_OP = 'DELETE',
                    CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END);
            PERFORM pg_notify('taskgate_changes', changed.owner_id::text);
            RETURN NULL;
        END
        $$
        """
    )
    for table, entity in _TABLES:
        op.execute(
            f"CREATE TRIGGER log_change AFTER INSERT OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION log_change('{entity}')"
        )
        # Only updates that change something: a no-op update writes no entry.
        op.execute(
            f"CREATE TRIGGER log_change_update AFTER UPDATE ON {table}"
            f" FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)"
            f" EXECUTE FUNCTION log_change('{entity}')"
        )


def downgrade() -> None:
    for table, _ in _TABLES:
        op.execute(f"DROP TRIGGER log_change_update ON {table}")
        op.execute(f"DROP TRIGGER log_change ON {table}")
    op.execute("DROP FUNCTION log_change()")
    op.execute("DROP FUNCTION lock_owner(uuid)")
    op.execute("DROP TABLE stream_tickets")
    op.execute("DROP TABLE change_horizons")
    op.execute("DROP TABLE changes")
