"""Child processes that die with their parent and stop in a controlled order."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
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
    """SIGTERM (graceful: uvicorn drains requests), then SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
