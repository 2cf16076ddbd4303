"""Distillation: train a student (any preset, ``live`` by default) to reproduce a teacher.

Why: the authors' checkpoint (``dualtalk convert-official``, ``paper`` preset) gives real faces
but is not real time on a CPU; the causal ``live`` model is, but has only ever seen synthetic
faces.  Distillation transfers the teacher's behaviour to the student on conversations that need
audio only: the teacher's outputs for both sides (:mod:`dualtalk_core.training.teacher_cache`,
computed once and cached) are the student's targets, and the teacher's prediction of the
partner side is the student's partner face, so nothing has to be face-tracked.

The training is the ordinary :class:`~dualtalk_core.training.loop.Trainer` (the student's own
:class:`~dualtalk_core.training.config.TrainConfig`, the released loss, resume, EMA, DDP...)
with its two hooks filled in: a window data set whose items also carry the ground truth where a
clip has it, and a loss that mixes it in::

    loss = (1 - w) * L(pred, teacher) + w * L(pred, ground truth)      (w = --gt-weight)

on the frames that have ground truth, and ``L(pred, teacher)`` on those that do not (exact for
the MSE terms; the optional spread term is mixed per batch).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dualtalk_core.data.dataset import (ClipSide, WindowDataset, load_split, split_by_clip,
                                        split_dir)
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.training.losses import LOSS_TERMS, LossWeights, dualtalk_loss
from dualtalk_core.training.loop import Trainer, TrainResult
from dualtalk_core.training import teacher_cache as tc

log = logging.getLogger(__name__)

DEFAULT_STUDENT_PRESET = "live"
DEFAULT_RECIPE = "train_live.yaml"
"""The student's training recipe when no ``--config`` is given (``config/`` of the repo)."""
CACHE_SUBDIR = "teacher_cache"
"""Default cache root: ``DATA_ROOT/teacher_cache`` (beside the splits, so every run on the same
data and teacher reuses it; the data loader ignores it)."""


# ---------------------------------------------------------------------------- items and loss
@dataclass
class DistillSide(ClipSide):
    """A clip-side whose ``target_motion`` and ``partner_motion`` are the teacher's outputs;
    ``gt_motion`` is the clip's own ground truth (None when the clip has none)."""

    gt_motion: np.ndarray | None = None


class DistillWindowDataset(WindowDataset):
    """:class:`WindowDataset` items plus ``gt_motion`` [W+C, D] (zeros without ground truth)
    and ``has_gt`` (bool), cut exactly as ``target_motion`` is."""

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = super().__getitem__(idx)
        i, start = self.index[idx]
        side = self.sides[i]
        gt = getattr(side, "gt_motion", None)
        n = self.window + self.context
        first = max(0, start - self.context)
        out = np.zeros((n, side.partner_motion.shape[1]), np.float32)
        if gt is not None:
            seg = gt[first:first + n]
            out[:len(seg)] = seg
        item["gt_motion"] = out
        item["has_gt"] = gt is not None
        return item


def distill_loss(pred: torch.Tensor, batch: dict, weights: LossWeights,
                 gt_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The mixed loss of the module docstring -> (loss, terms).

    With a fraction f of the batch's real frames having ground truth:
    ``L = L_t(all) + w f (L_gt(gt windows) - L_t(gt windows))``, i.e. ``(1-w) L_t + w L_gt`` on
    those frames and ``L_t`` elsewhere (w = 0: the plain loss against the teacher)."""
    total, parts = dualtalk_loss(pred, batch["target_motion"], batch["mask"], weights)
    has_gt = batch.get("has_gt")
    if gt_weight <= 0 or has_gt is None or not bool(has_gt.any()):
        return total, parts
    rows = has_gt.nonzero(as_tuple=True)[0]
    mask = batch["mask"][rows]
    share = gt_weight * float(mask.sum()) / max(float(batch["mask"].sum()), 1.0)
    t_loss, t_parts = dualtalk_loss(pred[rows], batch["target_motion"][rows], mask, weights)
    g_loss, g_parts = dualtalk_loss(pred[rows], batch["gt_motion"][rows], mask, weights)
    total = total + share * (g_loss - t_loss)
    return total, {k: parts[k] + share * (g_parts[k] - t_parts[k]) for k in LOSS_TERMS}


class DistillTrainer(Trainer):
    """The Trainer with distillation items and the mixed loss (nothing else changes)."""

    dataset_class = DistillWindowDataset

    def __init__(self, *args, gt_weight: float = 0.0, **kwargs) -> None:
        self.gt_weight = float(gt_weight)
        super().__init__(*args, **kwargs)

    def batch_loss(self, pred, batch, weights):
        return distill_loss(pred, batch, weights, self.gt_weight)


# ---------------------------------------------------------------------------- student config
def default_recipe_path() -> Path:
    """``config/train_live.yaml``: in the working directory, else in this source tree."""
    candidates = [Path.cwd() / "config" / DEFAULT_RECIPE,
                  Path(__file__).resolve().parents[4] / "config" / DEFAULT_RECIPE]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no student recipe given (--config) and the default "
                            f"config/{DEFAULT_RECIPE} is not at {', '.join(map(str, candidates))}"
                            "; pass --config STUDENT.yaml")


def student_config(config: str | Path | None, preset: str | None, teacher_config,
                   changes: dict[str, Any] | None = None) -> TrainConfig:
    """The student's TrainConfig: ``config`` as given; or the live recipe
    (``config/train_live.yaml``) for ``preset`` (default ``live``) with ``partner_motion_scale``
    set to the teacher's.  Why the teacher's: the student's partner face is the teacher's
    output, which is on the scale of the data the teacher was trained on, and the teacher's
    scale says what that is (10 for the legacy synthetic scale, 1 for real data; see the
    option's docstring).  ``changes``: TrainConfig fields to set (None values ignored)."""
    if config is not None and preset is not None:
        raise ValueError("give either --config (a student recipe, whose 'model' is the "
                         "preset) or --student-preset, not both")
    scale = float(teacher_config.partner_motion_scale)
    if config is not None:
        data = TrainConfig.from_yaml(config).to_dict()
        mine = float(data["model_overrides"].get("partner_motion_scale", 1.0))
        if abs(mine - scale) > 1e-9:
            log.warning("student config %s: partner_motion_scale %g, the teacher's is %g (its "
                        "outputs, the student's partner faces, are on that data scale)",
                        config, mine, scale)
    else:
        recipe = default_recipe_path()
        data = TrainConfig.from_yaml(recipe).to_dict()
        data["model"] = preset or DEFAULT_STUDENT_PRESET
        data["model_overrides"] = dict(data["model_overrides"], partner_motion_scale=scale)
        log.info("student: preset %s, recipe %s, partner_motion_scale %g (the teacher's)",
                 data["model"], recipe, scale)
    data.update({k: v for k, v in (changes or {}).items() if v is not None})
    return TrainConfig.from_dict(data)


# ---------------------------------------------------------------------------- data
def _load_audio_sides(data_root: Path, split: str, max_clips: int | None = None) -> list:
    """Every clip-side of a split that has both speakers' audio (faces optional)."""
    sides, report = load_split(data_root, split, require_target=False,
                               allow_missing_partner_motion=True, max_clips=max_clips)
    (log.warning if report.skipped else log.info)("%s", report.summary())
    return sides


def splits_to_cache(data_root: Path, cfg: TrainConfig) -> dict[str, list]:
    """``{split: ClipSides}`` the student trains and validates on: the train split (up to
    ``max_train_clips``) and the validation split (unless ``val_fraction`` holds clips out of
    the train split, or the split folder does not exist: then no validation)."""
    splits = {cfg.train_split: _load_audio_sides(data_root, cfg.train_split,
                                                 cfg.max_train_clips)}
    if not splits[cfg.train_split]:
        raise ValueError(f"no clip-side with both speakers' audio in {data_root}/"
                         f"{cfg.train_split}: nothing to distil on")
    if cfg.val_fraction == 0 and cfg.val_split and cfg.val_split != cfg.train_split:
        if split_dir(data_root, cfg.val_split).is_dir():
            splits[cfg.val_split] = _load_audio_sides(data_root, cfg.val_split)
        else:
            log.warning("validation split %s not found in %s: training without validation",
                        cfg.val_split, data_root)
    return splits


def distill_sides(sides: list, directory: Path, split: str) -> list[DistillSide]:
    """The clip-sides with the teacher's outputs from the cache as target and partner face
    (a side whose partner side did not load has no teacher output: left out, logged)."""
    out, cached, paired = [], {}, set(tc.clip_audio(sides))
    for s in sides:
        if s.clip not in paired:
            log.warning("%s: its partner side did not load, so the teacher has no output for "
                        "it: left out", s.name)
            continue
        if s.clip not in cached:
            cached[s.clip] = tc.read_clip(tc.clip_path(directory, split, s.clip))
        preds = cached[s.clip]
        if preds is None:
            raise ValueError(f"{tc.clip_path(directory, split, s.clip)}: teacher output "
                             "missing or unreadable after the cache was built")
        t = s.num_frames
        if len(preds[s.speaker]) < t:
            raise ValueError(f"{tc.clip_path(directory, split, s.clip)}: {len(preds[s.speaker])}"
                             f" frames cached, the clip-side {s.name} has {t}")
        out.append(DistillSide(
            clip=s.clip, speaker=s.speaker, self_audio=s.self_audio,
            partner_audio=s.partner_audio, partner_motion=preds[s.partner_speaker][:t],
            target_motion=preds[s.speaker][:t], rig=s.rig,
            gt_motion=s.target_motion))
    return out


# ---------------------------------------------------------------------------- the run
@dataclass
class DistillResult:
    cache: tc.CacheReport
    train: TrainResult | None   # None with cache_only
    teacher_hash: str


def prepare_cache(teacher: str | Path, data_root: Path, cfg: TrainConfig,
                  cache: str | Path | None) -> tuple[tc.CacheReport, str, dict[str, list]]:
    """Check the teacher, load it, and fill the cache for the student's splits -> (report,
    teacher hash, ``{split: ClipSides}``).  The teacher is released before training."""
    from dualtalk_core.devices import resolve_device
    from dualtalk_core.model.checkpoint import load_checkpoint

    tc.check_teacher_rig(tc.teacher_rig(teacher), tc.STUDENT_RIG, str(teacher))
    device = resolve_device(cfg.device, "--device")
    splits = splits_to_cache(data_root, cfg)
    model, _ = load_checkpoint(teacher, map_location="cpu")
    digest = tc.teacher_hash(model)
    directory = tc.cache_dir_for(cache if cache is not None else data_root / CACHE_SUBDIR,
                                 digest)
    tc.write_manifest(directory, digest, teacher, model)
    report = tc.build_cache(model.to(device), directory, splits, device, progress=cfg.progress)
    log.info("%s", report.summary())
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return report, digest, splits


def distill(teacher: str | Path, data_root: str | Path, out_dir: str | Path, cfg: TrainConfig,
            cache: str | Path | None = None, gt_weight: float = 0.0,
            resume: str | Path | None = None, cache_only: bool = False) -> DistillResult:
    """Cache the teacher's outputs (module docstring), then train the student ``cfg`` on them.

    ``cfg.max_minutes`` counts the student's training only (the cache is built first).
    ``cfg.num_threads`` applies to both for the duration of the call."""
    if isinstance(gt_weight, bool) or not 0.0 <= float(gt_weight) <= 1.0:
        raise ValueError(f"--gt-weight: expected a number in [0, 1], got {gt_weight!r}")
    data_root = Path(data_root)
    previous_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        report, digest, splits = prepare_cache(teacher, data_root, cfg, cache)
        if cache_only:
            return DistillResult(report, None, digest)
        sides = {split: distill_sides(s, report.directory, split) for split, s in splits.items()}
        train_sides = sides[cfg.train_split]
        val_sides = sides.get(cfg.val_split, []) if cfg.val_fraction == 0 else []
        if cfg.val_fraction > 0:
            train_sides, val_sides = split_by_clip(train_sides, cfg.val_fraction, cfg.seed)
        if gt_weight > 0 and not any(s.gt_motion is not None for s in train_sides):
            log.warning("--gt-weight %g: no training clip has ground truth; the student learns "
                        "from the teacher alone", gt_weight)
        _write_record(Path(out_dir), teacher, digest, report, gt_weight)
        trainer = DistillTrainer(cfg, data_root, out_dir, resume,
                                 sides=(train_sides, val_sides), gt_weight=gt_weight)
        return DistillResult(report, trainer.run(), digest)
    finally:
        torch.set_num_threads(previous_threads)


def _write_record(out_dir: Path, teacher, digest: str, report: tc.CacheReport,
                  gt_weight: float) -> None:
    """``distill.json`` beside the checkpoints: which teacher and cache the student learnt."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"teacher": str(teacher), "teacher_hash": digest, "cache": str(report.directory),
              "gt_weight": gt_weight, "cache_computed": report.computed,
              "cache_reused": report.reused, "cache_seconds": round(report.seconds, 2)}
    (out_dir / "distill.json").write_text(json.dumps(record, indent=1))
