"""Child processes that never outlive their parent (Linux ``PR_SET_PDEATHSIG``).

The bring-up runs one process per node, ``bag evaluate`` runs the bring-up, ``make demo`` runs
``bag evaluate``. If a parent is killed with SIGKILL it cannot clean up, and a graph left behind
keeps publishing on the DDS domain, holding a core and confusing the next run. So every child is
started with a parent-death signal: the kernel sends it ``SIGTERM`` (by default) the moment its
parent dies, and each level passes the signal on in its own clean shutdown. On other systems
``die_with_parent`` does nothing beyond the caller's own hook (process groups still apply).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Callable

PR_SET_PDEATHSIG = 1

# resolved here, in the parent: the child between fork and exec must not load libraries
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGTERM,
                    then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that asks the kernel for ``sig`` when the parent dies.

    The death signal belongs to the thread that forks, so start children from a thread that
    lives as long as they should (the main thread). If the parent died between fork and
    ``prctl`` the child would never get the signal, so it checks and signals itself.
    ``then`` runs afterwards (e.g. resetting SIGINT to its default).
    """
    parent = os.getpid()

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
            if os.getppid() != parent:
                os.kill(os.getpid(), sig)
        if then is not None:
            then()

    return preexec


def default_sigint() -> None:
    """SIGINT back to its default in a child, so a clean stop by SIGINT works even when the
    parent was started in the background (where shells ignore SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(argv: list[str], *, death_signal: int = signal.SIGTERM, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` whose child gets ``death_signal`` when this process dies."""
    return subprocess.Popen(argv, preexec_fn=die_with_parent(death_signal, default_sigint),
                            **kwargs)


def stop(proc: subprocess.Popen, timeout_s: float = 10.0, group: bool = False) -> int | None:
    """Stop ``proc`` (its process group when ``group``): SIGINT, then SIGTERM and SIGKILL if it
    does not exit within ``timeout_s`` / 5 s. Returns its exit code."""
    for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0),
                      (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if group:      # whatever is left of the group once its leader is gone
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return proc.poll()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and all its descendants, from
    ``/proc`` (0.0 where it cannot be read, e.g. not Linux).

    Why the whole tree: the graph runs one process per node under the bring-up, and its CPU
    share is what they use together. Children that already exited and were reaped count
    through their parent's ``cutime``/``cstime``, so a respawned node is not lost; take the
    difference of two calls for a time window.
    """
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return 0.0
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue            # gone meanwhile, or not ours to read
        stats[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
            todo += children.get(p, [])
    return total
