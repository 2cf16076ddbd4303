"""Score a recorded output bag against its input bag: metrics, latency, dropped frames, rate.

Pure file analysis (no ROS graph needed), so the numbers of a report can be recomputed from the
two bags and the replay log at any time, and tests can check them independently.

- Metrics: the recorded ``agent/blendshapes`` frames, placed by header stamp (frame k at
  ``origin + k/25``; missing frames held from the previous one and counted), scored against the
  ground-truth topic with :func:`dualtalk_core.evaluation.evaluate.evaluate_predictions` — the code behind
  ``dualtalk evaluate``. Without a partner face only the partner-free metrics (FD, MSE, SID)
  are given, since P-FD and rPCC need the partner's motion.
- Latency of frame k: receive time of the output frame minus the wall time at which the partner
  audio chunk completing frame k's audio (sample ``(k+1)*640``) was published by the replayer.
- Dropped frames: expected frames (from the partner audio length) that never arrived; gaps are
  runs of missing frames inside the received range, the tail is what is missing at the end.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dualtalk_core import layout

from .. import topics
from . import bagio, timing
from .inputs import InputBag, blendshapes_flame56, dense_motion, frames_by_index, stamp_ns
from .replay import ReplayLog

LOG = logging.getLogger(__name__)


@dataclass
class OutputTopics:
    """Topics the graph publishes that the evaluator records: the node's raw stream, what the
    head driver released for a robot (JointState) and an avatar (ARKit), the per-hop sequences
    (how far the partner input of each hop reached) and the voice as played."""

    blendshapes: str = topics.AGENT_BLENDSHAPES
    state: str = topics.CONVERSATION_STATE
    diagnostics: str = topics.DIAGNOSTICS
    joint_states: str = topics.AGENT_JOINT_STATES
    arkit: str = topics.AGENT_BLENDSHAPES_ARKIT
    sequence: str = topics.AGENT_BLENDSHAPE_SEQUENCE
    audio_played: str = topics.AGENT_AUDIO_PLAYED

    def types(self) -> dict[str, str]:
        from . import typestore as ts
        return {self.blendshapes: ts.BLENDSHAPES, self.state: ts.CONVERSATION_STATE,
                self.diagnostics: ts.DIAGNOSTIC_ARRAY, self.joint_states: ts.JOINT_STATE,
                self.arkit: ts.BLENDSHAPES, self.sequence: ts.BLENDSHAPE_SEQUENCE,
                self.audio_played: ts.AUDIO_CHUNK}

    def qualified(self) -> "OutputTopics":
        """The same names as the output bag stores them (:func:`.bagio.qualified`)."""
        from dataclasses import astuple
        return OutputTopics(*(bagio.qualified(t) for t in astuple(self)))


@dataclass
class OutputRecording:
    """Decoded output bag: frame indices, flame56 rows, receive times; state; diagnostics."""

    frame_index: np.ndarray
    rows: np.ndarray
    received_ns: np.ndarray
    states: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnostics_count: int = 0
    errors: list[str] = field(default_factory=list)


def read_output_bag(path: str | Path, origin_ns: int,
                    topics: OutputTopics | None = None) -> OutputRecording:
    """Read a recorded output bag (bag timestamps = receive times). Output frames stamped on a
    bare media clock (starting at 0) are accepted as well as ones on the input's clock."""
    topics = (topics or OutputTopics()).qualified()     # the bag's spelling (bagio)
    stamps, rows, recv = [], [], []
    rec = OutputRecording(np.zeros(0, np.int64), np.zeros((0, layout.DIM), np.float32),
                          np.zeros(0, np.int64))
    try:
        for topic, t, msg in bagio.iter_messages(path, [topics.blendshapes, topics.state,
                                                         topics.diagnostics]):
            if topic == topics.blendshapes:
                try:
                    rows.append(blendshapes_flame56(msg))
                except ValueError as exc:
                    rec.errors.append(f"{topic}: {exc}")
                    continue
                stamps.append(stamp_ns(msg))
                recv.append(t)
            elif topic == topics.state:
                rec.states.append({"stamp_ns": stamp_ns(msg),
                                   "partner_speaking": bool(msg.partner_speaking),
                                   "agent_speaking": bool(msg.agent_speaking),
                                   "partner_vad": float(msg.partner_voice_activity),
                                   "agent_vad": float(msg.agent_voice_activity)})
            else:
                rec.diagnostics_count += 1
                for status in msg.status:
                    rec.diagnostics[status.name] = {
                        "level": int.from_bytes(status.level, "little")
                        if isinstance(status.level, (bytes, bytearray)) else int(status.level),
                        "message": status.message,
                        "values": {kv.key: kv.value for kv in status.values}}
    except bagio.BagReadError as exc:
        rec.errors.append(str(exc))
    if stamps:
        origin = origin_ns
        if origin > 0 and min(stamps) < origin - 10 * 1_000_000_000:
            origin = 0  # the graph stamps frames with bare media time
        rec.frame_index, rec.rows = frames_by_index(stamps, rows, origin)
        rec.received_ns = np.asarray(recv, np.int64)
    return rec


def percentiles_ms(values_ns: np.ndarray) -> dict[str, float | int | None]:
    """n, mean, min, p50, p95, max of a latency array (ns) in milliseconds."""
    v = np.asarray(values_ns, dtype=np.float64) / 1e6
    if v.size == 0:
        return {"n": 0, "mean": None, "min": None, "p50": None, "p95": None, "max": None}
    return {"n": int(v.size), "mean": float(v.mean()), "min": float(v.min()),
            "p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
            "max": float(v.max())}


def frame_stats(index: np.ndarray, expected: int) -> dict[str, int]:
    """Dropped-frame accounting of received frame indices (in receive order) vs ``expected``."""
    inside = index[(index >= 0) & (index < expected)]
    unique = np.unique(inside)
    received = np.zeros(expected, bool)
    received[unique] = True
    last = int(unique.max()) if unique.size else -1
    gaps, max_gap, run = 0, 0, 0
    for ok in received[:last + 1]:
        if not ok:
            run += 1
        elif run:
            gaps, max_gap, run = gaps + 1, max(max_gap, run), 0
    return {"expected": int(expected), "received": int(index.size),
            "unique": int(unique.size), "missing": int(expected - unique.size),
            "gaps": gaps, "max_gap": max_gap,
            "missing_inside": int((~received[:last + 1]).sum()) if last >= 0 else 0,
            "tail_missing": int(expected - 1 - last) if expected else 0,
            "duplicates": int(inside.size - unique.size),
            "out_of_order": int((np.diff(index) < 0).sum()) if index.size > 1 else 0,
            "outside_range": int(index.size - inside.size)}


def frame_latency_ns(inp: InputBag, out: OutputRecording, log: ReplayLog | None,
                     partner_topic: str) -> tuple[np.ndarray, np.ndarray]:
    """Per received frame: receive time - publish time of the audio completing that frame.

    Returns ``(frame indices, latencies ns)``; frames without a matching published input are
    left out; both empty without a replay log."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if log is None or out.frame_index.size == 0 or inp.chunk_end.size == 0:
        return empty
    _, wall = log.arrays(partner_topic)
    n = min(wall.size, inp.chunk_end.size)
    if n == 0:
        return empty
    ends = np.maximum.accumulate(inp.chunk_end[:n])
    need = np.minimum((out.frame_index + 1) * layout.SAMPLES_PER_FRAME, ends[-1])
    pos = np.searchsorted(ends, need, side="left")
    ok = (pos < n) & (out.frame_index >= 0)
    return out.frame_index[ok], out.received_ns[ok] - wall[:n][pos[ok]]


def node_latency(diagnostics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """The inference node's own latency figures from its last ``/diagnostics`` status:
    ``processing`` (arrival of the partner chunk completing a hop -> publish) and
    ``end_to_end`` (ROS now - frame stamp; ``unavailable`` when stamps are not on its clock)."""
    for name, st in sorted(diagnostics.items()):
        values = st.get("values", {})
        if "processing_latency_ms_p50" not in values:
            continue
        out: dict[str, dict[str, Any]] = {"status": {"name": name}}
        for kind in ("processing", "end_to_end"):
            row = {}
            for q in ("p50", "p95", "max", "n"):
                v = values.get(f"{kind}_latency_ms_{q}")
                try:
                    row[q] = int(float(v)) if q == "n" else float(v)
                except (TypeError, ValueError):
                    row[q] = v            # "unavailable" (or absent: None)
            out[kind] = row
        return out
    return None


@dataclass
class BagEvaluation:
    """Everything a report shows for one bag; ``summary`` is the JSON-able part."""

    summary: dict[str, Any]
    pred: np.ndarray | None = None
    gt: np.ndarray | None = None
    partner: np.ndarray | None = None
    received_mask: np.ndarray | None = None
    latency_frames: np.ndarray | None = None
    latency_ms: np.ndarray | None = None
    released: np.ndarray | None = None   # the motion as the head driver showed it (timing)
    result: Any = None   # dualtalk_core.evaluation.evaluate.EvaluationResult or None


def partner_free_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, dict[str, float]]:
    """FD, MSE and SID per group (the metrics that do not need the partner's motion)."""
    from dualtalk_core.evaluation import metrics as M

    n = min(len(pred), len(gt))
    out = {}
    for g, sl in layout.GROUPS.items():
        p, t = pred[:n, sl], gt[:n, sl]
        out[g] = {"FD": M.fd(p, t), "MSE": M.mse(p, t),
                  "SID": M.sid(p, t, M.SID_CLUSTERS.get(g, 10))}
    return out


def score_bag(inp: InputBag, output_bag: str | Path | None, log: ReplayLog | None, *,
              partner_topic: str = topics.PARTNER_AUDIO, outputs: OutputTopics | None = None,
              rate: float | None = None, sid_fit_on: str = "pred") -> BagEvaluation:
    """Compute the report of one bag from the input, the recorded output bag and the replay log.

    Never raises for bad content: problems are listed in ``summary["errors"]``.
    """
    outputs = outputs or OutputTopics()
    errors = list(inp.errors)
    summary = _input_summary(inp, output_bag, log, rate)
    ev = BagEvaluation(summary=summary)
    summary.update(timing.unmeasured("no output bag was recorded"))
    out = None
    # a replay that restamped the inputs onto the wall clock moved the output stamps with them
    origin = inp.origin_ns + (log.restamp_ns if log is not None and log.restamp_ns else 0)
    if output_bag is not None and Path(output_bag).exists():
        try:
            out = read_output_bag(output_bag, origin, outputs)
            errors += out.errors
        except bagio.BagReadError as exc:
            errors.append(str(exc))
    elif output_bag is not None:
        errors.append(f"output bag {output_bag} was not written")

    expected = inp.expected_frames
    if inp.gt is not None and expected == 0:
        expected = len(inp.gt)
    if out is not None:
        _score_output(ev, inp, out, log, expected, errors, partner_topic=partner_topic,
                      outputs=outputs, rate=rate)
        rec = timing.read_timing(output_bag, outputs)
        summary.update(timing.timing_summary(rec, out, origin, expected, log, partner_topic))
        if ev.pred is not None:
            shown = timing.shown_frames(rec, origin, len(ev.pred), timing.on_wall_clock(log))
            ev.released = timing.released_motion(ev.pred, shown)
            if shown is not None:
                summary["released"]["slots_showing_another_frame"] = int(
                    (shown != np.arange(len(shown))).sum())
    ev.gt, ev.partner = inp.gt, inp.partner_face
    _score_metrics(ev, inp, expected, errors, sid_fit_on)
    summary["errors"] = errors
    summary["status"] = ("error" if out is None or not summary.get("frames", {}).get("received")
                         else "partial" if errors else "ok")
    return ev


def _input_summary(inp: InputBag, output_bag, log: ReplayLog | None,
                   rate: float | None) -> dict[str, Any]:
    """What went in: input topics and counts, ground truth, and the replay's own log."""
    summary: dict[str, Any] = {
        "bag": str(inp.path), "name": inp.name, "output_bag": str(output_bag or ""),
        "input": {"topics": {t: {"type": s.msgtype, "count": s.count}
                             for t, s in sorted(inp.topics.items())},
                  "audio_samples": inp.partner_audio_samples,
                  "duration_s": inp.partner_audio_samples / layout.SAMPLE_RATE,
                  "ground_truth_frames": None if inp.gt is None else int(len(inp.gt)),
                  "partner_face_frames": None if inp.partner_face is None
                  else int(len(inp.partner_face))},
        "warnings": list(inp.warnings)}
    if log is not None:
        summary["replay"] = {"rate": rate, "aborted": log.aborted,
                             "duration_s": (log.end_wall_ns - log.start_wall_ns) / 1e9,
                             "published": {t: log.count(t) for t in sorted(log.stamps)},
                             "missing_subscribers": log.missing_subscribers}
    return summary


def _score_output(ev: BagEvaluation, inp: InputBag, out, log: ReplayLog | None, expected: int,
                  errors: list[str], *, partner_topic: str, outputs: OutputTopics,
                  rate: float | None) -> None:
    """What came out: frames, rate, latency, state, diagnostics, and the dense prediction."""
    summary = ev.summary
    fs = frame_stats(out.frame_index, expected)
    summary["frames"] = fs
    if fs["received"] == 0:
        errors.append(f"no frames received on {outputs.blendshapes!r}")
    recv = out.received_ns
    hz = (float((recv.size - 1) / ((recv.max() - recv.min()) / 1e9))
          if recv.size > 1 and recv.max() > recv.min() else None)
    summary["rate"] = {"output_hz": hz,
                       "expected_hz": layout.FRAME_RATE * rate if rate and rate > 0 else None}
    lat_frames, lat = frame_latency_ns(inp, out, log, partner_topic)
    summary["latency_ms"] = percentiles_ms(lat)
    if lat.size:
        ev.latency_frames, ev.latency_ms = lat_frames, lat / 1e6
    summary["conversation_state"] = _state_summary(out.states)
    summary["diagnostics"] = {"messages": out.diagnostics_count, "last": out.diagnostics}
    summary["node_latency_ms"] = node_latency(out.diagnostics)
    if fs["tail_missing"] > 0 and fs["received"] > 0:
        summary["warnings"].append(
            f"the last {fs['tail_missing']} frame(s) never arrived: dualtalk_node publishes "
            f"its lookahead tail end_of_stream_s after the partner audio stops (is it 0, or "
            f"longer than the evaluation's drain_idle_s?)")
    num = min(expected, len(inp.gt)) if inp.gt is not None else expected
    inside = out.frame_index[(out.frame_index >= 0) & (out.frame_index < num)]
    if inside.size:
        # frames after the last received one (the end of the stream inside the lookahead)
        # were never produced: they are left out of scoring, not invented
        ev.pred, ev.received_mask = dense_motion(out.frame_index, out.rows,
                                                 int(inside.max()) + 1)
        summary["scored_frames"] = int(inside.max()) + 1


def _score_metrics(ev: BagEvaluation, inp: InputBag, expected: int, errors: list[str],
                   sid_fit_on: str) -> None:
    """The paper's metrics against the bag's ground truth (partner-free ones without a face)."""
    summary = ev.summary
    summary["metrics"] = None
    if inp.gt is None:
        summary["metrics_note"] = "no ground truth in the bag: metrics not computed"
        return
    if ev.pred is None or not ev.received_mask.any():
        summary["metrics_note"] = "no predicted frames: metrics not computed"
        return
    held = int((~ev.received_mask).sum())
    note = (f"{held} missing frame(s) held from the previous frame before scoring; "
            if held else "")
    num = min(expected, len(inp.gt))
    if len(ev.pred) < num:
        note += (f"scored frames 0..{len(ev.pred) - 1}: the last {num - len(ev.pred)} "
                 f"frame(s) were never published (end of stream); ")
    try:
        from dualtalk_core.evaluation.evaluate import evaluate_predictions
        if inp.partner_face is not None:
            kwargs = {}
            if inp.agent_audio is not None:
                kwargs["self_audio"] = {inp.name: inp.agent_audio}
            res = evaluate_predictions({inp.name: ev.pred}, {inp.name: inp.gt},
                                       {inp.name: inp.partner_face},
                                       sid_fit_on=sid_fit_on, **kwargs)
            ev.result = res
            summary["metrics"] = {"raw": res.mean, "scaled": res.scaled,
                                  "per_clip": res.per_clip, "extras": res.primary.extras}
        else:
            summary["metrics"] = {"raw_partner_free": partner_free_metrics(ev.pred, inp.gt)}
            note += ("no partner face in the bag: P-FD and rPCC need it, so only FD, MSE "
                     "and SID are given; ")
    except (ImportError, ValueError) as exc:
        errors.append(f"metrics: {exc}")
    summary["metrics_note"] = note.rstrip("; ") or None


def _state_summary(states: list[dict[str, Any]]) -> dict[str, Any]:
    if not states:
        return {"messages": 0}
    arr = {k: np.array([s[k] for s in states], dtype=float)
           for k in ("partner_speaking", "agent_speaking", "partner_vad", "agent_vad")}
    return {"messages": len(states),
            "partner_speaking_fraction": float(arr["partner_speaking"].mean()),
            "agent_speaking_fraction": float(arr["agent_speaking"].mean()),
            "mean_partner_vad": float(arr["partner_vad"].mean()),
            "mean_agent_vad": float(arr["agent_vad"].mean())}
