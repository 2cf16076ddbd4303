"""Playout buffer: hold each item until its stamp on a clock, then hand it on.

Why: ``dualtalk_node`` publishes a frame as soon as it is computed, stamped with the time its
audio is (or will be) played, which with the live model and speech published ahead is *before*
that time. A consumer that drives a face (``head_driver``) must move it at the stamp, not on
arrival, or the lips lead the voice. This module is the policy, free of ROS so it is tested on
its own (``tests/test_release_buffer.py``); :class:`ReleaseThread` runs it against a clock.

Policy, per item pushed (stamps must increase; the caller rejects those that do not):

* stamp in the future, within ``max_ahead_ns``: queued, released when the clock reaches it;
* stamp already past (arrived late), within ``max_late_ns``: released at once, ``late``;
* stamp further than those bounds from the clock: refused (``too_far_ahead`` /
  ``too_far_late``): its clock is not ours, and a face must not jump to it nor wait minutes;
* queue full (``capacity``): the oldest queued item is released at once (``overflow``) so the
  buffer stays bounded and nothing is lost silently.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable

NS = 1_000_000_000

QUEUED, LATE, TOO_FAR_AHEAD, TOO_FAR_LATE = "queued", "late", "too_far_ahead", "too_far_late"


class ReleaseBuffer:
    """FIFO of ``(stamp_ns, item)`` in increasing stamps; not thread-safe (see ReleaseThread)."""

    def __init__(self, max_ahead_ns: int, max_late_ns: int, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError(f"ReleaseBuffer capacity must be >= 1, got {capacity}")
        self.max_ahead_ns, self.max_late_ns, self.capacity = max_ahead_ns, max_late_ns, capacity
        self._queue: deque = deque()
        self._due_now: deque = deque()   # late and overflow items, released at the next pop
        self.overflow = 0

    def __len__(self) -> int:
        return len(self._queue) + len(self._due_now)

    def push(self, stamp_ns: int, item, now_ns: int) -> str:
        """Queue ``item`` for ``stamp_ns``; returns the verdict (QUEUED, LATE, TOO_FAR_*)."""
        ahead = stamp_ns - now_ns
        if ahead > self.max_ahead_ns:
            return TOO_FAR_AHEAD
        if -ahead > self.max_late_ns:
            return TOO_FAR_LATE
        if ahead <= 0:
            self._due_now.append((stamp_ns, item))
            return LATE
        if len(self._queue) >= self.capacity:
            self._due_now.append(self._queue.popleft())
            self.overflow += 1
        self._queue.append((stamp_ns, item))
        return QUEUED

    def pop_due(self, now_ns: int) -> list:
        """Every ``(stamp_ns, item)`` due at ``now_ns``, in stamp order."""
        out = list(self._due_now)
        self._due_now.clear()
        while self._queue and self._queue[0][0] <= now_ns:
            out.append(self._queue.popleft())
        out.sort(key=lambda x: x[0])
        return out

    def next_due_ns(self) -> int | None:
        """Stamp of the next item to release (``None`` when empty)."""
        if self._due_now:
            return self._due_now[0][0]
        return self._queue[0][0] if self._queue else None

    def clear(self) -> int:
        """Drop everything queued (a restarted stream); returns how many were dropped."""
        n = len(self)
        self._queue.clear()
        self._due_now.clear()
        return n


class ReleaseThread:
    """Runs a :class:`ReleaseBuffer` against ``now_ns()``: ``release(stamp_ns, item)`` is called
    from this thread when each item is due. Its own thread, because an executor timer polling
    at 25 Hz would add up to a frame of jitter, and one firing every millisecond would cost
    CPU; waits are capped (``max_wait_s``) so a simulated clock (``use_sim_time``) is followed.
    """

    def __init__(self, buffer: ReleaseBuffer, now_ns: Callable[[], int],
                 release: Callable[[int, object], None], max_wait_s: float = 0.01,
                 alive: Callable[[], bool] = lambda: True) -> None:
        self.buffer, self._now_ns, self._release = buffer, now_ns, release
        self._alive = alive
        self._max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._running = True
        self.thread = threading.Thread(target=self._run, name="release_buffer", daemon=True)
        self.thread.start()

    def push(self, stamp_ns: int, item) -> str:
        with self._cond:
            verdict = self.buffer.push(stamp_ns, item, self._now_ns())
            self._cond.notify()
        return verdict

    def clear(self) -> int:
        with self._cond:
            return self.buffer.clear()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=2.0)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            # Ctrl-C shuts the ROS context down before the node closes this thread: a clock or
            # publisher that fails then is the shutdown, not an error worth a traceback
            if self._running and self._alive():
                raise

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                now = self._now_ns()
                due = self.buffer.pop_due(now)
                if not due:
                    nxt = self.buffer.next_due_ns()
                    wait = self._max_wait_s * 10 if nxt is None else (nxt - now) / NS
                    self._cond.wait(min(max(wait, 0.0), self._max_wait_s * 10))
                    continue
            for stamp_ns, item in due:
                self._release(stamp_ns, item)
