"""Index arithmetic of the streaming buffers: timeline reads/trims, block stats, face resampling."""
from __future__ import annotations

import numpy as np

from dualtalk_core.layout import DIM
from dualtalk_core.streaming.buffers import AudioTimeline, BlockStats, MotionTrack


def test_timeline_reads_zeros_where_nothing_was_written():
    tl = AudioTimeline(100)
    tl.write(110, np.ones(5, np.float32))
    tl.write(130, np.full(5, 2.0, np.float32))
    got = tl.read(95, 140)
    want = np.zeros(45, np.float32)
    want[15:20] = 1.0
    want[35:40] = 2.0
    np.testing.assert_array_equal(got, want)
    assert tl.written_count(100, 140) == 10
    tl.trim_before(112)
    assert tl.start == 112
    np.testing.assert_array_equal(tl.read(110, 116), [0, 0, 1, 1, 1, 0])
    assert tl.write(50, np.ones(3, np.float32)) == 0          # before start: dropped
    tl.extend_start(100)
    assert tl.start == 100 and tl.written_count(100, 112) == 0


def test_block_stats_match_numpy_over_the_context():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000)
    stats = BlockStats(context_samples=4000)
    for end in range(1000, 10_001, 1000):
        stats.add(end, x[end - 1000: end])
    mean, var = stats.mean_var()
    np.testing.assert_allclose([mean, var], [x[-4000:].mean(), x[-4000:].var()], rtol=1e-9)
    assert BlockStats(0).mean_var() == (0.0, 0.0)


def test_motion_track_interpolates_holds_and_flags():
    track = MotionTrack(tolerance_s=0.04)
    a, b = np.zeros(DIM, np.float32), np.ones(DIM, np.float32)
    track.add(0.2, a)      # frame 5
    track.add(0.6, b)      # frame 15
    values, filled = track.frames(0, 20)
    np.testing.assert_allclose(values[:6, 0], 0.0)                    # held before the first
    np.testing.assert_allclose(values[5:16, 0], np.linspace(0, 1, 11), atol=1e-6)
    np.testing.assert_allclose(values[15:, 0], 1.0)                   # held after the last
    expected = np.ones(20, bool)
    expected[[4, 5, 6, 14, 15, 16]] = False                           # within one frame of data
    np.testing.assert_array_equal(filled, expected)
    track.trim_before(0.7)
    assert len(track) == 1 and track.last_time == 0.6                 # keeps the one before


def test_motion_track_empty_is_neutral_and_filled():
    values, filled = MotionTrack().frames(10, 3)
    assert values.shape == (3, DIM) and not values.any() and filled.all()
