"""Run the live node graph for an evaluation as a subprocess (``dualtalk-ros bringup ...``).

A separate process keeps the model's CPU work off the replayer's and recorder's interpreter
(no GIL contention distorting the timing we measure) and is exactly what a user runs on a robot.
Its output goes to a log file whose tail is quoted when it fails to start. The graph runs in
its own process group (stopped as a whole) and gets SIGTERM when this process dies, even by
SIGKILL (:mod:`dualtalk_ros.procs`), so it is never left running without its recorder.
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import alsa_file, procs

LOG = logging.getLogger(__name__)


class GraphError(RuntimeError):
    """The graph process failed to start or died; the message quotes its log."""


@dataclass
class GraphOptions:
    """How to start the graph. ``command`` (a shell-like string) replaces the default bring-up
    command entirely; otherwise ``dualtalk-ros bringup conversation --no-audio-input`` (the bag
    is the audio source: no capture node that would fail without a sound card or add a second
    ``partner/audio`` stream) is run with ``params``, the checkpoint and the ``overrides``
    (``NODE.PARAM=VALUE``)."""

    checkpoint: str | None = None
    params: str | None = None
    overrides: list[str] = field(default_factory=list)
    command: str | None = None
    use_sim_time: bool = False
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 10.0
    # the replay puts the inputs' stamps on the wall clock (ReplayOptions.restamp): head_driver
    # then releases frames at their stamps, as on a robot
    stamps_on_clock: bool = False
    # play the agent's voice (voice_player) into this raw S16_LE file through an ALSA file
    # device (dualtalk_ros.alsa_file): the voice as the graph plays it, without a sound card
    voice_file: Path | None = None

    def argv(self) -> list[str]:
        if self.command:
            return shlex.split(self.command)
        argv = [sys.executable, "-m", "dualtalk_ros.cli", "bringup", "conversation",
                "--no-audio-input"]
        if self.params:
            argv += ["--params", self.params]
        # head_driver releases frames at their stamps: on the wall clock when the replay
        # restamps the inputs onto it, on the bag's clock with sim time; otherwise a bag's
        # stamps (made from start_time 0) are on no clock of the graph, so it publishes on
        # arrival (the user's overrides, after this, still win)
        sets = (["head_driver.use_sim_time=true"] if self.use_sim_time else
                [] if self.stamps_on_clock else ["head_driver.release_at_stamp=false"])
        sets += self.overrides
        if self.checkpoint:
            sets.append(f"dualtalk_node.checkpoint={self.checkpoint}")
        if self.use_sim_time:
            sets.append("dualtalk_node.use_sim_time=true")
        if self.voice_file is not None:
            argv.append("--play-voice")
            if self.use_sim_time:
                sets.append("voice_player.use_sim_time=true")
        for item in sets:
            argv += ["--set", item]
        return argv


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


class GraphProcess:
    """Start/stop the graph; ``wait_ready`` polls the ROS graph through a caller's node."""

    def __init__(self, options: GraphOptions, log_path: Path):
        self.options = options
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.exited_by_itself = False   # it had exited before stop() was called

    def start(self) -> None:
        argv = self.options.argv()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        LOG.info("starting graph: %s", " ".join(shlex.quote(a) for a in argv))
        env = dict(os.environ)
        if self.options.voice_file is not None and not self.options.command:
            conf = alsa_file.write_file_playback(
                Path(self.options.voice_file).with_suffix(".alsa.conf"), self.options.voice_file)
            env.update(alsa_file.environment(conf))
        # idle OpenMP threads sleep instead of spinning: on a shared/loaded CPU spinning torch
        # threads starve the graph's own callbacks (see bench/run_all.py); overridable by env
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.proc = procs.popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)

    def cpu_s(self) -> float:
        """CPU seconds the graph (bring-up and every node process) has used so far."""
        return procs.tree_cpu_s(self.proc.pid) if self.proc is not None else 0.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, node, subscribed: list[str], published: list[str]) -> None:
        """Block until the graph subscribes ``subscribed`` and publishes ``published`` topics
        (names resolved by ``node``); ``GraphError`` when it dies or times out."""
        def resolve(t: str) -> str:
            return node.resolve_topic_name(t)

        deadline = time.monotonic() + self.options.startup_timeout_s
        while True:
            if not self.alive():
                raise GraphError(
                    f"graph process exited with code {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}")
            subs_missing = [t for t in subscribed if node.count_subscribers(resolve(t)) == 0]
            pubs_missing = [t for t in published if node.count_publishers(resolve(t)) == 0]
            if not subs_missing and not pubs_missing:
                return
            if time.monotonic() > deadline:
                raise GraphError(
                    f"graph not ready after {self.options.startup_timeout_s:.0f} s: no subscriber "
                    f"on {subs_missing}, no publisher on {pubs_missing}; log {self.log_path}:\n"
                    f"{log_tail(self.log_path)}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGINT (clean ROS shutdown), then SIGTERM/SIGKILL after ``stop_timeout_s``."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.exited_by_itself = True
        procs.stop(self.proc, self.options.stop_timeout_s, group=True)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode
