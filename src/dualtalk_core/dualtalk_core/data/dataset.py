"""DualTalk data sets: clip-sides from the release layout, and training windows.

Layout (the DualTalk release)::

    <root>/{train,test,ood}/<clip>_speaker1.wav  <clip>_speaker1.npz
                            <clip>_speaker2.wav  <clip>_speaker2.npz

A *clip-side* is one direction of a pair: the agent is ``speakerN`` and its partner the other
speaker. Each side carries the agent's own audio, the partner's audio and motion, and the
agent's target motion, all trimmed to a common length. Both directions of every pair are loaded.

The loader never dies on one bad file: each problem (missing partner, unreadable wav, wrong sample
rate, NaN, length mismatch beyond one frame, missing npz field...) becomes a :class:`DataIssue`
naming the file and what is wrong, the affected sides are skipped (or, where an option allows it,
loaded with a documented substitute), and :class:`DataReport` sums it up per reason.

The second rig is the third-party ARKit version: per side a ``<clip>_speakerN.npy`` [T, 61]
(``rig="arkit61"``), used in place of the ``.npz``.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dualtalk_core import layout
# the audio reasons of the data report are the reader's (re-exported for report users)
from dualtalk_core.media.audio_io import (NON_FINITE, NOT_MONO, UNREADABLE_WAV,  # noqa: F401
                                          WRONG_SAMPLE_RATE)

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "ood")
RIG_SUFFIX = {layout.FLAME56: ".npz", layout.ARKIT61: ".npy"}
RIG_DIM = {layout.FLAME56: layout.DIM, layout.ARKIT61: len(layout.ARKIT61_NAMES)}
SIDE_NAME_RE = re.compile(r"^(?P<clip>.+)_speaker(?P<spk>[12])$")
"""``<clip>_speaker<1|2>``: the name of one side of a conversation pair (file stem)."""

# Reason codes (stable strings: DataReport counts by them, tests match them).
MISSING_PARTNER = "missing partner"
MISSING_PARTNER_MOTION = "missing partner motion"
MISSING_TARGET = "missing target motion"
MISSING_SELF_AUDIO = "missing self audio"
LENGTH_MISMATCH = "length mismatch"
BAD_MOTION = "bad motion file"
MISSING_FIELD = "missing npz field"
TOO_SHORT = "too short"


@dataclass
class ClipSide:
    """One direction of a conversation pair, arrays trimmed to a common length.

    ``self_audio``/``partner_audio`` are float32 [n] at 16 kHz with ``n <= T * 640`` and
    ``layout.num_frames_for_samples(n) == T``; motions are float32 [T, D] (D = 56 for flame56).
    ``target_motion`` is ``None`` only when loaded with ``require_target=False``.
    """

    clip: str
    speaker: int
    self_audio: np.ndarray
    partner_audio: np.ndarray
    partner_motion: np.ndarray
    target_motion: np.ndarray | None
    rig: str = layout.FLAME56
    partner_motion_is_zeros: bool = False

    @property
    def name(self) -> str:
        return f"{self.clip}_speaker{self.speaker}"

    @property
    def partner_speaker(self) -> int:
        return 3 - self.speaker

    @property
    def num_frames(self) -> int:
        return int(self.partner_motion.shape[0])


@dataclass
class DataIssue:
    """One problem: the file at fault, a reason code, details, and what the loader did."""

    path: str
    reason: str
    detail: str
    action: str  # e.g. "skipped x_speaker1, x_speaker2" or "filled with zeros for x_speaker1"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}: {self.detail} -> {self.action}"


@dataclass
class DataReport:
    """What :func:`load_split` found: sides loaded, sides skipped, and every issue."""

    root: str
    split: str | None
    loaded: int = 0
    skipped: int = 0
    clips: int = 0
    issues: list[DataIssue] = field(default_factory=list)

    def add(self, path: Path | str, reason: str, detail: str, action: str) -> None:
        issue = DataIssue(str(path), reason, detail, action)
        self.issues.append(issue)
        log.debug("%s", issue)  # callers print report.format(); no duplicate warnings

    def counts(self) -> dict[str, int]:
        """Issues per reason code."""
        return dict(Counter(i.reason for i in self.issues))

    def summary(self) -> str:
        where = f"{self.root}" + (f" [{self.split}]" if self.split else "")
        lines = [f"{where}: {self.clips} clips, loaded {self.loaded} clip-sides, "
                 f"skipped {self.skipped} clip-sides, {len(self.issues)} issues"]
        for reason, n in sorted(self.counts().items()):
            lines.append(f"  {reason}: {n}")
        return "\n".join(lines)

    def format(self) -> str:
        """Every issue on its own line, then the summary."""
        return "\n".join([str(i) for i in self.issues] + [self.summary()])


# --------------------------------------------------------------------------------------------
# file readers: return (array, None) or (None, (reason, detail))

def read_wav(path: Path) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """A 16 kHz mono wav as float32 (the strict :func:`~dualtalk_core.media.audio_io.load_wav`);
    never raises (the problem is returned instead)."""
    from dualtalk_core.media.audio_io import AudioFileError, load_wav

    try:
        return load_wav(path, layout.SAMPLE_RATE, strict=True), None
    except AudioFileError as exc:
        return None, (exc.reason, exc.detail)


def read_motion(path: Path, rig: str) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """Read one side's motion in ``rig`` layout as float32 [T, D]; never raises."""
    try:
        if rig == layout.FLAME56:
            with np.load(str(path)) as npz:
                motion = layout.flame56_from_npz(npz, source=path.name)
        else:
            motion = np.asarray(np.load(str(path), allow_pickle=False), dtype=np.float32)
            dim = RIG_DIM[rig]
            if motion.ndim != 2 or motion.shape[1] != dim:
                return None, (BAD_MOTION, f"expected [T, {dim}] for rig {rig}, "
                                          f"got {list(motion.shape)}")
    except ValueError as exc:  # flame56_from_npz names the field
        message = str(exc).replace(f"{path.name}: ", "")
        return None, (MISSING_FIELD if "missing field" in message else BAD_MOTION, message)
    except Exception as exc:  # corrupt zip, truncated npy, ...
        return None, (BAD_MOTION, f"unreadable: {type(exc).__name__}: {exc}")
    if motion.shape[0] == 0:
        return None, (BAD_MOTION, "zero frames")
    if not np.all(np.isfinite(motion)):
        rows = np.unique(np.nonzero(~np.isfinite(motion))[0])
        return None, (NON_FINITE, f"NaN/inf in {rows.size} frames (first at frame {rows[0]})")
    return motion.astype(np.float32, copy=False), None


# --------------------------------------------------------------------------------------------

def split_dir(root: Path | str, split: str | None) -> Path:
    """``root/split`` for a split name; ``root`` itself when ``split`` is None."""
    root = Path(root)
    return root if split is None else root / split


def discover_clips(directory: Path, rig: str = layout.FLAME56) -> dict[str, dict[int, dict[str, Path]]]:
    """``{clip: {speaker: {"wav": path, "motion": path}}}`` for the files found (sorted clips)."""
    suffixes = {".wav": "wav", RIG_SUFFIX[rig]: "motion"}
    clips: dict[str, dict[int, dict[str, Path]]] = {}
    for path in sorted(directory.iterdir()):
        kind = suffixes.get(path.suffix)
        m = SIDE_NAME_RE.match(path.stem)
        if kind is None or m is None:
            continue
        clips.setdefault(m["clip"], {}).setdefault(int(m["spk"]), {})[kind] = path
    return dict(sorted(clips.items()))


def _expected(directory: Path, clip: str, speaker: int, suffix: str) -> Path:
    return directory / f"{clip}_speaker{speaker}{suffix}"


def load_split(root: Path | str, split: str | None = "train", *, rig: str = layout.FLAME56,
               require_target: bool = True, allow_missing_partner_motion: bool = False,
               min_frames: int = 1, max_clips: int | None = None,
               ) -> tuple[list[ClipSide], DataReport]:
    """Load every clip-side of ``root/split`` (``split=None``: ``root`` is the folder itself).

    ``require_target=False`` loads sides whose own motion is missing with ``target_motion=None``
    (inference only); ``allow_missing_partner_motion=True`` loads sides whose partner motion is
    missing with zeros in its place. Both substitutions are still listed in the report.
    Raises ``FileNotFoundError`` only when the folder itself does not exist.
    """
    if rig not in RIG_SUFFIX:
        raise ValueError(f"unknown rig {rig!r} for the data loader; known: {sorted(RIG_SUFFIX)}")
    directory = split_dir(root, split)
    if not directory.is_dir():
        raise FileNotFoundError(f"data folder {directory} does not exist")
    report = DataReport(root=str(root), split=split)
    clips = discover_clips(directory, rig)
    if max_clips is not None:
        clips = dict(list(clips.items())[:max_clips])
    report.clips = len(clips)
    sides: list[ClipSide] = []
    suffix = RIG_SUFFIX[rig]
    for clip, files in clips.items():
        arrays: dict[tuple[int, str], np.ndarray | None] = {}
        problems: dict[tuple[int, str], tuple[Path, str, str]] = {}  # (spk, kind) -> problem
        for spk in (1, 2):
            entry = files.get(spk, {})
            for kind in ("wav", "motion"):
                path = entry.get(kind)
                if path is None:
                    ext = ".wav" if kind == "wav" else suffix
                    arrays[(spk, kind)] = None
                    problems[(spk, kind)] = (_expected(directory, clip, spk, ext), "missing",
                                             "file not found")
                    continue
                arr, prob = read_wav(path) if kind == "wav" else read_motion(path, rig)
                arrays[(spk, kind)] = arr
                if prob is not None:
                    problems[(spk, kind)] = (path, *prob)
        _check_lengths(arrays, problems, directory, clip, suffix)
        ledger = _Ledger()
        for spk in (1, 2):
            if not files.get(spk, {}).get("wav"):
                continue  # no own audio: not a side; the partner side reports the missing wav
            side = _build_side(clip, spk, arrays, problems, ledger, report, directory, suffix,
                               rig, require_target, allow_missing_partner_motion, min_frames)
            if side is not None:
                sides.append(side)
                report.loaded += 1
            else:
                report.skipped += 1
        ledger.flush(problems, report)
    if not sides:
        log.warning("no clip-side could be loaded from %s", directory)
    return sides, report


def _check_lengths(arrays, problems, directory, clip, suffix) -> None:
    """Audio within one frame of each other, motions within one frame of the audio; a file
    that breaks this becomes a problem of that file (reported once, whichever side needs it)."""
    wavs = {spk: arrays[(spk, "wav")] for spk in (1, 2) if arrays[(spk, "wav")] is not None}
    if not wavs:
        return
    if len(wavs) == 2 and abs(wavs[1].size - wavs[2].size) > layout.SAMPLES_PER_FRAME:
        problems[(2, "wav")] = (_expected(directory, clip, 2, ".wav"), LENGTH_MISMATCH,
                                f"{wavs[2].size} samples but speaker1's wav has {wavs[1].size} "
                                "(more than one frame apart)")
        return
    n = min(w.size for w in wavs.values())
    t_audio = layout.num_frames_for_samples(n)
    for spk in (1, 2):
        motion = arrays[(spk, "motion")]
        if motion is not None and abs(motion.shape[0] - t_audio) > 1:
            problems[(spk, "motion")] = (
                _expected(directory, clip, spk, suffix), LENGTH_MISMATCH,
                f"{motion.shape[0]} frames but the audio ({n} samples) covers {t_audio} "
                "(allowed: one frame apart)")


_MISSING_REASON = {("wav", "self"): MISSING_SELF_AUDIO, ("wav", "partner"): MISSING_PARTNER,
                   ("motion", "self"): MISSING_TARGET, ("motion", "partner"): MISSING_PARTNER_MOTION}


class _Ledger:
    """Which sides each file problem cost, so each file is reported once per meaning."""

    def __init__(self) -> None:
        self.skipped: dict[tuple[int, str, str], list[str]] = {}
        self.notes: dict[tuple[int, str, str], list[str]] = {}

    def skip(self, key: tuple[int, str, str], name: str) -> None:
        self.skipped.setdefault(key, []).append(name)

    def note(self, key: tuple[int, str, str], text: str) -> None:
        self.notes.setdefault(key, []).append(text)

    def flush(self, problems, report: DataReport) -> None:
        merged: dict[tuple, tuple[str, list[str], list[str]]] = {}
        for key in sorted(set(self.skipped) | set(self.notes)):
            spk, kind, role = key
            path, reason, detail = problems[(spk, kind)]
            if reason == "missing":  # a missing file means different things to each side
                reason = _MISSING_REASON[(kind, role)]
                group = (spk, kind, role)
            else:                    # a broken file is one problem whichever side needs it
                group = (spk, kind)
            _, skipped, notes = merged.setdefault(group, (reason, [], []))
            skipped.extend(self.skipped.get(key, []))
            notes.extend(self.notes.get(key, []))
        for group, (reason, skipped, notes) in merged.items():
            path, _, detail = problems[group[:2]]
            actions = (["skipped " + ", ".join(skipped)] if skipped else []) + notes
            report.add(path, reason, detail, "; ".join(actions))


def _build_side(clip, spk, arrays, problems, ledger, report, directory, suffix,
                rig, require_target, allow_missing_partner_motion, min_frames):
    """Assemble one side or record why it cannot be; returns the side or None."""
    name = f"{clip}_speaker{spk}"
    other = 3 - spk
    for key in ((spk, "wav", "self"), (other, "wav", "partner")):  # both audios are required
        if key[:2] in problems:
            ledger.skip(key, name)
            return None
    zeros_partner = False
    if (other, "motion") in problems:
        reason = problems[(other, "motion")][1]
        if reason == "missing" and allow_missing_partner_motion:
            zeros_partner = True
            ledger.note((other, "motion", "partner"),
                        f"partner motion of {name} filled with zeros")
        else:
            ledger.skip((other, "motion", "partner"), name)
            return None
    if (spk, "motion") in problems:
        reason = problems[(spk, "motion")][1]
        if reason == "missing" and not require_target:
            ledger.note((spk, "motion", "self"), f"{name} loaded without target motion")
        else:
            ledger.skip((spk, "motion", "self"), name)
            return None
    self_audio, partner_audio = arrays[(spk, "wav")], arrays[(other, "wav")]
    partner_motion, target = arrays[(other, "motion")], arrays[(spk, "motion")]
    n = min(self_audio.size, partner_audio.size)   # lengths were checked in _check_lengths
    frames = [layout.num_frames_for_samples(n)] + [m.shape[0] for m in (partner_motion, target)
                                                   if m is not None]
    self_path = _expected(directory, clip, spk, ".wav")
    t = min(frames)
    if t < min_frames:
        report.add(self_path, TOO_SHORT, f"{t} frames, need at least {min_frames}",
                   f"skipped {name}")
        return None
    n = min(n, t * layout.SAMPLES_PER_FRAME)
    if zeros_partner:
        partner_motion = np.zeros((t, RIG_DIM[rig]), np.float32)
    return ClipSide(
        clip=clip, speaker=spk,
        self_audio=self_audio[:n], partner_audio=partner_audio[:n],
        partner_motion=partner_motion[:t], target_motion=None if target is None else target[:t],
        rig=rig, partner_motion_is_zeros=zeros_partner,
    )


def split_by_clip(sides: Sequence[ClipSide], fraction: float, seed: int = 0,
                  ) -> tuple[list[ClipSide], list[ClipSide]]:
    """Hold out ``fraction`` of the clips (both sides of a pair stay together): (rest, held)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    clips = sorted({s.clip for s in sides})
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(fraction * len(clips))))
    held = set(rng.permutation(clips)[:n_held].tolist())
    return [s for s in sides if s.clip not in held], [s for s in sides if s.clip in held]


# --------------------------------------------------------------------------------------------

class WindowDataset:
    """Fixed-length training windows over clip-sides (a map-style torch Dataset).

    Window starts are ``0, stride, 2*stride, ...`` plus one final window ending at the last
    frame when the stride does not land there, so every frame is seen. Clips shorter than the
    window give one zero-padded window whose ``mask`` marks the real frames.
    Every item is built fresh from slices copied out of the clip arrays: no two windows share
    memory (the released loader stored one dict per file, so every window was its last one).
    Items: ``self_audio``/``partner_audio`` float32 [(W+C+A)*640], ``partner_motion``
    float32 [W+C+A, D], ``target_motion`` float32 [W+C, D], ``mask`` bool [W+C], ``index`` int.

    Streaming (causal) models need two more things, both 0 by default (the released items):
    ``context`` C frames of the clip *before* a window that starts mid-conversation, kept out of
    the loss (``mask`` False), so the window's frames are learnt with the warm recurrent state
    and attention history they have in a stream (a window at the clip start is cold, as a
    stream's start is: it extends C frames to the right instead); and ``lookahead`` A frames of
    audio and partner motion past the item's end, which the model's horizons read.
    """

    def __init__(self, sides: Sequence[ClipSide], window: int = 200, stride: int | None = None,
                 pad_short: bool = True, context: int = 0, lookahead: int = 0):
        if window < 1:
            raise ValueError(f"window must be >= 1 frame, got {window}")
        stride = window if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be >= 1 frame, got {stride}")
        for s in sides:
            if s.target_motion is None:
                raise ValueError(f"{s.name} has no target motion: cannot make training windows")
        if context < 0 or lookahead < 0:
            raise ValueError(f"context and lookahead must be >= 0 frames, got {context}, "
                             f"{lookahead}")
        self.sides = list(sides)
        self.window = window
        self.stride = stride
        self.context, self.lookahead = context, lookahead
        self.index: list[tuple[int, int]] = []  # (side index, start frame)
        for i, side in enumerate(self.sides):
            t = side.num_frames
            if t < window:
                if pad_short:
                    self.index.append((i, 0))
                continue
            starts = list(range(0, t - window + 1, stride))
            if starts[-1] != t - window:
                starts.append(t - window)
            self.index.extend((i, s) for s in starts)

    def __len__(self) -> int:
        return len(self.index)

    def window_info(self, idx: int) -> tuple[str, int]:
        """(clip-side name, start frame) of window ``idx``."""
        i, start = self.index[idx]
        return self.sides[i].name, start

    def __getitem__(self, idx: int) -> dict[str, np.ndarray | int]:
        i, start = self.index[idx]
        side = self.sides[i]
        spf, n = layout.SAMPLES_PER_FRAME, self.window + self.context
        first = max(0, start - self.context)      # item's first frame (context before start)
        scored_from = start - first if start > 0 else 0
        dim = side.partner_motion.shape[1]

        def audio(x: np.ndarray, frames: int) -> np.ndarray:
            out = np.zeros(frames * spf, np.float32)
            seg = x[first * spf:(first + frames) * spf]
            out[:seg.size] = seg
            return out

        def motion(x: np.ndarray, frames: int) -> np.ndarray:
            out = np.zeros((frames, dim), np.float32)
            seg = x[first:first + frames]
            out[:len(seg)] = seg
            return out

        valid = min(first + n, side.num_frames) - first
        mask = np.zeros(n, bool)
        mask[scored_from:valid] = True
        extra = n + self.lookahead
        return {
            "self_audio": audio(side.self_audio, extra),
            "partner_audio": audio(side.partner_audio, extra),
            "partner_motion": motion(side.partner_motion, extra),
            "target_motion": motion(side.target_motion, n),
            "mask": mask,
            "index": idx,
        }
