"""A throw-away `redis-server` (the Debian package) for tests of the shared rate-limit store.

Talked to over a raw socket (PING, FLUSHALL): the launcher needs no Redis client of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import spawn, terminate


class RedisStartError(RuntimeError):
    """redis-server did not answer PING in time; the message carries its log's tail."""


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def command(host: str, port: int, *words: str, timeout: float = 2.0) -> bytes:
    """Send one command in RESP and return the raw reply (first chunk)."""
    payload = f"*{len(words)}\r\n".encode()
    for word in words:
        data = word.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


@dataclass
class RedisServer:
    """redis-server on 127.0.0.1:`port`, no persistence, files under `directory`."""

    directory: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    def ping(self) -> bool:
        try:
            return command(self.host, self.port, "PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        command(self.host, self.port, "FLUSHALL")

    def start(self, timeout: float = 20.0) -> None:
        binary = redis_binary()
        if binary is None:
            raise RedisStartError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self._process = spawn(args, {}, self.log_file, self.directory)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise RedisStartError(f"redis-server did not start on {self.port}:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process)
            self._process = None
