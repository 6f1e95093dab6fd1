"""Operator commands: `python -m auth_service keys generate | db upgrade | serve`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auth_service.core.config import Settings
from auth_service.core.signing_keys import SigningKeyError, write_new_key


def _keys_generate(args: argparse.Namespace) -> int:
    path = Path(args.out) if args.out else Settings().signing_key_file
    try:
        key = write_new_key(path, bits=args.bits, overwrite=args.force)
    except SigningKeyError as exc:
        if args.if_missing and path.exists():
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} (kid {key.kid})")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from auth_service.migrate import upgrade

    upgrade(Settings().database_url, args.revision)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth_service")
    commands = parser.add_subparsers(dest="area", required=True)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True
    )
    generate = keys.add_parser("generate", help="write a new RSA private key (PEM, mode 0600)")
    generate.add_argument("--out", help="path (default: AUTH_SIGNING_KEY_FILE)")
    generate.add_argument("--bits", type=int, default=2048, choices=[2048, 3072, 4096])
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    generate.add_argument(
        "--if-missing", action="store_true", help="succeed quietly when the file exists"
    )
    generate.set_defaults(handler=_keys_generate)

    db = commands.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations to AUTH_DATABASE_URL")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_db_upgrade)

    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
