"""The launcher behind `make dev`: refuses taken ports by name, restarts a stopped service."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack, StackConfig, StackError


def test_a_taken_port_stops_the_start_with_its_name(tmp_path: Path) -> None:
    config = StackConfig.load()
    for name in config.ports:
        config.ports[name] = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        config.ports["tasks"] = holder.getsockname()[1]
        stack = DevStack(config, tmp_path)
        with pytest.raises(StackError, match=rf"tasks \({config.ports['tasks']}\)"):
            stack.start()
    assert not stack.processes
    assert not stack.postgres
