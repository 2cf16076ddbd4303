"""Helpers for the ROS node tests: spin until a condition, collect messages, ALSA file device."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float,
               step_s: float = 0.02) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout_s`` passes; returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step_s)
    return predicate()


def spin_for(executor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=min(0.02, max(0.0, deadline - time.monotonic())))


class Collector:
    """Subscribes ``topic`` on ``node`` and keeps (receive monotonic time, message)."""

    def __init__(self, node, msg_type, topic: str, qos) -> None:
        self.items: list[tuple[float, object]] = []
        self.sub = node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg) -> None:
        self.items.append((time.monotonic(), msg))

    @property
    def msgs(self) -> list:
        return [m for _, m in self.items]


def latest_diagnostics(diag: Collector, node_prefix: str) -> dict[str, str]:
    """The key/values of the newest ``/diagnostics`` status whose name starts with
    ``node_prefix`` in a Collector of ``DiagnosticArray``; {} before the first one."""
    for arr in reversed(diag.msgs):
        for st in arr.status:
            if st.name.startswith(node_prefix):
                return {kv.key: kv.value for kv in st.values}
    return {}


def _write_asoundrc(home: Path, filedev: str, rate: int, channels: int) -> Path:
    """``home/.asoundrc``: the default PCM is a ``plug`` (converts to whatever PortAudio asks
    for) in front of ALSA's ``file`` plugin on a null slave, configured by ``filedev``."""
    home.mkdir(parents=True, exist_ok=True)
    rc = home / ".asoundrc"
    rc.write_text(f"""
pcm.!default {{
  type plug
  slave {{ pcm "filedev"; format S16_LE; rate {rate}; channels {channels} }}
}}
pcm.filedev {{
  type file
  slave.pcm "null"
{filedev}
  format "raw"
}}
""")
    return rc


def write_alsa_file_device(home: Path, infile: Path, rate: int = 16000, channels: int = 2) -> Path:
    """Write ``home/.asoundrc`` whose default capture PCM reads raw S16_LE from ``infile``.

    ALSA's ``file`` plugin reads ``infile`` instead of the (null) slave's samples. The file
    device is not paced: it delivers as fast as it is read, so the reader (the capture
    callback) sets the pace.
    """
    return _write_asoundrc(home, f'  file "/dev/null"\n  infile "{infile}"', rate, channels)


def write_alsa_file_playback(home: Path, outfile: Path, rate: int = 16000,
                             channels: int = 1) -> Path:
    """Write ``home/.asoundrc`` whose default playback PCM writes raw S16_LE to ``outfile``.

    The playback twin of :func:`write_alsa_file_device`: ALSA's ``file`` plugin copies every
    sample written to the (null) slave into ``outfile``, so the file holds exactly what PortAudio
    played, in order. Not paced either: the writer (the voice player) sets the pace.
    """
    return _write_asoundrc(home, f'  file "{outfile}"', rate, channels)


def index_coded_stereo(n: int) -> np.ndarray:
    """int16 [n, 2] whose channel 0 encodes the sample index (mod 65536) and channel 1 its
    bitwise complement, so any chunk proves which samples it carries and from which channel."""
    i = np.arange(n)
    ch0 = (i % 65536).astype(np.uint16).view(np.int16)
    return np.stack([ch0, ~ch0], axis=1).astype("<i2")


def ros_env(**extra: str) -> dict[str, str]:
    """Environment for a node subprocess: same DDS domain, loopback only."""
    env = dict(os.environ)
    env.update(extra)
    return env


def entry_point(name: str) -> str:
    """Path of an installed console script (node executable)."""
    path = VENV_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"entry point {name!r} not installed at {path}")
    return str(path)
