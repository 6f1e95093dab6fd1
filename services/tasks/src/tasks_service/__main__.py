"""Operator commands: `python -m tasks_service db upgrade [revision]`."""

from __future__ import annotations

import argparse
import sys

from tasks_service.core.config import Settings


def _db_upgrade(args: argparse.Namespace) -> int:
    from tasks_service.migrate import upgrade

    upgrade(Settings().database_url, args.revision)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks_service")
    commands = parser.add_subparsers(dest="area", required=True)
    db = commands.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations to TASKS_DATABASE_URL")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_db_upgrade)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
