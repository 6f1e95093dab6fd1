"""Child processes that die with their parent and stop in a controlled order."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGTERM this child when its parent dies, so a killed launcher leaves no orphan (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: list[str],
    env: dict[str, str],
    log_file: Path | None,
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start `args` in its own session (Ctrl-C reaches only the launcher, which stops it)."""
    output: IO[bytes] | None = log_file.open("ab") if log_file is not None else None
    preexec: Callable[[], None] = die_with_parent
    try:
        return subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
            preexec_fn=preexec,
        )
    finally:
        if output is not None:
            output.close()


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM and wait (graceful: a service drains if configured, then uvicorn finishes its
    requests), then SIGKILL after `timeout`."""
    terminate_all([(process, timeout)])


def terminate_all(processes: list[tuple[subprocess.Popen[bytes], float]]) -> None:
    """SIGTERM every process at once, then wait for each up to its own timeout (from now) and
    SIGKILL what is left: stopping N draining replicas takes one drain, not N."""
    started = time.monotonic()
    for process, _ in processes:
        if process.poll() is None:
            process.terminate()
    for process, timeout in processes:
        try:
            process.wait(max(0.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
