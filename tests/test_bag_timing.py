"""What the head driver showed while the voice played (``bag.timing.shown_frames``), from
release and play times: the preview of ``make demo`` is cut from it, so a frame released late
must show as the pose held before it, and the last command released is the one on the face."""
from __future__ import annotations

import numpy as np

from dualtalk_core import layout
from dualtalk_ros.bag import timing

MS = 1_000_000
ORIGIN = 5_000 * MS


def _recording(release_delay_ms: list[float], played: bool = True) -> timing.TimingRecording:
    """Frames 0..n-1 stamped at origin + k*40 ms, each received ``release_delay_ms[k]`` after
    its stamp; the voice played on time in one chunk (sample k*640 at origin + k*40 ms)."""
    n = len(release_delay_ms)
    k = np.arange(n, dtype=np.int64)
    stamps = ORIGIN + k * timing.FRAME_NS
    rec = timing.TimingRecording(
        release_topic="/agent/joint_states", release_stamp=stamps,
        release_recv=stamps + (np.asarray(release_delay_ms) * MS).astype(np.int64))
    if played:
        rec.played = [(0, n * layout.SAMPLES_PER_FRAME, ORIGIN, layout.SAMPLE_RATE)]
    return rec


def test_on_time_frames_show_themselves():
    shown = timing.shown_frames(_recording([3.0] * 10), ORIGIN, 10, on_wall_clock=True)
    assert shown.tolist() == list(range(10))


def test_a_late_frame_shows_the_pose_held_before_it_and_the_last_release_wins():
    delays = [2.0] * 10
    delays[4] = 70.0     # frame 4 arrives after frame 5's audio started: slot 4 holds frame 3
    delays[7] = -45.0    # released just before frame 6: frame 6's release overwrites it
    shown = timing.shown_frames(_recording(delays), ORIGIN, 10, on_wall_clock=True)
    assert shown.tolist() == [0, 1, 2, 3, 3, 5, 6, 6, 8, 9]
    pred = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, layout.DIM), np.float32)
    released = timing.released_motion(pred, shown)
    assert released.shape == pred.shape and released[4, 0] == 3.0 and released[7, 0] == 6.0


def test_slots_before_the_first_release_are_neutral_and_no_wall_clock_gives_none():
    delays = [100.0] + [1.0] * 5       # frame 0 reaches the face during slot 2
    shown = timing.shown_frames(_recording(delays), ORIGIN, 6, on_wall_clock=True)
    assert shown[0] == -1 and shown[1] == 1
    released = timing.released_motion(np.ones((6, layout.DIM), np.float32), shown)
    assert not released[0].any() and released[1].all()
    assert timing.shown_frames(_recording(delays), ORIGIN, 6, on_wall_clock=False) is None
    # without played audio the slots are timed on the graph's clock: the same answer here
    assert timing.shown_frames(_recording(delays, played=False), ORIGIN, 6, True).tolist() \
        == shown.tolist()
