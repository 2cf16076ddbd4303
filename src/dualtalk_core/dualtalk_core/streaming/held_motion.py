"""Partner face frames at irregular times -> one motion row per 25 fps frame, decided causally.

Why not :class:`~dualtalk_core.streaming.buffers.MotionTrack` (the sliding window's): it
interpolates between the received frames around each frame time, so a frame's value is only
known once the *next* face frame has arrived, and it may still change later.  The live model
consumes each motion frame once, as soon as the partner audio covers it, and never revises it.
So here frame ``k`` takes the newest face frame stamped at or before ``k`` + half a frame (the
nearest grid point); a frame with no face near it repeats the last one - what offline inference
does when it pads a short motion track (``model.inference.fit_motion``) - and is counted as
filled; before any face arrives the neutral face (zeros) is used.  For a face track given at
exactly ``k / 25`` s (a file) every frame gets its own face: streamed equals offline.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from dualtalk_core.layout import DIM, FRAME_RATE


class HeldMotion:
    """Face frames pushed in time order, taken frame by frame (see the module docstring)."""

    def __init__(self, tolerance_s: float) -> None:
        self.tolerance_s = float(tolerance_s)
        self.reset()

    def reset(self) -> None:
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self._current: tuple[float, np.ndarray] | None = None
        self.last_time: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, time_s: float, frame: np.ndarray) -> None:
        """A face frame newer than every earlier one (the runner refuses the others)."""
        self._pending.append((float(time_s), np.asarray(frame, np.float32)))
        self.last_time = float(time_s)

    def take(self, first_frame: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Values [count, 56] and filled flags [count] for frames first..first+count-1, which
        are final from now on (faces stamped up to their times are consumed)."""
        values = np.zeros((max(0, count), DIM), np.float32)
        filled = np.ones(max(0, count), bool)
        for i in range(max(0, count)):
            t = (first_frame + i) / FRAME_RATE
            edge = t + 0.5 / FRAME_RATE + 1e-9
            while self._pending and self._pending[0][0] <= edge:
                self._current = self._pending.popleft()
            if self._current is not None:
                values[i] = self._current[1]
                filled[i] = abs(t - self._current[0]) > self.tolerance_s + 1e-9
        return values, filled
