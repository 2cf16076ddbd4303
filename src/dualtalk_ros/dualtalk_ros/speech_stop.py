"""Barge-in for ``dualtalk_node``: after a stop, the agent's queued speech counts as silence.

Why: a TTS may publish a whole sentence seconds ahead; when the robot is interrupted
(``agent/speech_stop``) the loudspeaker goes quiet (``voice_player`` drops the queue), and the
mouth must close too instead of mouthing the rest of the sentence. The model has already been fed
the agent audio up to its lookahead (``self_lookahead_s - partner_lookahead_s`` ahead of now for
a live model) - that cannot be taken back - so what remains is to overwrite the queued rest with
silence and to refuse chunks of the interrupted speech still on their way. ROS-free bookkeeping;
the node pushes the silence (both runners take a push that overlaps received audio as long as
part of it is new, which the one extra sample guarantees).
"""
from __future__ import annotations


class SpeechStop:
    """Tracks the agent speech announced (sample indices on the conversation clock)."""

    def __init__(self) -> None:
        self.announced_end = 0       # highest agent index + 1 received
        self.cancel_before = 0       # chunks ending at or before this were interrupted
        self.silenced_until = 0      # silence already pushed up to here
        self.last_silence: tuple[int, int] | None = None   # (first, count) of the last push

    def accept(self, first: int, n: int) -> bool:
        """Whether an agent chunk ``[first, first + n)`` is used (not interrupted speech)."""
        if first + n <= self.cancel_before:
            return False
        self.announced_end = max(self.announced_end, first + n)
        return True

    def stop(self, now_index: int) -> tuple[int, int] | None:
        """A stop at playback index ``now_index``: ``(first, count)`` of the silence to push
        over the queued speech (one sample past it), or ``None`` when nothing is queued."""
        self.cancel_before = max(self.cancel_before, self.announced_end)
        first = max(0, now_index, self.silenced_until)
        if self.announced_end <= first:
            return None
        self.silenced_until = self.announced_end + 1
        self.last_silence = (first, self.silenced_until - first)
        return self.last_silence
