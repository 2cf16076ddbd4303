"""Release frames at their due time on the node's clock (``playout_delay_s`` > 0).

Why a thread of its own: the session says when each frame may leave (``Hop.release_ns``); the
worker that computes hops must not sleep until then, and a controller wants an even 25 Hz
stream rather than one burst per hop.  A frame already more than one frame period late when its
turn comes is published at once and counted (``late_frames``).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable

NS = 1_000_000_000


class Pacer:
    """Queue of ``(due ns, hop, frame index)``; ``publish(hop, i)`` is called when due."""

    def __init__(self, now_ns: Callable[[], int], publish: Callable, on_late: Callable[[], None]):
        self._now_ns, self._publish, self._on_late = now_ns, publish, on_late
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._running = True
        self.thread = threading.Thread(target=self._run, name="dualtalk_pacer", daemon=True)
        self.thread.start()

    def put(self, due_ns: int, hop, i: int) -> None:
        with self._cond:
            self._queue.append((due_ns, hop, i))
            self._cond.notify()

    def stop(self) -> None:
        self._running = False
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while self._running:
            with self._cond:
                if not self._queue:
                    self._cond.wait(0.1)
                    continue
                due, hop, i = self._queue[0]
                wait_ns = due - self._now_ns()
                if wait_ns > 0:
                    self._cond.wait(wait_ns / NS)
                    continue
                self._queue.popleft()
            if wait_ns < -NS // 25:           # more than one frame behind its due time
                self._on_late()
            self._publish(hop, i)
