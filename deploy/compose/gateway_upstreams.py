"""Keeps the Compose gateway's upstream lists equal to the running replicas.

Compose gives every replica of a service the one DNS name `tasks` (or `auth`). Traefik
resolves such a name once per new connection and keeps connections open, so one replica got
every request (issue 21). This process, run by the `gateway-upstreams` service, copies
gateway/dynamic into the directory Traefik watches, with the templates' upstream lists
(`splitList "," (env "TASKGATE_TASKS_URL")`) replaced by the address of every replica that
Docker's DNS returns; it rereads the names and the files every UPSTREAMS_REFRESH_SECONDS.
Traefik then balances per request and health-checks each replica. No Docker socket is needed.

Standard library only: it runs in the auth image, which has Python and nothing else of ours.
`--check` (the healthcheck) succeeds once the files have been written.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

SOURCE = Path(os.environ.get("UPSTREAMS_SOURCE", "/etc/taskgate/gateway-dynamic"))
TARGET = Path(os.environ.get("UPSTREAMS_TARGET", "/var/lib/gateway-dynamic"))
REFRESH_SECONDS = float(os.environ.get("UPSTREAMS_REFRESH_SECONDS", "2"))
# The template variable whose value each upstream list stands in for, and what it resolves.
UPSTREAMS = {"TASKGATE_AUTH_URL": ("auth", 8000), "TASKGATE_TASKS_URL": ("tasks", 8000)}
READY_MARK = ".written"


def log(message: str, **fields: object) -> None:
    """One JSON line, like every other log of the deploy."""
    print(json.dumps({"logger": "gateway-upstreams", "message": message, **fields}), flush=True)


def replica_urls(host: str, port: int) -> list[str]:
    """Every address Docker's DNS has for `host`, as upstream URLs; none when it has none."""
    try:
        answers = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    addresses = sorted({str(answer[4][0]) for answer in answers})
    return [f"http://{address}:{port}" for address in addresses]


def render(text: str, urls: dict[str, list[str]]) -> tuple[str, set[str]]:
    """`text` with each `(env "X")` of UPSTREAMS replaced by its list as a template string."""
    found = set()
    for variable, values in urls.items():
        placeholder = f'(env "{variable}")'
        if placeholder in text:
            found.add(variable)
            text = text.replace(placeholder, json.dumps(",".join(values)))
    return text, found


def write_if_changed(path: Path, text: str) -> bool:
    """Atomic replace, so Traefik never reads half a file; unchanged files are not touched."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return True


def sync(known: dict[str, list[str]]) -> bool:
    """One pass; False while some service has never resolved (nothing is written then)."""
    for variable, (host, port) in UPSTREAMS.items():
        urls = replica_urls(host, port)
        if urls and urls != known.get(variable):
            log("replicas", service=host, upstreams=urls)
            known[variable] = urls
        elif not urls and variable in known:
            # Between replicas (all restarting): keep the last list; Traefik's health checks
            # take unreachable ones out.
            pass
    if set(known) != set(UPSTREAMS):
        return False
    sources = sorted(p for p in SOURCE.iterdir() if p.is_file() and not p.name.startswith("."))
    placed: set[str] = set()
    for source in sources:
        text, found = render(source.read_text(encoding="utf-8"), known)
        placed |= found
        if write_if_changed(TARGET / source.name, text):
            log("written", file=source.name)
    if placed != set(UPSTREAMS):
        # The gateway files no longer use the variables this rewrites: fail loudly rather than
        # serve one replica (docs/operations.md, "Several replicas").
        log("not found in gateway/dynamic", variables=sorted(set(UPSTREAMS) - placed))
        sys.exit(1)
    for stale in TARGET.iterdir():
        if (
            stale.is_file()
            and not stale.name.startswith(".")
            and not (SOURCE / stale.name).exists()
        ):
            stale.unlink()
    (TARGET / READY_MARK).touch()
    return True


def main() -> None:
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if (TARGET / READY_MARK).exists() else 1)
    (TARGET / READY_MARK).unlink(missing_ok=True)
    known: dict[str, list[str]] = {}
    while True:
        if not sync(known):
            log("waiting for DNS", services=[host for host, _ in UPSTREAMS.values()])
        time.sleep(REFRESH_SECONDS)


if __name__ == "__main__":
    main()
