"""The training loop: the released recipe, single process or ``torchrun`` (DDP).

Reproducibility: the epoch's shuffle comes from ``DistributedSampler(seed, epoch)`` (also in a
single process), data loaders get their own generator, and checkpoints hold the model,
optimizer, scheduler, epoch, position inside the epoch, global step and every RNG state (of every
rank), so a resumed run produces the same losses as an uninterrupted one on CPU.

Only rank 0 logs, draws the progress bar and writes checkpoints; stop decisions
(``--max-steps``, ``--max-minutes``) are agreed by all ranks. The knobs are
:class:`~dualtalk_core.training.config.TrainConfig`; process set-up is
:mod:`dualtalk_core.training.distributed`; the log is :mod:`dualtalk_core.training.log`;
mixed precision and gradient accumulation (the hardware-dependent parts of a step) are
:mod:`dualtalk_core.training.step`.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dualtalk_core.data.dataset import WindowDataset, load_split, split_by_clip
from dualtalk_core.devices import peak_memory_mb
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.training.distributed import (DistInfo, all_reduce, rng_state, seed_everything,
                                                set_rng_state, setup_distributed)
from dualtalk_core.training.log import Throughput, TrainLogger, read_log
from dualtalk_core.training.losses import LOSS_TERMS, LossWeights, dualtalk_loss
from dualtalk_core.training.step import MixedPrecision, micro_batches, sync_context

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    epochs_done: int
    best_val: float | None
    last_val: float | None
    history: list[dict[str, Any]]
    checkpoints: list[Path]
    stopped_by: str  # "epochs", "max_steps", "max_minutes"

    def describe(self, against: str = "") -> str:
        """One line for a command's output: steps, why it stopped, validation loss (``against``
        names what it was measured against, e.g. "the teacher"), where the checkpoints are."""
        best = "n/a" if self.best_val is None else f"{self.best_val:.5f}"
        last = "n/a" if self.last_val is None else f"{self.last_val:.5f}"
        what = f"validation loss against {against}" if against else "validation loss"
        return (f"trained {self.steps} steps ({self.epochs_done} epochs, stopped by "
                f"{self.stopped_by}); {what} last {last}, best {best}; checkpoints in "
                f"{self.out_dir}")


def lookahead_frames(model_config) -> int:
    """Frames of input a causal model reads past its last output frame (0 for the released
    architecture, whose items stay exactly as released)."""
    if not getattr(model_config, "causal", False):
        return 0
    from dualtalk_core.model.config import seconds_to_frames

    return max(0, seconds_to_frames(model_config.self_lookahead_s),
               seconds_to_frames(model_config.partner_lookahead_s))


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def batch_loss(pred: torch.Tensor, batch, weights: LossWeights):
    """The loss of one batch: the released loss against the items' ``target_motion``.  A
    trainer whose items carry other targets (distillation: the teacher's outputs and ground
    truth, :mod:`dualtalk_core.training.distill`) overrides :meth:`Trainer.batch_loss`."""
    return dualtalk_loss(pred, batch["target_motion"], batch["mask"], weights)


def _forward(model, batch) -> torch.Tensor:
    return model(batch["self_audio"], batch["partner_audio"], batch["partner_motion"],
                 num_frames=batch["target_motion"].shape[1])


@torch.no_grad()
def evaluate_loss(model, dataset: WindowDataset, cfg: TrainConfig, info: DistInfo,
                  weights: LossWeights, loss_fn=batch_loss) -> dict[str, float]:
    """Mean loss terms over all windows of ``dataset`` (sharded over ranks, then reduced);
    ``loss_fn(pred, batch, weights)`` as :func:`batch_loss`."""
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    indices = list(range(len(dataset)))[info.rank::info.world_size]
    batches = [indices[i:i + cfg.batch_size] for i in range(0, len(indices), cfg.batch_size)]
    keys = LOSS_TERMS
    sums = [0.0] * (len(keys) + 1)
    # own generator: validating never consumes the global RNG (resume reproducibility)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers,
                        generator=torch.Generator().manual_seed(0))
    for batch in loader:
        batch = _to_device(batch, info.device)
        pred = _forward(model, batch)
        _, parts = loss_fn(pred, batch, weights)
        n = batch["mask"].shape[0]
        for i, k in enumerate(keys):
            sums[i] += parts[k] * n
        sums[-1] += n
    sums = all_reduce(sums, info)
    model.train(was_training)
    count = max(sums[-1], 1.0)
    return {k: sums[i] / count for i, k in enumerate(keys)}


def _log_report(report, info: DistInfo) -> None:
    if info.is_main:
        if report.issues:
            log.warning("%s", report.format())
        else:
            log.info("%s", report.summary())


def _load_sides(data_root: Path, cfg: TrainConfig, info: DistInfo):
    train_sides, report = load_split(data_root, cfg.train_split, max_clips=cfg.max_train_clips)
    _log_report(report, info)
    if not train_sides:
        raise ValueError(f"no training clip-side could be loaded from {data_root}/"
                         f"{cfg.train_split}:\n{report.format()}")
    if cfg.val_fraction > 0:
        train_sides, val_sides = split_by_clip(train_sides, cfg.val_fraction, cfg.seed)
    elif cfg.val_split:
        if not (Path(data_root) / cfg.val_split).is_dir():
            raise FileNotFoundError(f"validation split folder {Path(data_root) / cfg.val_split} "
                                    "does not exist (set val_split, or val_fraction > 0)")
        val_sides, vreport = load_split(data_root, cfg.val_split)
        _log_report(vreport, info)
    else:
        val_sides = []
    return train_sides, val_sides


def train(cfg: TrainConfig, data_root: str | Path, out_dir: str | Path,
          resume: str | Path | None = None) -> TrainResult:
    """Run (or resume) training; returns what happened. Works under torchrun too.

    ``cfg.num_threads`` applies for the duration of the call (restored afterwards, so callers
    in the same process keep their own setting)."""
    previous_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        return Trainer(cfg, data_root, out_dir, resume).run()
    finally:
        torch.set_num_threads(previous_threads)


class Trainer:
    """One training run: set up (data, model, optimizer, resume state), then epochs of steps.

    The set-up order is part of reproducibility (RNG draws): data, ``seed``, model, optimizer,
    per-rank seed, resumed RNG state. ``sides`` = (train, validation) lists of
    :class:`~dualtalk_core.data.dataset.ClipSide` to use instead of reading ``data_root``.
    Two hooks for trainers with other targets (distillation): :attr:`dataset_class` builds the
    windows and :meth:`batch_loss` scores a batch."""

    dataset_class = WindowDataset

    def __init__(self, cfg: TrainConfig, data_root: str | Path, out_dir: str | Path,
                 resume: str | Path | None, sides: tuple[list, list] | None = None) -> None:
        from dualtalk_core.model.checkpoint import read_payload

        self.start_time = time.perf_counter()
        self.owns_group = not (torch.distributed.is_available()
                               and torch.distributed.is_initialized())
        self.cfg, self.data_root, self.resume = cfg, data_root, resume
        self.info = info = setup_distributed(cfg.device)
        self.out_dir = out_dir = Path(out_dir)
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_yaml(out_dir / "train_config.yaml")
        self.weights = LossWeights(**cfg.loss_weights)
        self.amp = MixedPrecision(cfg.amp, info.device)
        # ``sides`` = (train, validation) ClipSides already in memory (benchmarks, tests)
        self.train_sides, val_sides = sides if sides is not None else _load_sides(
            Path(data_root), cfg, info)
        look = lookahead_frames(cfg.model_config())
        self.train_ds = self.dataset_class(self.train_sides, cfg.window, cfg.stride,
                                      context=cfg.context_frames, lookahead=look)
        self.val_ds = (self.dataset_class(val_sides, cfg.window, cfg.window,
                                     context=cfg.context_frames, lookahead=look)
                       if val_sides else None)

        seed_everything(cfg.seed)                  # same initial weights on every rank
        self.payload = read_payload(resume) if resume else None
        self._build_model()
        if self.payload is None and hasattr(self.model, "set_feature_statistics"):
            self._set_feature_statistics()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=cfg.scheduler_step_epochs, gamma=cfg.scheduler_gamma)
        seed_everything(cfg.seed + 1000 * info.rank + 1)  # dropout/masking differ per rank
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_val: float | None = None
        self.last_val: float | None = None
        if self.payload is not None:
            self._restore_training_state()
        self.logger = TrainLogger(out_dir, info.is_main, append=self.payload is not None)
        self.checkpoints: list[Path] = []

    def _build_model(self) -> None:
        """Model (from the preset, or the resumed checkpoint's config), EMA copy, DDP wrapper."""
        from dualtalk_core.model.checkpoint import check_state_dict
        from dualtalk_core.model.config import DualTalkConfig
        from dualtalk_core.model.dualtalk import DualTalk

        cfg, info, payload = self.cfg, self.info, self.payload
        model_config = cfg.model_config()
        if payload is not None:
            ck_config = DualTalkConfig.from_dict(payload["config"])
            if ck_config.to_dict() != model_config.to_dict():
                log.warning("resuming %s: its model config differs from the training config's; "
                            "using the checkpoint's", self.resume)
            model_config = ck_config
        self.model = model = DualTalk(model_config).to(info.device)
        # With EMA a checkpoint's weights are the average (what you deploy) and the optimizer's
        # own weights ride along in extra["training"]["raw_state_dict"].
        raw_state = None
        if payload is not None:
            check_state_dict(model, payload["state_dict"], str(self.resume))
            raw_state = (payload["extra"].get("training") or {}).get("raw_state_dict")
            model.load_state_dict(raw_state if raw_state is not None else payload["state_dict"])
        self.ema = None
        if cfg.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
            if raw_state is not None:    # resuming an EMA run: the average so far
                self.ema.module.load_state_dict(payload["state_dict"])
                self.ema.n_averaged.fill_(1)
        self.eval_model = self.ema.module if self.ema is not None else model
        self.train_model = model
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            w2v = model_config.wav2vec2 if isinstance(model_config.wav2vec2, dict) else {}
            unused = (model_config.audio_frontend == "wav2vec2"
                      and float(w2v.get("layerdrop", 0.1)) > 0)
            self.train_model = DDP(model, device_ids=[info.device.index]
                                   if info.device.type == "cuda" else None,
                                   find_unused_parameters=unused)

    def _set_feature_statistics(self) -> None:
        """A causal model's fixed log-mel statistics, from (up to 50 of) the training clips'
        audio, once at the start (never per clip, never on resume: they are weights)."""
        waves = [a for side in self.train_sides[:50]
                 for a in (side.self_audio, side.partner_audio) if a is not None]
        mean, std = self.model.set_feature_statistics(waves)
        if self.ema is not None:
            self.ema.module.load_state_dict(self.model.state_dict())
        if self.info.is_main:
            log.info("log-mel statistics from %d training waveforms: mean %.2f, std %.2f",
                     len(waves), mean, std)

    def _restore_training_state(self) -> None:
        tr = self.payload["extra"].get("training")
        if not tr:
            raise ValueError(f"{self.resume}: has no training state (extra['training']); "
                             "it can initialise weights but not resume a run")
        self.optimizer.load_state_dict(tr["optimizer"])
        self.amp.load_state_dict(tr.get("amp_scaler"))
        self.scheduler.load_state_dict(tr["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = (tr["epoch"], tr["batch_in_epoch"],
                                                      tr["step"])
        self.best_val = tr.get("best_val")
        states = tr["rng"]
        set_rng_state(states[self.info.rank] if self.info.rank < len(states) else states[0])
        if self.info.is_main:
            log.info("resumed %s at epoch %d, batch %d, step %d", self.resume, self.epoch,
                     self.batch_in_epoch, self.step)

    # ------------------------------------------------------------------ helpers
    def batch_loss(self, pred: torch.Tensor, batch, weights: LossWeights):
        """(loss tensor, loss terms) of one batch; the released loss (:func:`batch_loss`)."""
        return batch_loss(pred, batch, weights)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    def lr_now(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def save(self, name: str, epoch: int, batch: int) -> Path | None:
        """Checkpoint with the full training state (every rank's RNG); written by rank 0."""
        from dualtalk_core.model.checkpoint import save_checkpoint

        info = self.info
        states = rng_state()
        if info.distributed:
            gathered: list[Any] = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, states)
            states_all = gathered
        else:
            states_all = [states]
        if not info.is_main:
            return None
        extra = {"training": {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "epoch": epoch, "batch_in_epoch": batch, "step": self.step,
            "best_val": self.best_val, "rng": states_all, "config": self.cfg.to_dict(),
            "data": str(self.data_root), "world_size": info.world_size,
        }}
        if self.amp.state_dict() is not None:
            extra["training"]["amp_scaler"] = self.amp.state_dict()
        if self.ema is not None:
            extra["training"]["raw_state_dict"] = self.model.state_dict()
        path = save_checkpoint(self.out_dir / name, self.eval_model, extra=extra)
        if path not in self.checkpoints:
            self.checkpoints.append(path)
        return path

    def validate(self, epoch: int) -> float | None:
        if self.val_ds is None or len(self.val_ds) == 0:
            return None
        # the bare model, not the DDP wrapper: ranks may run different numbers of validation
        # batches, and DDP's forward would wait for the others (buffer broadcast)
        parts = evaluate_loss(self.eval_model, self.val_ds, self.cfg, self.info, self.weights,
                              loss_fn=self.batch_loss)
        self.logger.row("val", epoch, self.step, parts, self.lr_now(), self.elapsed())
        self.last_val = parts["loss"]
        if self.info.is_main:
            log.info("epoch %d step %d: validation loss %.5f", epoch, self.step, parts["loss"])
        return parts["loss"]

    def _keep_if_best(self, v: float | None, epoch: int, batch: int) -> None:
        if v is not None and self.cfg.keep_best and (self.best_val is None or v < self.best_val):
            self.best_val = v
            self.save("best.pt", epoch, batch)

    def _stop_reason(self) -> str | None:
        """``max_steps`` / ``max_minutes`` when reached on any rank (all ranks stop together)."""
        cfg = self.cfg
        reason = 0.0
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            reason = 1.0
        elif cfg.max_minutes is not None and self.elapsed() >= 60 * cfg.max_minutes:
            reason = 2.0
        reason = all_reduce([reason], self.info, op="max")[0]
        return None if not reason else ("max_steps" if reason == 1.0 else "max_minutes")

    def train_step(self, batch) -> dict[str, float]:
        """One optimizer step over ``batch`` (in ``grad_accum_steps`` micro-batches, under
        ``amp``); returns the loss terms averaged over ranks.

        Gradients are zeroed once here, before the first micro-batch, and summed by the
        backward passes; each micro-batch's loss is weighted by its share of the batch."""
        batch = _to_device(batch, self.info.device)
        self.optimizer.zero_grad(set_to_none=True)
        micro = micro_batches(batch, self.cfg.grad_accum_steps)
        parts = dict.fromkeys(LOSS_TERMS, 0.0)
        for i, (mb, share) in enumerate(micro):
            with sync_context(self.train_model, sync=i == len(micro) - 1):
                with self.amp.autocast():
                    pred = _forward(self.train_model, mb)
                loss, mparts = self.batch_loss(pred.float(), mb, self.weights)
                self.amp.backward(loss * share if len(micro) > 1 else loss)
            for k in LOSS_TERMS:
                parts[k] += mparts[k] * share
        self.amp.step(self.optimizer, self.params, self.cfg.grad_clip)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        reduced = all_reduce([parts[k] for k in LOSS_TERMS], self.info)
        return {k: v / self.info.world_size for k, v in zip(LOSS_TERMS, reduced)}

    # ------------------------------------------------------------------ epochs
    def run_epoch(self, sampler) -> tuple[str | None, int, int]:
        """Train the rest of epoch ``self.epoch``; returns (stop reason or None, batches done,
        batches in the epoch)."""
        from torch.utils.data import DataLoader

        cfg, info, epoch = self.cfg, self.info, self.epoch
        sampler.set_epoch(epoch)
        indices = list(sampler)
        batches = [indices[i:i + cfg.batch_size] for i in range(0, len(indices), cfg.batch_size)]
        generator = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        loader = DataLoader(self.train_ds, batch_sampler=batches[self.batch_in_epoch:],
                            num_workers=cfg.num_workers, generator=generator,
                            pin_memory=info.device.type == "cuda")
        bar = None
        if info.is_main and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {epoch + 1}",
                       unit="batch", leave=False, dynamic_ncols=True)
        epoch_sums: dict[str, float] = {}
        epoch_n, b, stop = 0, self.batch_in_epoch, None
        meter = Throughput(info.world_size)
        for batch in loader:
            parts = self.train_step(batch)
            meter.add(batch["mask"].shape[0])
            b += 1
            for k, v in parts.items():
                epoch_sums[k] = epoch_sums.get(k, 0.0) + v
            epoch_n += 1
            if self.step % cfg.log_every_steps == 0:
                self.logger.row("train_step", epoch + 1, self.step, parts, self.lr_now(),
                                self.elapsed(), meter.last, peak_memory_mb(info.device))
            if bar is not None:
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
                bar.update(1)
            if cfg.val_every_steps and self.step % cfg.val_every_steps == 0 and b < len(batches):
                self.validate(epoch + 1)
            stop = self._stop_reason()
            if stop:
                break
        if bar is not None:
            bar.close()
        if epoch_n:
            self.logger.row("train_epoch", epoch + 1, self.step,
                            {k: v / epoch_n for k, v in epoch_sums.items()}, self.lr_now(),
                            self.elapsed(), meter.mean, peak_memory_mb(info.device))
        return stop, b, len(batches)

    def _end_epoch(self, stopping: bool) -> None:
        """Scheduler step, validation, best/periodic/last checkpoints after a whole epoch."""
        cfg = self.cfg
        self.batch_in_epoch = 0
        self.epoch += 1
        self.scheduler.step()
        v = None
        if self.epoch % cfg.val_every_epochs == 0 or stopping or self.epoch == cfg.epochs:
            v = self.validate(self.epoch)
        self._keep_if_best(v, self.epoch, 0)
        if self.epoch % cfg.checkpoint_every_epochs == 0:
            self.save(f"epoch_{self.epoch:04d}.pt", self.epoch, 0)
        self.save("last.pt", self.epoch, 0)

    def run(self) -> TrainResult:
        from torch.utils.data import DistributedSampler

        cfg, info = self.cfg, self.info
        sampler = DistributedSampler(self.train_ds, num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=False)
        if info.is_main:
            log.info("training %d windows (%d clip-sides), validating %d windows; %d steps/epoch "
                     "on %d process(es), device %s; model %s: %.2f M trainable parameters",
                     len(self.train_ds), len(self.train_sides),
                     len(self.val_ds) if self.val_ds else 0,
                     math.ceil(len(sampler) / cfg.batch_size), info.world_size, info.device,
                     cfg.model, self.model.num_parameters(trainable_only=True) / 1e6)
        if cfg.validate_at_start and self.payload is None:
            self.best_val = self.validate(0)
        stopped_by = "epochs"
        self.train_model.train()
        while self.epoch < cfg.epochs:
            stop, done, total = self.run_epoch(sampler)
            if stop:
                stopped_by = stop
            if stop and done < total:   # stopped inside the epoch: resume point = this batch
                self._keep_if_best(self.validate(self.epoch + 1), self.epoch, done)
                self.save("last.pt", self.epoch, done)
                break
            self._end_epoch(stopping=bool(stop))
            if stop:
                break
        return self._finish(stopped_by)

    def _finish(self, stopped_by: str) -> TrainResult:
        self.logger.close()
        info = self.info
        if info.is_main:
            log.info("done: %d steps, %d epochs, stopped by %s, best validation loss %s, %.1f s; "
                     "checkpoints in %s", self.step, self.epoch, stopped_by,
                     "n/a" if self.best_val is None else f"{self.best_val:.5f}", self.elapsed(),
                     self.out_dir)
        if info.distributed:
            torch.distributed.barrier()
            if self.owns_group:
                torch.distributed.destroy_process_group()
        return TrainResult(self.out_dir, self.step, self.epoch, self.best_val, self.last_val,
                           self.logger.rows, self.checkpoints, stopped_by)


__all__ = ["TrainConfig", "TrainResult", "Trainer", "train", "evaluate_loss", "read_log",
           "setup_distributed", "DistInfo"]
