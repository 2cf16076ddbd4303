"""The head driver's playout policy (dualtalk_ros.release_buffer), without ROS (issue 17)."""
from __future__ import annotations

import threading
import time

import pytest

from dualtalk_ros.release_buffer import (LATE, QUEUED, TOO_FAR_AHEAD, TOO_FAR_LATE, ReleaseBuffer,
                                         ReleaseThread)

MS = 1_000_000


def test_items_wait_for_their_stamp_and_late_ones_go_at_once():
    buf = ReleaseBuffer(max_ahead_ns=1000 * MS, max_late_ns=500 * MS, capacity=8)
    assert buf.push(100 * MS, "a", now_ns=0) == QUEUED
    assert buf.push(140 * MS, "b", now_ns=0) == QUEUED
    assert buf.pop_due(99 * MS) == []
    assert buf.next_due_ns() == 100 * MS
    assert buf.pop_due(100 * MS) == [(100 * MS, "a")]
    assert buf.push(150 * MS, "c", now_ns=200 * MS) == LATE        # arrived after its stamp
    assert buf.pop_due(200 * MS) == [(140 * MS, "b"), (150 * MS, "c")]
    assert len(buf) == 0 and buf.next_due_ns() is None


def test_stamps_beyond_the_bounds_are_refused_and_the_buffer_stays_bounded():
    buf = ReleaseBuffer(max_ahead_ns=1000 * MS, max_late_ns=500 * MS, capacity=3)
    assert buf.push(2001 * MS, "future", now_ns=1000 * MS) == TOO_FAR_AHEAD
    assert buf.push(499 * MS, "past", now_ns=1000 * MS) == TOO_FAR_LATE
    for k in range(5):
        buf.push((1100 + 40 * k) * MS, k, now_ns=1000 * MS)
    assert len(buf) == 5 and buf.overflow == 2      # two released early, none lost
    assert [i for _, i in buf.pop_due(1000 * MS)] == [0, 1]
    assert buf.clear() == 3 and len(buf) == 0
    with pytest.raises(ValueError, match="capacity"):
        ReleaseBuffer(1, 1, capacity=0)


def test_release_thread_releases_at_the_stamp_on_its_clock():
    got, done = [], threading.Event()
    now = time.monotonic_ns

    def release(stamp, item):
        got.append((now() - stamp, item))
        if len(got) == 10:
            done.set()

    th = ReleaseThread(ReleaseBuffer(10**10, 10**10), now, release)
    try:
        t0 = now() + 100 * MS
        for k in range(10):
            assert th.push(t0 + 20 * MS * k, k) == QUEUED
        assert done.wait(5.0)
    finally:
        th.stop()
    assert [i for _, i in got] == list(range(10))
    assert all(0 <= lag < 20 * MS for lag, _ in got), [lag / MS for lag, _ in got]
