"""Decode what an evaluation needs from an input bag: audio extent, ground truth, partner face.

Frames are placed by their header stamp (frame k at ``origin + k / 25`` s) rather than by
arrival order, so bags recorded on robots (with gaps or reordering) are read correctly. The
origin is the bag's ``dualtalk.start_time_ns`` custom data when present (bags from ``bag make``),
else the stamp of the first partner audio chunk minus its sample offset.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dualtalk_core import layout

from . import bagio
from .make import META_CLIP, META_SPEAKER, META_START_NS, BagTopics

LOG = logging.getLogger(__name__)

FRAME_NS = 1_000_000_000 // layout.FRAME_RATE


def stamp_ns(msg) -> int:
    """Header stamp of a rosbags or rclpy message, in ns."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


def blendshapes_flame56(msg) -> np.ndarray:
    """A Blendshapes message -> float32 [56] in the flame56 order (reorders by name if needed).

    Raises ``ValueError`` naming the rig when the message cannot be mapped to flame56.
    """
    from ..conversions import blendshapes_to_numpy  # same rules as the nodes use

    weights, names = blendshapes_to_numpy(msg)
    if tuple(names) == layout.FLAME56_NAMES:
        return weights
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in layout.FLAME56_NAMES if n not in index]
    if missing:
        raise ValueError(f"Blendshapes rig {msg.rig!r} cannot be scored as flame56 "
                         f"(missing {len(missing)} names, e.g. {missing[:3]})")
    return weights[[index[n] for n in layout.FLAME56_NAMES]]


def frames_by_index(stamps: list[int], rows: list[np.ndarray], origin_ns: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 [N], rows [N,56]) with index = round((stamp - origin) / 40 ms)."""
    idx = np.rint((np.asarray(stamps, dtype=np.int64) - origin_ns) / FRAME_NS).astype(np.int64)
    return idx, (np.stack(rows) if rows else np.zeros((0, layout.DIM), np.float32))


def dense_motion(idx: np.ndarray, rows: np.ndarray, num_frames: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frames by index -> ([T,56] with missing frames held from the previous one, received mask).

    Leading missing frames take the first received frame. Duplicates: the last one wins.
    """
    valid = idx >= 0
    idx, rows = idx[valid], rows[valid]
    if num_frames is None:
        num_frames = int(idx.max()) + 1 if idx.size else 0
    keep = idx < num_frames
    idx, rows = idx[keep], rows[keep]
    out = np.zeros((num_frames, layout.DIM), np.float32)
    mask = np.zeros(num_frames, bool)
    out[idx] = rows
    mask[idx] = True
    if mask.any():
        # index of the last received frame at or before each position (hold-last)
        pos = np.where(mask, np.arange(num_frames), -1)
        np.maximum.accumulate(pos, out=pos)
        pos[pos < 0] = int(np.argmax(mask))
        out = out[pos]
    return out, mask


@dataclass
class InputBag:
    """The evaluation-relevant content of an input bag."""

    path: Path
    name: str
    topics: dict[str, bagio.TopicSummary]
    origin_ns: int
    partner_audio_samples: int = 0
    chunk_first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chunk_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    agent_audio: np.ndarray | None = None
    gt: np.ndarray | None = None
    partner_face: np.ndarray | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def expected_frames(self) -> int:
        return layout.num_frames_for_samples(self.partner_audio_samples)


def bag_name(path: Path, meta: dict[str, str]) -> str:
    """``<clip>_speakerN`` from the bag's custom data, else the bag directory name."""
    if META_CLIP in meta and META_SPEAKER in meta:
        return f"{meta[META_CLIP]}_speaker{meta[META_SPEAKER]}"
    return path.name


def read_input_bag(path: str | Path, topics: BagTopics | None = None) -> InputBag:
    """Read an input bag. Problems (missing topics, read errors) land in ``.errors`` /
    ``.warnings`` with what could be read kept, so a report can still be written.
    Raises ``BagReadError`` only when the bag cannot be opened at all."""
    topics = (topics or BagTopics()).qualified()     # the bag's spelling (bagio)
    path = Path(path)
    meta = bagio.custom_data(path)
    reader = bagio.open_reader(path)
    try:
        summary = bagio.topics(reader)
    finally:
        reader.close()
    bag = InputBag(path=path, name=bag_name(path, meta), topics=summary, origin_ns=0)
    if topics.partner_audio not in summary:
        bag.errors.append(f"bag {path}: required topic {topics.partner_audio!r} (partner audio, "
                          f"it drives the graph's clock) is missing; topics: {sorted(summary)}")
    for what, t in (("agent audio", topics.agent_audio), ("partner face", topics.partner_face),
                    ("ground truth", topics.agent_gt)):
        if t not in summary:
            bag.warnings.append(f"no {what} topic {t!r} in the bag")

    wanted = [t for t in (topics.partner_audio, topics.agent_audio, topics.partner_face,
                          topics.agent_gt) if t in summary]
    first, end, first_stamp = [], [], None
    agent_chunks: list[tuple[int, np.ndarray]] = []
    face: dict[str, tuple[list[int], list[np.ndarray]]] = {
        topics.partner_face: ([], []), topics.agent_gt: ([], [])}
    from ..conversions import audio_chunk_to_numpy
    try:
        for topic, _, msg in bagio.iter_messages(path, wanted):
            try:
                if topic == topics.partner_audio:
                    n = audio_chunk_to_numpy(msg).shape[0]
                    first.append(int(msg.first_sample_index))
                    end.append(int(msg.first_sample_index) + n)
                    if first_stamp is None:
                        first_stamp = stamp_ns(msg) - int(msg.first_sample_index) * (
                            1_000_000_000 // layout.SAMPLE_RATE)
                elif topic == topics.agent_audio:
                    agent_chunks.append((int(msg.first_sample_index),
                                         audio_chunk_to_numpy(msg).mean(axis=1)))
                else:
                    face[topic][0].append(stamp_ns(msg))
                    face[topic][1].append(blendshapes_flame56(msg))
            except ValueError as exc:
                bag.errors.append(f"{topic}: bad message skipped: {exc}")
    except bagio.BagReadError as exc:
        bag.errors.append(str(exc))
    bag.chunk_first = np.asarray(first, np.int64)
    bag.chunk_end = np.asarray(end, np.int64)
    bag.partner_audio_samples = int(bag.chunk_end.max()) if end else 0
    if META_START_NS in meta:
        bag.origin_ns = int(meta[META_START_NS])
    elif first_stamp is not None:
        bag.origin_ns = first_stamp
    if agent_chunks:
        total = max(f + len(a) for f, a in agent_chunks)
        audio = np.zeros(total, np.float32)
        for f, a in agent_chunks:
            audio[f:f + len(a)] = a
        bag.agent_audio = audio
    for topic, attr in ((topics.partner_face, "partner_face"), (topics.agent_gt, "gt")):
        stamps, rows = face[topic]
        if rows:
            idx, arr = frames_by_index(stamps, rows, bag.origin_ns)
            dense, mask = dense_motion(idx, arr)
            if not mask.all():
                bag.warnings.append(f"{topic}: {int((~mask).sum())} of {mask.size} frames "
                                    f"missing in the bag (held from the previous frame)")
            setattr(bag, attr, dense)
    return bag
