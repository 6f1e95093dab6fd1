"""An open-loop load generator: requests leave at a fixed rate whatever the answers do, and
each latency is measured from the moment its request was due, not from when a connection was
free. Queueing therefore shows in the percentiles (no coordinated omission), which is what a
user arriving at that rate meets; a closed-loop tool (wrk) at saturation measures its own queue.

wrk2 is not packaged on Debian and `hey -q` paces closed-loop workers (a slow answer delays the
next request), so this is a small asyncio client of its own: prebuilt HTTP/1.1 requests over
keep-alive connections, read with Content-Length or chunked framing.

    uv run python bench/open_loop.py URL --rate 500 --seconds 10 [--header 'Authorization: …']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from percentiles import percentile

# A request to send, and what to do with its answer (status, body).
Request = tuple[bytes, Callable[[int, bytes], None] | None]


@dataclass
class OpenLoopResult:
    rate: float  # asked for, per second
    seconds: float
    sent: int
    ok: int  # 2xx answers
    errors: int  # other answers and failed exchanges
    error_statuses: dict[str, int]  # status (or "transport") -> count
    achieved_rate: float  # answers per second
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def http_request(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """The bytes of one HTTP/1.1 request to `url` (keep-alive, no compression)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    keep = status_line.startswith("HTTP/1.1") and headers.get("connection") != "close"
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"])), keep
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body, keep
            body += chunk[:-2]
    return status, await reader.read(), False


async def run_open_loop(
    url: str,
    next_request: Callable[[], Request],
    rate: float,
    seconds: float,
    connections: int = 64,
    warmup: float = 1.0,
) -> OpenLoopResult:
    """Send `rate` requests a second for `warmup` + `seconds`, each made by `next_request()`
    when due, over up to `connections` keep-alive connections; a request due while all are
    busy waits, and that wait counts in its latency. Only requests due after the `warmup`
    count: the first ones open the connections (and prepare statements on new database
    connections), a cost every client pays once, not the steady latency measured here."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    due: asyncio.Queue[tuple[float, Request] | None] = asyncio.Queue()
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    error_statuses: Counter[str] = Counter()

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (item := await due.get()) is not None:
            when, (request, answered) = item
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                status, body, keep = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                counts["errors"] += 1
                error_statuses["transport"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if not 200 <= status < 300:  # during the warm-up too: never excused
                counts["errors"] += 1
                error_statuses[str(status)] += 1
            elif when >= measured_from:
                counts["ok"] += 1
            if when >= measured_from:
                latencies.append(time.perf_counter() - when)
            if not keep:
                writer.close()
                reader = writer = None
            if answered is not None:
                answered(status, body)
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.perf_counter()
    measured_from = started + warmup
    total = int(rate * (warmup + seconds))
    for n in range(total):
        when = started + n / rate
        delay = when - time.perf_counter()
        # Always yield, so that the connections run even while the schedule is behind.
        await asyncio.sleep(max(delay, 0.0))
        due.put_nowait((when, next_request()))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - measured_from
    return OpenLoopResult(
        rate=rate,
        seconds=round(elapsed, 2),
        sent=int(rate * seconds),
        ok=counts["ok"],
        errors=counts["errors"],
        error_statuses=dict(error_statuses),
        achieved_rate=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(latencies, 0.5) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        p999_ms=round(percentile(latencies, 0.999) * 1000, 2),
        max_ms=round(max(latencies, default=math.nan) * 1000, 2),
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/open_loop.py")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body", default="")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    request = http_request(args.method, args.url, headers, args.body.encode())
    result = asyncio.run(
        run_open_loop(args.url, lambda: (request, None), args.rate, args.seconds, args.connections)
    )
    print(json.dumps(asdict(result)))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
