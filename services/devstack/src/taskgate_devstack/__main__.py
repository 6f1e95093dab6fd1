"""`python -m taskgate_devstack`: run the dev stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from taskgate_devstack.postgres import PostgresStartError
from taskgate_devstack.redis import RedisStartError
from taskgate_devstack.stack import DEFAULT_CONFIG, REPO_ROOT, DevStack, StackConfig, StackError


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _apply_port_overrides(config: StackConfig) -> None:
    """TASKGATE_PORT_GATEWAY=9090 and friends move a port without editing the config."""
    for name in config.ports:
        value = os.environ.get(f"TASKGATE_PORT_{name.upper()}")
        if value:
            config.ports[name] = int(value)


def _replicas(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= 9:
        raise argparse.ArgumentTypeError("replicas must be between 1 and 9")
    return count


def _print_urls(stack: DevStack) -> None:
    ports = stack.config.ports
    gateway = f"http://localhost:{ports['gateway']}"
    lines = [
        "",
        "taskgate dev stack is up. Point your frontend at the gateway:",
        f"  gateway          {gateway}",
        f"  web app          {gateway}/   (register, boards, cards: web/)",
        f"  auth Swagger UI  {gateway}/auth/docs",
        f"  tasks Swagger UI {gateway}/api/docs",
        f"  JWKS             {gateway}/auth/.well-known/jwks.json",
        "Operators (direct, not through the gateway):",
        f"  gateway metrics  http://localhost:{ports['gateway_metrics']}/metrics",
        f"  gateway ping     http://localhost:{ports['gateway_ping']}/ping",
    ]
    for service in stack.config.services:
        for replica in stack.config.replicas_of(service):
            base = f"http://localhost:{ports[replica.port]}"
            label = f"{replica.name} service"
            lines.append(f"  {label:<16} {base}/health   {base}/metrics")
    if stack.redis is not None:
        lines.append(f"  {'redis (limits)':<16} {stack.redis.url}")
    for name, server in stack.postgres.items():
        database = stack.config.databases[name]["name"]
        lines.append(f"  {name + ' database':<16} {server.url(database, driver='postgresql')}")
    if stack.config.smtp is not None:
        smtp_port = ports[stack.config.smtp.port]
        lines.append(f"  {'mail (SMTP sink)':<16} 127.0.0.1:{smtp_port} -> {stack.mail_dir}/*.eml")
        lines.append(f"  {'':<16} (links in each mail are printed here as it arrives)")
    lines += [f"  {'data':<16} {stack.data_dir}", "Press Ctrl-C to stop everything.", ""]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskgate_devstack")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".data")
    parser.add_argument(
        "--replicas",
        type=_replicas,
        default=os.environ.get("TASKGATE_REPLICAS") or "1",  # a string: `type` parses it
        help="processes per service, all behind the gateway (default: $TASKGATE_REPLICAS or 1)",
    )
    args = parser.parse_args(argv)

    config = StackConfig.load(args.config)
    _apply_port_overrides(config)
    try:
        config.set_replicas(args.replicas)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _apply_port_overrides(config)  # the replicas' own (TASKGATE_PORT_AUTH_2)
    stack = DevStack(config, args.data_dir.resolve())
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        stack.start()
        _print_urls(stack)
        while (failed := stack.failed_process()) is None:
            time.sleep(0.5)
        print(f"{failed} stopped unexpectedly; stopping the stack", file=sys.stderr)
        return 1
    except (StackError, PostgresStartError, RedisStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _Stop:
        print("\nstopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
