"""Where a service spends its time on one hot path: py-spy samples the process while wrk drives
the path, and the frames are printed by their share of the samples (inclusive).

    uv run python bench/profile_service.py list      # GET /api/tasks?limit=20, tasks
    uv run python bench/profile_service.py refresh   # POST /auth/refresh, auth
    uv run python bench/profile_service.py patch     # PATCH /api/tasks/{id} with If-Match

The stack is the bench's (limits on, in Redis; `--limits off` to compare). py-spy comes from
PyPI through `uvx` (not a project dependency: it is a tool, like wrk); it needs ptrace, so
run as root or with `kernel.yama.ptrace_scope=0`. Not part of `make bench`: the README's
figures quote its output.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import start_stack
from seed import current_tasks, fresh_refresh_tokens, seed_users, write_records
from wrk_runner import run_wrk, wrk_installed


def _frame(frame: str) -> str:
    """`function (path/file.py:line)` as `function (file.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].split('/')[-1]})" if where else name


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/profile_service.py")
    parser.add_argument("path", choices=["list", "refresh", "patch"])
    parser.add_argument("--limits", choices=["on", "off"], default="on")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    if not wrk_installed():
        return 2
    work = Path(tempfile.mkdtemp(prefix="taskgate-profile-"))
    target = start_stack(work / "stack", args.limits)
    try:
        users = asyncio.run(seed_users(target.gateway, 16, 20))
        script, path, url, service = "bearer_get.lua", "/api/tasks?limit=20", target.tasks, "tasks"
        data = write_records(work / "tokens.tsv", [(u.access_token,) for u in users])
        if args.path == "refresh":
            tokens = asyncio.run(fresh_refresh_tokens(target.auth, users, 64))
            data = write_records(work / "refresh.tsv", [(t,) for t in tokens])
            script, path, url, service = "refresh.lua", "", target.auth, "auth"
        elif args.path == "patch":
            records = asyncio.run(current_tasks(target.tasks, users))
            data = write_records(work / "tasks.tsv", list(records))
            script, path = "patch_task.lua", ""
        samples = work / "samples.txt"
        spy = subprocess.Popen(
            ["uvx", "py-spy", "record", "--pid", str(target.pid(service)), "--rate", "250",
             "--duration", str(args.seconds), "--format", "raw", "--nonblocking",
             "--output", str(samples)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        result = run_wrk(
            url, script, data_file=data, path=path, duration=args.seconds + 2,
            connections=32, threads=2,
        )  # fmt: skip
        if spy.wait() != 0 or not samples.exists():
            print("error: py-spy failed (is ptrace allowed?)", file=sys.stderr)
            return 1
    finally:
        target.close()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        total += int(weight)
        for frame in {_frame(frame) for frame in stack.split(";")}:
            inclusive[frame] += int(weight)
    print(f"{args.path}: {result.rps:,.0f} req/s; {total} samples of the {service} process\n")
    for frame, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
