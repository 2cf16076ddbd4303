"""The voice player's queue by playback index (dualtalk_ros.voice_buffer), without ROS."""
from __future__ import annotations

import numpy as np

from dualtalk_ros.voice_buffer import VoiceBuffer


def _ramp(first: int, n: int) -> np.ndarray:
    return np.arange(first, first + n, dtype=np.int16)


def test_samples_play_at_their_index_with_silence_for_gaps_and_late_ones_dropped():
    buf = VoiceBuffer(max_samples=1000)
    assert buf.add(10, _ramp(10, 20), written_until=0) == 20
    assert buf.add(50, _ramp(50, 10), written_until=0) == 10
    out = buf.read(0, 40)
    assert np.array_equal(out[10:30], _ramp(10, 20)) and not out[:10].any() and not out[30:].any()
    # 45..55: five already written (late, dropped and counted), five queued after the 50..60 ones
    assert buf.add(35, _ramp(35, 10), written_until=40) == 5 and buf.late_samples == 5
    out = buf.read(40, 30)
    assert np.array_equal(out[0:5], _ramp(40, 5)) and np.array_equal(out[10:20], _ramp(50, 10))
    assert not out[5:10].any() and not out[20:].any() and buf.queued == 0


def test_stop_drops_queued_speech_and_speech_still_on_its_way():
    buf = VoiceBuffer(max_samples=1000)
    buf.add(0, _ramp(0, 100), written_until=0)
    buf.add(100, _ramp(100, 100), written_until=0)
    assert buf.read(0, 50)[-1] == 49
    assert buf.stop() == 150 and buf.queued == 0
    assert buf.add(150, _ramp(150, 50), written_until=50) == 0    # announced before the stop
    assert buf.add(200, _ramp(200, 50), written_until=50) == 50   # a new utterance plays
    assert buf.stopped_samples == 200
    assert not buf.read(50, 150).any()
    assert buf.reset() == 50 and buf.add(0, _ramp(0, 10), written_until=0) == 10   # new clock


def test_bounded_and_skipping_ahead_counts_what_was_skipped():
    buf = VoiceBuffer(max_samples=100)
    assert buf.add(0, _ramp(0, 80), written_until=0) == 80
    assert buf.add(80, _ramp(80, 40), written_until=0) == 0 and buf.overflow_samples == 40
    assert buf.discard_before(30) == 30 and buf.late_samples == 30
    assert np.array_equal(buf.read(30, 50), _ramp(30, 50))
