"""The teacher's outputs for distillation, computed once per clip and cached on disk.

Why a cache: the intended teacher (the authors' checkpoint, ``paper`` preset, ~650 M parameters)
runs below real time on a CPU, and a student trains for many epochs over the same clips; running
the teacher once per clip instead of once per window and epoch is what makes distillation
affordable.  Why two passes: the data have audio only (or a student must not depend on tracked
faces), so the teacher first predicts both sides with a NEUTRAL partner face (zeros), then
predicts each side again with its own pass-1 prediction of the other side as the partner face;
the cache holds these pass-2 predictions of both sides, so the student learns the teacher's
listening behaviour as well as its lip-sync, from conversations that were never tracked.

Layout::

    CACHE_ROOT/teacher-<hash16>/manifest.json     the full hash, the teacher, how outputs were made
    CACHE_ROOT/teacher-<hash16>/<split>/<clip>.npz speaker1, speaker2: float32 [T, 56] (56-layout,
                                                   25 fps, frame k = samples [640 k, 640 (k+1)));
                                                   num_samples: the audio length they came from

The hash covers the teacher's weights (as loaded, float32), its config and the recipe version, so
outputs of one teacher are never used for another: a different teacher gets its own folder, and
pointing ``--cache`` straight at another teacher's folder is refused.  Each clip file is written
to a temporary name and renamed, so an interrupted run leaves only whole files, and the next run
skips every clip already cached (resume).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dualtalk_core import layout

log = logging.getLogger(__name__)

CACHE_FORMAT = "dualtalk-teacher-cache"
CACHE_VERSION = 1
RECIPE = "two-pass: neutral partner face, then the teacher's own prediction of the partner"
"""Part of the hash: a change to how outputs are made must not reuse old files."""
MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------- rig and frame rate
@dataclass(frozen=True)
class MotionRig:
    """What a model's frames are: the motion layout (name and dims) and the frame rate."""

    rig: str
    dims: int
    fps: float

    def describe(self) -> str:
        return f"{self.rig} ({self.dims} dims) at {self.fps:g} fps"


STUDENT_RIG = MotionRig(layout.FLAME56, layout.DIM, float(layout.FRAME_RATE))
"""What the trainer produces: the 56-layout at 25 fps (checkpoints store ``rig: flame56``)."""


def teacher_rig(path: str | Path) -> MotionRig | None:
    """The rig and frame rate a teacher checkpoint declares (``rig``, ``names``, ``fps``; files
    without ``fps`` are 25 fps, the only rate this model family has), read before the full
    load so a mismatch gets the distillation message.  None when the file cannot be read here
    (the checkpoint loader then names the problem)."""
    payload = None
    for mmap in (True, False):          # mmap: a paper-size file is not read twice
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception:
            continue
    if not isinstance(payload, dict) or "rig" not in payload:
        return None
    extra = payload.get("extra") if isinstance(payload.get("extra"), dict) else {}
    fps = payload.get("fps", extra.get("fps", layout.FRAME_RATE))
    names = payload.get("names") or ()
    return MotionRig(str(payload["rig"]), len(names), float(fps))


def check_teacher_rig(teacher: MotionRig | None, student: MotionRig, source: str) -> None:
    """Refuse a teacher whose frames are not the student's, naming both values.  Why: the
    student is trained frame by frame on the teacher's outputs; another layout or rate would
    be learnt as if it were this one."""
    if teacher is None:
        return
    if (teacher.rig, teacher.dims) != (student.rig, student.dims):
        raise ValueError(f"teacher {source}: motion layout {teacher.rig} ({teacher.dims} dims) "
                         f"differs from the student's {student.rig} ({student.dims} dims); "
                         "distillation needs the same rig")
    if abs(teacher.fps - student.fps) > 1e-6:
        raise ValueError(f"teacher {source}: frame rate {teacher.fps:g} fps differs from the "
                         f"student's {student.fps:g} fps; distillation needs the same rate")


# ---------------------------------------------------------------------------- identity
def teacher_hash(model: torch.nn.Module) -> str:
    """SHA-256 over the teacher's config, every tensor (name, dtype, shape, bytes) and the
    recipe: the cache key.  About 1-3 s per GB of weights (the ``paper`` teacher: 2.6 GB)."""
    h = hashlib.sha256()
    h.update(f"{CACHE_FORMAT}/{CACHE_VERSION}/{RECIPE}\n".encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"\n{name}:{t.dtype}:{list(t.shape)}\n".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def cache_dir_for(cache: str | Path, digest: str) -> Path:
    """The folder for this teacher's outputs: ``cache`` itself when it is a teacher folder (has
    a manifest) of the SAME teacher, else ``cache/teacher-<hash16>``.  A teacher folder of
    another teacher is refused (``ValueError`` naming both hashes)."""
    cache = Path(cache)
    own = _read_manifest(cache / MANIFEST)
    if own is not None:
        if own.get("teacher_hash") != digest:
            raise ValueError(
                f"--cache {cache} holds the outputs of another teacher (weights hash "
                f"{str(own.get('teacher_hash'))[:16]}), not this one's ({digest[:16]}); they "
                f"are never reused: point --cache at its parent folder or a new one")
        return cache
    target = cache / f"teacher-{digest[:16]}"
    found = _read_manifest(target / MANIFEST)
    if found is not None and found.get("teacher_hash") != digest:
        raise ValueError(f"{target}: manifest names teacher hash {found.get('teacher_hash')}, "
                         f"expected {digest}; move the folder away")
    return target


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable teacher-cache manifest ({exc}); move the folder "
                         "away") from exc
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path}: field 'format' should be {CACHE_FORMAT!r}, got "
                         f"{data.get('format') if isinstance(data, dict) else data!r}")
    return data


def write_manifest(directory: Path, digest: str, teacher: str | Path, model) -> None:
    """Record which teacher made the files (first run only; later runs keep the original)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST
    if path.is_file():
        return
    from dualtalk_core.model.presets import match_preset

    data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "teacher_hash": digest,
            "teacher": str(teacher), "teacher_preset": match_preset(model.config),
            "teacher_config": model.config.to_dict(), "recipe": RECIPE,
            "rig": STUDENT_RIG.rig, "fps": STUDENT_RIG.fps,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


# ---------------------------------------------------------------------------- the two passes
def teacher_pair(model: torch.nn.Module, audio1: np.ndarray, audio2: np.ndarray,
                 device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Both speakers' faces from their audio alone -> (speaker1, speaker2), float32 [T, 56].

    Pass 1 predicts each side with the neutral partner face (zeros); pass 2 predicts each side
    again with the pass-1 prediction of the other side as its partner face (module docstring).
    Both audios are cut to the shorter one; T = ceil(n / 640)."""
    from dualtalk_core.model.inference import predict_clip

    n = min(len(audio1), len(audio2))
    a1, a2 = audio1[:n], audio2[:n]
    neutral = np.zeros((layout.num_frames_for_samples(n), layout.DIM), np.float32)
    first1 = predict_clip(model, a1, a2, neutral, device=device)
    first2 = predict_clip(model, a2, a1, neutral, device=device)
    return (predict_clip(model, a1, a2, first2, device=device),
            predict_clip(model, a2, a1, first1, device=device))


# ---------------------------------------------------------------------------- files
def clip_path(directory: Path, split: str, clip: str) -> Path:
    return directory / split / f"{clip}.npz"


def read_clip(path: Path, num_samples: int | None = None) -> dict[int, np.ndarray] | None:
    """``{1: [T, 56], 2: [T, 56]}`` from a cached clip, or None when the file is missing,
    unreadable, malformed or made from audio of another length (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            out = {1: np.asarray(z["speaker1"], np.float32), 2: np.asarray(z["speaker2"],
                                                                             np.float32)}
            samples = int(z["num_samples"])
    except Exception as exc:
        log.warning("%s: unreadable cached teacher output (%s: %s): recomputing", path,
                    type(exc).__name__, exc)
        return None
    frames = layout.num_frames_for_samples(samples)
    if any(m.shape != (frames, layout.DIM) or not np.all(np.isfinite(m)) for m in out.values()):
        log.warning("%s: expected two finite [%d, %d] arrays: recomputing", path, frames,
                    layout.DIM)
        return None
    if num_samples is not None and samples != num_samples:
        log.warning("%s: made from %d audio samples, the data now has %d: recomputing", path,
                    samples, num_samples)
        return None
    return out


def write_clip(path: Path, pred1: np.ndarray, pred2: np.ndarray, num_samples: int) -> None:
    """Write one clip's outputs under a temporary name, then rename (never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, speaker1=pred1.astype(np.float32), speaker2=pred2.astype(np.float32),
                 num_samples=np.int64(num_samples))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- building
@dataclass
class CacheReport:
    """What :func:`build_cache` did: clips computed now, clips found cached, the time taken."""

    directory: Path
    computed: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def summary(self) -> str:
        rate = (f", {self.seconds / self.audio_seconds * 3600 / 60:.1f} min per hour of "
                f"conversation" if self.computed and self.audio_seconds else "")
        return (f"teacher cache {self.directory}: computed {self.computed} clip(s) "
                f"({self.audio_seconds / 60:.1f} min of conversation) in {self.seconds:.1f} s"
                f"{rate}; reused {self.reused}"
                + (f"; skipped {len(self.skipped)} (one side unreadable)" if self.skipped else ""))


def clip_audio(sides: Sequence) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{clip: (speaker1 audio, speaker2 audio)}`` for the clips whose both sides loaded."""
    pairs: dict[str, dict[int, np.ndarray]] = {}
    for s in sides:
        pairs.setdefault(s.clip, {})[s.speaker] = s.self_audio
    return {c: (a[1], a[2]) for c, a in pairs.items() if 1 in a and 2 in a}


def build_cache(model: torch.nn.Module, directory: Path, splits: dict[str, Sequence],
                device: str | torch.device = "cpu", progress: bool = True) -> CacheReport:
    """Compute the teacher's outputs for every clip of ``splits`` (``{split: ClipSides}``)
    not already cached in ``directory``; returns what was done.  Resumable: a clip is one
    file, written whole or not at all."""
    from tqdm import tqdm

    report = CacheReport(directory)
    todo: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for split, sides in splits.items():
        pairs = clip_audio(sides)
        report.skipped += sorted({s.clip for s in sides} - set(pairs))
        for clip, (a1, a2) in pairs.items():
            if read_clip(clip_path(directory, split, clip), min(len(a1), len(a2))) is None:
                todo.append((split, clip, a1, a2))
            else:
                report.reused += 1
    start = time.perf_counter()
    for split, clip, a1, a2 in tqdm(todo, desc="teacher", unit="clip", disable=not progress,
                                    dynamic_ncols=True):
        pred1, pred2 = teacher_pair(model, a1, a2, device)
        n = min(len(a1), len(a2))
        write_clip(clip_path(directory, split, clip), pred1, pred2, n)
        report.computed += 1
        report.audio_seconds += n / layout.SAMPLE_RATE
    report.seconds = time.perf_counter() - start
    return report
