"""Counters and latency summaries of a streaming session (what ``/diagnostics`` shows).

Why here and not in the ROS package: the figures are properties of the session (when a hop
became computable, when its frames left), so tests and benchmarks read the same numbers as the
live node without ROS.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np


class Counters:
    """Named event counters (dropped, invalid, resampled, ...); thread-safe increments."""

    def __init__(self, *names: str) -> None:
        self.values: dict[str, int] = {n: 0 for n in names}
        self._lock = threading.Lock()

    def declare(self, *names: str) -> None:
        """Make ``names`` appear (as 0) in :meth:`as_dict` before their first event."""
        with self._lock:
            for n in names:
                self.values.setdefault(n, 0)

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + int(by)

    def __getitem__(self, name: str) -> int:
        return self.values.get(name, 0)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


class LatencyWindow:
    """The most recent latencies (ms); NaN marks a value that could not be measured."""

    def __init__(self, size: int = 500) -> None:
        self._ms: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._ms.append(float(ms))

    def values(self) -> np.ndarray:
        return np.asarray(list(self._ms), dtype=np.float64)

    def clear(self) -> None:
        self._ms.clear()


def latency_values(prefix: str, ms: np.ndarray) -> dict:
    """``<prefix>_p50/_p95/_max`` and ``_n`` of recent latencies; the string ``unavailable``
    (with ``_n`` 0) when there are none or any is NaN (not measurable)."""
    if ms.size == 0 or not np.isfinite(ms).all():
        return {f"{prefix}_p50": "unavailable", f"{prefix}_p95": "unavailable",
                f"{prefix}_max": "unavailable", f"{prefix}_n": 0}
    return {f"{prefix}_p50": float(np.percentile(ms, 50)),
            f"{prefix}_p95": float(np.percentile(ms, 95)),
            f"{prefix}_max": float(ms.max()), f"{prefix}_n": int(ms.size)}
