"""Timing where a person notices it, from an output bag (issue 17): lip offset, listening
reaction latency, and the head driver's release rate and jitter.

Pure file analysis, like :mod:`.score`: the figures can be recomputed from the output bag and
the replay log at any time. Times:

- *release time* of an agent frame: the receive time of ``agent/joint_states`` (else
  ``agent/blendshapes_arkit``) in the recorder, i.e. the bag timestamp (rmw
  ``received_timestamp``, system clock). It trails the head driver's publish by the DDS
  transport on loopback (shared memory / UDP on 127.0.0.1): tens of microseconds to a few
  milliseconds, which is the error of every figure below.
- *play time* of agent sample ``i``: from ``agent/audio_played`` (``voice_player``: one chunk per
  device write, stamped with when its first sample plays), ``stamp + (i - first_index) / rate``.
  It is the player's schedule on the graph's clock (each sample written ``latency_s`` ahead into
  the device); a real loudspeaker adds its own fixed output latency on top.

**Lip offset** (``lip_offset_ms``): for every released frame ``k`` whose first audio sample
(index ``k * 640`` on the conversation clock) was played, release time - play time of that
sample; positive = the face moves after the voice. **Listening reaction latency**
(``listening_reaction_ms``): for each partner media time ``t`` (every 40 ms frame end), the wall
time the first ``agent/blendshapes`` frame whose computation used partner input up to ``t`` was
published (its receive time; the hop's reach is ``agent/blendshape_sequence.partner_input_end``)
minus the wall time at which ``t`` happened on the graph's clock (origin + ``t``; ``bag evaluate``
replays each partner chunk once its last sample has happened, as a microphone delivers it, so
no frame can use input before it happened). Partner input
used only by the end-of-stream flush (the stream stopped; a robot's microphone keeps going) is
left out and counted (``flush_only``).

Both need the graph's clock to be the wall clock (the replay restamps the inputs onto it,
``ReplayLog.restamp_ns``); otherwise, and when there was nothing to measure (no agent speech
played, no frame released), ``n`` is 0, the values are null and ``why`` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dualtalk_core import layout

from . import bagio
from .inputs import FRAME_NS, stamp_ns

NS = 1_000_000_000
FLUSH_SLACK_NS = NS // 2
"""A hop received this long after the last partner chunk was published is the end-of-stream
flush (``end_of_stream_s`` >= 1 s after it), not a reaction to live input."""


@dataclass
class TimingRecording:
    """What the timing figures need from an output bag (int64 ns arrays)."""

    release_topic: str = ""
    release_stamp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    release_recv: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seq_stamp: list[int] = field(default_factory=list)
    seq_frames: list[int] = field(default_factory=list)
    seq_input_end: list[int] = field(default_factory=list)
    seq_recv: list[int] = field(default_factory=list)
    played: list[tuple[int, int, int, int]] = field(default_factory=list)  # first, n, stamp, rate
    errors: list[str] = field(default_factory=list)


def read_timing(path: str | Path, outputs) -> TimingRecording:
    """Released frames, per-hop sequences and played audio of an output bag."""
    q = outputs.qualified()
    rec = TimingRecording()
    released: dict[str, tuple[list[int], list[int]]] = {q.joint_states: ([], []),
                                                        q.arkit: ([], [])}
    try:
        for topic, t, msg in bagio.iter_messages(path, [q.joint_states, q.arkit, q.sequence,
                                                        q.audio_played]):
            if topic in released:
                released[topic][0].append(stamp_ns(msg))
                released[topic][1].append(t)
            elif topic == q.sequence:
                rec.seq_stamp.append(stamp_ns(msg))
                rec.seq_frames.append(int(msg.num_frames))
                end = msg.partner_input_end if hasattr(msg, "partner_input_end") else None
                rec.seq_input_end.append(0 if end is None
                                         else int(end.sec) * NS + int(end.nanosec))
                rec.seq_recv.append(t)
            else:
                n = len(msg.data_int16) or len(msg.data_float32)
                rec.played.append((int(msg.first_sample_index), n // max(int(msg.channels), 1),
                                   stamp_ns(msg), int(msg.sample_rate)))
    except bagio.BagReadError as exc:
        rec.errors.append(str(exc))
    for topic in (q.joint_states, q.arkit):
        stamps, recv = released[topic]
        if stamps:
            rec.release_topic = topic
            rec.release_stamp = np.asarray(stamps, np.int64)
            rec.release_recv = np.asarray(recv, np.int64)
            break
    return rec


def stats_ms(values_ns: np.ndarray, why: str | None = None) -> dict[str, Any]:
    """{p50, p95, max, min, abs_p95, n} in ms (signed values; ``abs_p95`` of their size), or
    n = 0 with null values and ``why``."""
    v = np.asarray(values_ns, np.float64) / 1e6
    if v.size == 0:
        return {"p50": None, "p95": None, "max": None, "min": None, "abs_p95": None, "n": 0,
                "why": why or "nothing to measure"}
    return {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max()), "min": float(v.min()),
            "abs_p95": float(np.percentile(np.abs(v), 95)), "n": int(v.size)}


def played_time_ns(played: list[tuple[int, int, int, int]], index: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(play time ns, played?) of each agent sample in ``index``."""
    if not played:
        return np.zeros(index.size, np.int64), np.zeros(index.size, bool)
    p = np.asarray(sorted(played), np.int64)
    first, n, stamp, rate = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    j = np.searchsorted(first, index, side="right") - 1
    ok = (j >= 0)
    j = np.clip(j, 0, None)
    ok &= index < first[j] + n[j]
    t = stamp[j] + (index - first[j]) * NS // np.maximum(rate[j], 1)
    return t, ok


def lip_offset(rec: TimingRecording, origin_ns: int, on_wall_clock: bool) -> dict[str, Any]:
    """Release time - play time of each released frame's first audio sample (module doc)."""
    if not on_wall_clock:
        return stats_ms([], "the inputs were not replayed onto the wall clock (rate != 1 or "
                            "sim time): release times (wall) and play times (graph clock) "
                            "cannot be compared")
    if rec.release_stamp.size == 0:
        return stats_ms([], "head_driver released no frame (no agent/joint_states or "
                            "agent/blendshapes_arkit in the output bag)")
    if not rec.played:
        return stats_ms([], "no agent/audio_played in the output bag: no agent speech was "
                            "played (the bag has no agent audio, or voice_player did not run)")
    k = np.rint((rec.release_stamp - origin_ns) / FRAME_NS).astype(np.int64)
    t, ok = played_time_ns(rec.played, k * layout.SAMPLES_PER_FRAME)
    ok &= k >= 0
    return stats_ms((rec.release_recv - t)[ok], "no released frame's audio was played")


def _frame_reach(rec: TimingRecording, origin_ns: int) -> dict[int, tuple[int, int]]:
    """Frame index -> (partner input end ns, sequence receive ns) from the per-hop sequences
    (a later hop with the same frames - a restart - wins)."""
    reach: dict[int, tuple[int, int]] = {}
    for stamp, n, end, recv in zip(rec.seq_stamp, rec.seq_frames, rec.seq_input_end,
                                   rec.seq_recv):
        if end <= 0:
            continue
        k0 = int(round((stamp - origin_ns) / FRAME_NS))
        for k in range(k0, k0 + n):
            reach[k] = (end, recv)
    return reach


def listening_reaction(rec: TimingRecording, frame_index: np.ndarray, frame_recv: np.ndarray,
                       origin_ns: int, expected: int, partner_end_wall_ns: int | None,
                       on_wall_clock: bool) -> dict[str, Any]:
    """Partner input at media time t -> first published frame computed with it (module doc)."""
    if not on_wall_clock:
        return stats_ms([], "the inputs were not replayed onto the wall clock (rate != 1 or "
                            "sim time): media times have no wall time to measure from")
    reach = _frame_reach(rec, origin_ns)
    if not reach:
        return stats_ms([], "no agent/blendshape_sequence with partner_input_end in the output "
                            "bag (a graph from before issue 17?)")
    order = np.argsort(frame_recv, kind="stable")
    ends, recvs, live = [], [], []
    for i in order:
        got = reach.get(int(frame_index[i]))
        if got is not None:
            ends.append(got[0])
            recvs.append(int(frame_recv[i]))
            live.append(partner_end_wall_ns is None
                        or got[1] <= partner_end_wall_ns + FLUSH_SLACK_NS)
    if not ends:
        return stats_ms([], "no published frame belongs to a recorded sequence")
    ends_arr, recv_arr = np.maximum.accumulate(np.asarray(ends, np.int64)), np.asarray(recvs)
    live_arr = np.asarray(live)
    t = origin_ns + (np.arange(expected, dtype=np.int64) + 1) * FRAME_NS
    pos = np.searchsorted(ends_arr, t, side="left")
    found = pos < ends_arr.size
    flush_only = found.copy()
    flush_only[found] = ~live_arr[pos[found]]
    use = found & ~flush_only
    out = stats_ms(recv_arr[pos[use]] - t[use], "no partner input was reacted to")
    out["flush_only"] = int(flush_only.sum())
    out["never_used"] = int((~found).sum())
    return out


def release_stats(rec: TimingRecording, diagnostics: dict[str, dict[str, Any]]
                  ) -> dict[str, Any]:
    """What a robot got from the head driver: frames, rate (Hz), jitter (std of the interval
    between releases, ms) and its ``late_frames`` counter (frames released after their stamp)."""
    recv = np.sort(rec.release_recv)
    out: dict[str, Any] = {"topic": rec.release_topic or None, "frames": int(recv.size),
                           "rate_hz": None, "jitter_ms": None, "late_frames": None}
    if recv.size > 2 and recv[-1] > recv[0]:
        out["rate_hz"] = float((recv.size - 1) / ((recv[-1] - recv[0]) / 1e9))
        out["jitter_ms"] = float(np.std(np.diff(recv)) / 1e6)
    for name, st in sorted(diagnostics.items()):
        if name.startswith("head_driver"):
            try:
                out["late_frames"] = int(float(st.get("values", {}).get("late_frames")))
            except (TypeError, ValueError):
                pass
    return out


def shown_frames(rec: TimingRecording, origin_ns: int, n: int, on_wall_clock: bool
                 ) -> np.ndarray | None:
    """Which frame the head driver's face was showing while each of the ``n`` frame slots'
    audio played: index ``[n]`` of the latest frame released (by receive time) at or before
    the slot's first sample played (+ half a frame: a video frame is on screen for 40 ms), -1
    before the first release. A slot whose audio was not played is timed on the graph's clock
    (``origin + k * 40 ms``). None when there is no release or no wall clock to compare on.

    This is what a camera filming the robot would see next to its voice: a frame shows from
    its release until the next release, so a late frame shows as the previous pose held, and a
    frame released out of order is overwritten by the one released after it."""
    if not on_wall_clock or rec.release_stamp.size == 0 or n <= 0:
        return None
    k = np.arange(n, dtype=np.int64)
    slot, played = played_time_ns(rec.played, k * layout.SAMPLES_PER_FRAME)
    slot = np.where(played, slot, origin_ns + k * FRAME_NS) + FRAME_NS // 2
    order = np.argsort(rec.release_recv, kind="stable")
    recv = rec.release_recv[order]
    frame = np.rint((rec.release_stamp[order] - origin_ns) / FRAME_NS).astype(np.int64)
    pos = np.searchsorted(recv, slot, side="right") - 1
    return np.where(pos >= 0, frame[np.clip(pos, 0, None)], -1)


def released_motion(pred: np.ndarray | None, shown: np.ndarray | None) -> np.ndarray | None:
    """The motion [T, 56] as released (:func:`shown_frames`): slot ``k`` gets the frame shown
    then, the neutral face (zeros) before the first release; None without both inputs."""
    if pred is None or shown is None or len(pred) == 0:
        return None
    n = min(len(pred), len(shown))
    idx = np.clip(shown[:n], 0, len(pred) - 1)
    return np.where((shown[:n] >= 0)[:, None], pred[idx], 0.0).astype(np.float32)


def timing_summary(rec: TimingRecording, out, origin_ns: int, expected: int,
                   log, partner_topic: str) -> dict[str, Any]:
    """The report's ``lip_offset_ms``, ``listening_reaction_ms`` and ``released`` entries
    (``rec``: :func:`read_timing` of the output bag; ``out``: the scored
    :class:`.score.OutputRecording`; ``log``: the replay log or None)."""
    on_wall = on_wall_clock(log)
    partner_end = None
    if log is not None:
        _, wall = log.arrays(partner_topic)
        partner_end = int(wall.max()) if wall.size else None
    result = {"lip_offset_ms": lip_offset(rec, origin_ns, on_wall),
              "listening_reaction_ms": listening_reaction(
                  rec, out.frame_index, out.received_ns, origin_ns, expected, partner_end,
                  on_wall),
              "released": release_stats(rec, out.diagnostics)}
    if rec.errors:
        result["timing_errors"] = rec.errors
    return result


def on_wall_clock(log) -> bool:
    """Whether the replay put the graph's clock on the wall clock (``restamp_ns``)."""
    return log is not None and log.restamp_ns is not None


def unmeasured(why: str) -> dict[str, Any]:
    """The timing entries of a report with nothing to measure them on (e.g. no output bag)."""
    return {"lip_offset_ms": stats_ms([], why), "listening_reaction_ms": stats_ms([], why)}
