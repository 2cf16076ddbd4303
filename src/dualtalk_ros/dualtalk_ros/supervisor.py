"""Start, watch, respawn and stop the node processes of a bring-up (what ``ros2 launch`` does).

One :class:`NodeProcess` per node: a ``python -m dualtalk_ros.bringup_node`` child with a
parent-death signal (:mod:`.procs`), so a killed bring-up never leaves nodes behind. ``poll()``
notices a child that exited: with ``respawn`` it is started again after ``respawn_delay_s``
(the other nodes keep running either way, as with ``ros2 launch``); a start-up error
(:data:`~.bringup_node.EXIT_STARTUP`) is never respawned, since it would fail the same way.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .bringup_node import EXIT_STARTUP

LOG = logging.getLogger(__name__)


@dataclass
class NodeProcess:
    """One node's process and its history (``exits``: exit codes of the runs that ended by
    themselves, i.e. crashes or start-up errors, not by the bring-up's stop)."""

    name: str
    entry: str
    params: dict[str, Any]
    spec_dir: Path
    respawn: bool = False
    respawn_delay_s: float = 1.0
    ros_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)
    respawns: int = 0
    startup_failed: bool = False
    final_code: int | None = None
    _respawn_at: float | None = None

    @property
    def spec_path(self) -> Path:
        return self.spec_dir / f"{self.name}.json"

    def start(self) -> None:
        self.spec_path.write_text(json.dumps(
            {"entry": self.entry, "name": self.name, "params": self.params}))
        self.spec_path.with_suffix(".exit.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "dualtalk_ros.bringup_node", str(self.spec_path)]
        if self.ros_args:
            argv += ["--ros-args", *self.ros_args]
        self.proc = procs.popen(argv)
        self._respawn_at = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pending(self) -> bool:
        """Running, or waiting to be respawned."""
        return self.running() or self._respawn_at is not None

    def poll(self) -> str | None:
        """Notice an exit / perform a due respawn; returns a one-line event or None."""
        if self._respawn_at is not None:
            if time.monotonic() >= self._respawn_at:
                self.respawns += 1
                self.start()
                return f"{self.name}: respawned (pid {self.proc.pid}, respawn {self.respawns})"
            return None
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        self.exits.append(code)
        self.proc = None
        how = describe_exit(code)
        if code == EXIT_STARTUP:
            self.startup_failed = True
            return f"{self.name}: start-up error ({how}); not respawned"
        if self.respawn:
            self._respawn_at = time.monotonic() + self.respawn_delay_s
            return f"{self.name}: {how}; respawning in {self.respawn_delay_s:g} s"
        return f"{self.name}: {how}; not respawned (the other nodes keep running)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT (clean ROS shutdown), escalating to SIGTERM/SIGKILL; records the exit code."""
        self._respawn_at = None
        if self.proc is None:
            return
        self.final_code = procs.stop(self.proc, timeout_s)
        self.proc = None

    def exit_report(self) -> dict[str, Any] | None:
        """The node's final ``diagnostics_values()`` written by its last clean run."""
        path = self.spec_path.with_suffix(".exit.json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def summary(self) -> dict[str, Any]:
        """``exits``: runs that ended by themselves (crashes); ``final_exit``: the last run,
        stopped by the bring-up (0 or -2 = clean)."""
        return {"exits": [describe_exit(c) for c in self.exits], "respawns": self.respawns,
                "respawn": self.respawn, "final_exit": self.final_code}


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def stop_all(nodes: list[NodeProcess], timeout_s: float = 10.0) -> None:
    """Stop every node in parallel: SIGINT to all (clean ROS shutdown), SIGTERM to those still
    running after ``timeout_s``, SIGKILL after 5 s more. Records each one's final exit code."""
    for n in nodes:
        n._respawn_at = None
    for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        alive = [n for n in nodes if n.running()]
        if not alive:
            break
        if sig != signal.SIGINT:
            LOG.warning("nodes %s did not stop; sending %s", [n.name for n in alive], sig.name)
        for n in alive:
            try:
                n.proc.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for n in alive:
            try:
                n.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    for n in nodes:
        if n.proc is not None:
            n.final_code = n.proc.poll()
            n.proc = None


def children_cpu_s() -> float:
    """CPU seconds of the children this process has waited for (the node processes)."""
    t = os.times()
    return t.children_user + t.children_system
