"""Operator commands: `python -m auth_service keys | db | sessions | users ...`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from auth_service.core.config import Settings
from auth_service.core.signing_keys import (
    SigningKeyError,
    choose_active,
    configured_key_files,
    write_new_key,
)
from taskgate_common.errors import ApiError


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _default_key_path(settings: Settings) -> Path:
    """AUTH_SIGNING_KEY_FILE; with a keys directory, a new time-stamped file in it."""
    if settings.signing_keys_dir is None:
        return settings.signing_key_file
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.signing_keys_dir / f"key-{stamp}.pem"


def _keys_generate(args: argparse.Namespace) -> int:
    settings = Settings()
    keys_dir = settings.signing_keys_dir
    if not args.out and args.if_missing and keys_dir is not None and any(keys_dir.glob("*.pem")):
        return 0
    path = Path(args.out) if args.out else _default_key_path(settings)
    try:
        key = write_new_key(path, bits=args.bits, overwrite=args.force)
    except SigningKeyError as exc:
        if args.if_missing and path.exists():
            return 0
        return _fail(str(exc))
    print(f"wrote {path} (kid {key.kid})")
    return 0


def _keys_list(_: argparse.Namespace) -> int:
    """Every configured key with its kid; which one signs (public information only)."""
    settings = Settings()
    try:
        entries = configured_key_files(settings)
        active = choose_active(entries, settings.active_key_id)
    except SigningKeyError as exc:
        return _fail(str(exc))
    for entry in entries:
        role = "active (signs, published)" if entry is active else "published"
        print(f"{entry.key.kid}  {entry.path}  {role}")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from auth_service.migrate import upgrade

    upgrade(Settings().database_url, args.revision)
    return 0


def _sessions_purge(args: argparse.Namespace) -> int:
    from auth_service.commands import purge

    try:
        report = asyncio.run(
            purge(
                Settings(),
                older_than=timedelta(seconds=args.older_than),
                batch_size=args.batch_size,
                max_batches=args.max_batches,
            )
        )
    except (SQLAlchemyError, OSError) as exc:
        return _fail(f"database: {type(exc).__name__}: {exc}")
    print(report)
    return 0


def _read_password() -> str | None:
    """From a prompt on a terminal (asked twice), else the first line of stdin; never argv."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password for the new admin: ")
        if getpass.getpass("Repeat it: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return None
        return password
    return sys.stdin.readline().rstrip("\r\n")


def _users_create_admin(args: argparse.Namespace) -> int:
    from auth_service.commands import add_admin

    password = _read_password()
    if not password:
        return _fail("no password given (type it at the prompt or pipe it on stdin)")
    try:
        user = asyncio.run(
            add_admin(Settings(), email=args.email, username=args.username, password=password)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return _fail(problems)
    except ApiError as exc:
        return _fail(exc.detail)
    except (SQLAlchemyError, OSError) as exc:
        return _fail(f"database: {type(exc).__name__}: {exc}")
    print(f"created admin {user.username} ({user.id})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m auth_service")
    commands = parser.add_subparsers(dest="area", required=True)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True
    )
    generate = keys.add_parser("generate", help="write a new RSA private key (PEM, mode 0600)")
    generate.add_argument(
        "--out",
        help="path (default: AUTH_SIGNING_KEY_FILE, or key-<UTC time>.pem in "
        "AUTH_SIGNING_KEYS_DIR when that is set)",
    )
    generate.add_argument("--bits", type=int, default=2048, choices=[2048, 3072, 4096])
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    generate.add_argument(
        "--if-missing", action="store_true", help="succeed quietly when the file exists"
    )
    generate.set_defaults(handler=_keys_generate)
    listing = keys.add_parser("list", help="the configured keys, their kids, the active one")
    listing.set_defaults(handler=_keys_list)

    db = commands.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations to AUTH_DATABASE_URL")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_db_upgrade)

    sessions = commands.add_parser("sessions", help="login sessions").add_subparsers(
        dest="action", required=True
    )
    purge = sessions.add_parser(
        "purge", help="delete expired and revoked sessions (idempotent, safe from cron)"
    )
    purge.add_argument(
        "--older-than",
        type=_bounded(0, 10 * 365 * 86_400),
        default=0,
        metavar="SECONDS",
        help="only sessions that ended at least this long ago (default 0)",
    )
    purge.add_argument(
        "--batch-size",
        type=_bounded(1, 100_000),
        default=1000,
        metavar="N",
        help="sessions deleted per transaction (default 1000)",
    )
    purge.add_argument(
        "--max-batches",
        type=_bounded(1, 1_000_000),
        default=None,
        metavar="N",
        help="stop after N batches (default: until none are left)",
    )
    purge.set_defaults(handler=_sessions_purge)

    users = commands.add_parser("users", help="accounts").add_subparsers(
        dest="action", required=True
    )
    create_admin = users.add_parser(
        "create-admin",
        help="create an admin account; the password is prompted for, or read from stdin",
    )
    create_admin.add_argument("--email", required=True)
    create_admin.add_argument("--username", required=True)
    create_admin.set_defaults(handler=_users_create_admin)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
