"""npm packages the e2e tests use (a generated TypeScript client, axe-core), installed from
their lockfile with `npm ci`, again only when the lockfile changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

NO_NODE = "node and npm are not installed (Debian: nodejs npm; .ci/run installs them)"


def installed(directory: Path) -> Path:
    """`directory/node_modules`, as its package-lock.json pins it; skips the test without
    Node. A stamp of the lockfile's SHA-256 saves the `npm ci` on later runs."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(NO_NODE)
    modules = directory / "node_modules"
    lock = hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()
    stamp = modules / ".taskgate-lockfile-sha256"
    if not stamp.exists() or stamp.read_text() != lock:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (
            f"npm ci failed in {directory}:\n{result.stdout}{result.stderr}"
        )
        stamp.write_text(lock)
    return modules
