"""Helpers for tests that start and kill real process trees: descendants from /proc, waiting."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as dead)."""
    st = _stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, grandchildren, ...)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None and st[1] not in ("Z", "X"):
                parent[int(d.name)] = st[0]
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def node_pids(root: int) -> dict[str, int]:
    """Bring-up node processes below ``root``: node name -> pid (from the runner's spec path)."""
    out = {}
    for pid in descendants(root):
        cl = cmdline(pid)
        if "dualtalk_ros.bringup_node" in cl:
            spec = cl.split("dualtalk_ros.bringup_node", 1)[1].split()[0]
            out[Path(spec).stem] = pid
    return out


def wait_for(pred: Callable[[], object], timeout_s: float, step_s: float = 0.1):
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step_s)
