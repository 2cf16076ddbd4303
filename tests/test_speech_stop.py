"""dualtalk_node's barge-in bookkeeping (dualtalk_ros.speech_stop), without ROS."""
from __future__ import annotations

from dualtalk_ros.speech_stop import SpeechStop


def test_stop_silences_the_queue_and_refuses_the_interrupted_speech():
    s = SpeechStop()
    assert s.stop(100) is None                       # nothing queued: nothing to silence
    for first in range(0, 8000, 320):                # a sentence published ahead
        assert s.accept(first, 320)
    assert s.stop(3000) == (3000, 5001)               # to one sample past the queue
    assert not s.accept(7680, 320)                    # still on its way: interrupted speech
    assert s.accept(8000, 320)                        # a new utterance after it plays
    assert s.stop(7000) == (8001, 320)                # only the part not silenced yet
    assert s.stop(9000) is None and s.last_silence == (8001, 320)
