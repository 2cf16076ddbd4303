"""DDS stays on loopback in tests, CI and the demo (issue 20, item 8).

A real node graph (the bring-up: one process per node) and this test's own participant run
under the test environment (``tests/conftest.py`` = ``scripts/with_ros_env.sh``: the
loopback-only Fast DDS profile); every UDP/TCP socket of every one of those processes, read
from /proc/<pid>/fd and /proc/<pid>/net/*, must be bound to 127.0.0.1, while the nodes still
discover each other and this test's node.
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from rclpy.node import Node

from proc_helpers import node_pids, wait_for
from ros_helpers import entry_point, ros_env

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


def inet_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, bound address, port) of every IPv4/IPv6 UDP/TCP socket ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for proto in ("udp", "udp6", "tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            f = line.split()
            if f[9] not in inodes:
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if len(raw) == 4:
                ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(addr, 16)))
            else:   # /proc prints IPv6 as four host-order 32-bit words
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(
                    struct.pack("<I", int(addr[i:i + 8], 16)) for i in range(0, 32, 8)))
            out.append((proto, ip, int(port, 16)))
    return out


def test_graph_binds_only_loopback_and_still_discovers(tmp_path, tiny_checkpoint, ros_context):
    log = tmp_path / "bringup.log"
    with log.open("w") as fh:
        bringup = subprocess.Popen(
            [entry_point("dualtalk-ros"), "bringup", "conversation", "--no-audio-input",
             "--checkpoint", str(tiny_checkpoint)],
            env=ros_env(), stdout=fh, stderr=subprocess.STDOUT)
    probe = Node("loopback_probe", context=ros_context)
    try:
        assert wait_for(lambda: "bringup: running" in log.read_text(), 180), log.read_text()
        pids = node_pids(bringup.pid)
        assert set(pids) == {"face_input_adapter", "dualtalk_node", "head_driver"}
        # discovery works across processes with unicast-only loopback locators
        assert wait_for(lambda: set(pids) <= set(probe.get_node_names()), 30), \
            probe.get_node_names()
        bound = {pid: inet_sockets(pid)
                 for pid in [bringup.pid, os.getpid(), *pids.values()]}
    finally:
        probe.destroy_node()
        bringup.terminate()
        bringup.wait(timeout=60)
    assert all(bound.values()), f"a process has no DDS socket at all: {bound}"
    offending = {pid: [s for s in socks if s[1] not in ("127.0.0.1", "::1")]
                 for pid, socks in bound.items()}
    assert not any(offending.values()), f"sockets not on loopback: {offending}"
    assert not any(s[0].startswith("tcp") for socks in bound.values() for s in socks)
