"""Training: the released recipe as defaults, single process or ``torchrun`` (DDP).

Released defaults (see the spec): loss = MSE(EXP) + MSE(JAW) + MSE(POSE) + velocity MSE, Adam
lr 1e-4, StepLR(50 epochs, gamma 0.8), batch 32, 200-frame windows. Everything is a field of
:class:`TrainConfig`, a validated dataclass loaded from YAML.

Reproducibility: the epoch's shuffle comes from ``DistributedSampler(seed, epoch)`` (also in a
single process), data loaders get their own generator, and checkpoints hold the model,
optimizer, scheduler, epoch, position inside the epoch, global step and every RNG state (of every
rank), so a resumed run produces the same losses as an uninterrupted one on CPU.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group uses gloo on CPU and nccl on GPU; only
rank 0 logs, draws the progress bar and writes checkpoints; stop decisions (``--max-steps``,
``--max-minutes``) are agreed by all ranks.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.data.dataset import WindowDataset, load_split, split_by_clip
from dualtalk_core.training.losses import LOSS_TERMS, LOSS_WEIGHT_NAMES, LossWeights, dualtalk_loss

log = logging.getLogger(__name__)

LOG_FIELDS = ("kind", "epoch", "step", *LOSS_TERMS, "lr",
              "elapsed_s")


@dataclass
class TrainConfig(YamlConfigMixin):
    """Every knob of a training run (YAML keys = field names)."""

    model: str = "tiny"
    """Model preset name (``dualtalk_core.model.config.PRESETS``)."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """``DualTalkConfig`` fields changed from the preset."""
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler_step_epochs: int = 50
    scheduler_gamma: float = 0.8
    batch_size: int = 32
    window: int = 200
    """Training window in frames (200 = 8 s)."""
    stride: int | None = None
    """Frames between window starts (None = window, i.e. no overlap)."""
    epochs: int = 100
    train_split: str = "train"
    val_split: str | None = "test"
    """Split folder used for validation; ignored when ``val_fraction`` > 0."""
    val_fraction: float = 0.0
    """> 0: hold out this fraction of the training clips for validation instead."""
    val_every_epochs: int = 1
    val_every_steps: int | None = None
    """Also validate every N optimizer steps (None = only per epoch)."""
    validate_at_start: bool = True
    """Log a validation loss before the first step (the curve's starting point)."""
    checkpoint_every_epochs: int = 10
    keep_best: bool = True
    """Also keep ``best.pt``: the lowest validation loss so far."""
    loss_weights: dict[str, float] = field(default_factory=lambda: asdict(LossWeights()))
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0 = off, as released)."""
    ema_decay: float = 0.0
    """> 0: keep an exponential moving average of the weights (decay per optimizer step, e.g.
    0.995 = a horizon of about 200 steps) and validate, pick ``best.pt`` and save checkpoints
    with it; 0 = off, as released. Why: a run that stops while the learning rate is still
    high ends on noisy weights; their recent average is usually better (about 5 ms per step
    for the ``cpu`` preset). Measured, ``cpu`` preset, 20 min: see ``config/train_cpu.yaml``."""
    num_workers: int = 0
    num_threads: int | None = None
    """torch intra-op threads (None = torch's default). On a small shared CPU, 1 is often
    much faster than oversubscribing the cores."""
    seed: int = 0
    max_steps: int | None = None
    max_minutes: float | None = None
    max_train_clips: int | None = None
    """Use only the first N training clips (smoke runs)."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    progress: bool = True
    log_every_steps: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Coerce YAML scalars ("1e-4" is a string in YAML 1.1) and raise on bad values."""
        def bad(name: str, expected: str) -> None:
            raise ValueError(f"TrainConfig.{name}: expected {expected}, got "
                             f"{getattr(self, name)!r}")

        for name in ("lr", "weight_decay", "scheduler_gamma", "val_fraction", "grad_clip",
                     "ema_decay"):
            try:
                setattr(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                bad(name, "a number")
        if self.max_minutes is not None:
            try:
                self.max_minutes = float(self.max_minutes)
            except (TypeError, ValueError):
                bad("max_minutes", "a number of minutes or null")
        for name in ("scheduler_step_epochs", "batch_size", "window", "epochs",
                     "val_every_epochs", "checkpoint_every_epochs", "log_every_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(name, "an int >= 1")
        for name in ("stride", "max_steps", "max_train_clips", "num_threads", "val_every_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                bad(name, "an int >= 1 or null")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) \
                or self.num_workers < 0:
            bad("num_workers", "an int >= 0")
        for name in ("keep_best", "validate_at_start", "progress"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            bad("seed", "an int")
        if self.lr <= 0:
            bad("lr", "> 0")
        if not 0 < self.scheduler_gamma <= 1:
            bad("scheduler_gamma", "in (0, 1]")
        if not 0 <= self.val_fraction < 1:
            bad("val_fraction", "in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            bad("ema_decay", "in [0, 1) (0 = off)")
        if self.max_minutes is not None and self.max_minutes <= 0:
            bad("max_minutes", "> 0")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            bad("device", "auto, cpu or cuda")
        if not isinstance(self.model_overrides, dict):
            bad("model_overrides", "a mapping of DualTalkConfig fields")
        if not isinstance(self.loss_weights, dict):
            bad("loss_weights", f"a mapping with keys among {'/'.join(LOSS_WEIGHT_NAMES)}")
        unknown = set(self.loss_weights) - set(LOSS_WEIGHT_NAMES)
        if unknown:
            bad("loss_weights",
                f"keys among {'/'.join(LOSS_WEIGHT_NAMES)} (unknown: {sorted(unknown)})")
        self.loss_weights = asdict(LossWeights(**self.loss_weights))
        self.model_config()  # validates the preset name and the overrides

    def model_config(self):
        from dualtalk_core.model.config import get_preset

        return get_preset(self.model).replace(**self.model_overrides) if self.model_overrides \
            else get_preset(self.model)

    # to_dict / from_dict / to_yaml / from_yaml come from YamlConfigMixin.
    _YAML_WHAT = "training config"


# --------------------------------------------------------------------------------------------
# distributed set-up

@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistInfo:
    """Read torchrun's environment; init gloo (CPU) or nccl (GPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        dev = torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, dev)


def _all_reduce(values: list[float], info: DistInfo, op: str = "sum") -> list[float]:
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if op == "max"
                                 else torch.distributed.ReduceOp.SUM)
    return t.tolist()


# --------------------------------------------------------------------------------------------
# RNG state (stored as tensors / plain lists so checkpoints load with weights_only=True)

def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------

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


class _Logger:
    """CSV (always) + TensorBoard (when it imports) on rank 0; no-ops elsewhere."""

    def __init__(self, out_dir: Path, enabled: bool, append: bool):
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.tb = None
        if not enabled:
            return
        self.path = out_dir / "log.csv"
        new = not (append and self.path.exists())
        self.file = open(self.path, "w" if new else "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=LOG_FIELDS)
        if new:
            self.writer.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except Exception:  # tensorboard not installed: CSV only
            self.tb = None

    def row(self, kind: str, epoch: int, step: int, parts: dict[str, float], lr: float,
            elapsed: float) -> None:
        row = {"kind": kind, "epoch": epoch, "step": step, "lr": lr,
               "elapsed_s": round(elapsed, 3),
               **{k: parts.get(k, math.nan) for k in LOSS_TERMS}}
        self.rows.append(row)
        if not self.enabled:
            return
        self.writer.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for k in ("loss", "exp", "jaw", "pose", "velocity"):
                self.tb.add_scalar(f"{kind}/{k}", parts.get(k, math.nan), step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def _forward(model, batch) -> torch.Tensor:
    return model(batch["self_audio"], batch["partner_audio"], batch["partner_motion"],
                 num_frames=batch["target_motion"].shape[1])


@torch.no_grad()
def evaluate_loss(model, dataset: WindowDataset, cfg: TrainConfig, info: DistInfo,
                  weights: LossWeights) -> dict[str, float]:
    """Mean loss terms over all windows of ``dataset`` (sharded over ranks, then reduced)."""
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
        _, parts = dualtalk_loss(pred, batch["target_motion"], batch["mask"], weights)
        n = batch["mask"].shape[0]
        for i, k in enumerate(keys):
            sums[i] += parts[k] * n
        sums[-1] += n
    sums = _all_reduce(sums, info)
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
        return _train(cfg, data_root, out_dir, resume)
    finally:
        torch.set_num_threads(previous_threads)


def _train(cfg: TrainConfig, data_root: str | Path, out_dir: str | Path,
           resume: str | Path | None) -> TrainResult:
    from torch.utils.data import DataLoader, DistributedSampler

    from dualtalk_core.model.checkpoint import check_state_dict, read_payload, save_checkpoint
    from dualtalk_core.model.dualtalk import DualTalk

    start_time = time.perf_counter()
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = setup_distributed(cfg.device)
    out_dir = Path(out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(out_dir / "train_config.yaml")
    weights = LossWeights(**cfg.loss_weights)

    train_sides, val_sides = _load_sides(Path(data_root), cfg, info)
    train_ds = WindowDataset(train_sides, cfg.window, cfg.stride)
    val_ds = WindowDataset(val_sides, cfg.window, cfg.window) if val_sides else None

    seed_everything(cfg.seed)                  # same initial weights on every rank
    payload = read_payload(resume) if resume else None
    model_config = cfg.model_config()
    if payload is not None:
        from dualtalk_core.model.config import DualTalkConfig
        ck_config = DualTalkConfig.from_dict(payload["config"])
        if ck_config.to_dict() != model_config.to_dict():
            log.warning("resuming %s: its model config differs from the training config's; "
                        "using the checkpoint's", resume)
        model_config = ck_config
    model = DualTalk(model_config).to(info.device)
    # With EMA a checkpoint's weights are the average (what you deploy) and the optimizer's
    # own weights ride along in extra["training"]["raw_state_dict"].
    raw_state = None
    if payload is not None:
        check_state_dict(model, payload["state_dict"], str(resume))
        raw_state = (payload["extra"].get("training") or {}).get("raw_state_dict")
        model.load_state_dict(raw_state if raw_state is not None else payload["state_dict"])
    ema = None
    if cfg.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
        if raw_state is not None:    # resuming an EMA run: the average so far
            ema.module.load_state_dict(payload["state_dict"])
            ema.n_averaged.fill_(1)
    eval_model = ema.module if ema is not None else model
    train_model = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        w2v = model_config.wav2vec2 if isinstance(model_config.wav2vec2, dict) else {}
        unused = model_config.audio_frontend == "wav2vec2" and float(w2v.get("layerdrop", 0.1)) > 0
        train_model = DDP(model, device_ids=[info.device.index] if info.device.type == "cuda"
                          else None, find_unused_parameters=unused)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.scheduler_step_epochs,
                                                gamma=cfg.scheduler_gamma)
    seed_everything(cfg.seed + 1000 * info.rank + 1)  # dropout/masking differ per rank

    epoch, batch_in_epoch, step = 0, 0, 0
    best_val: float | None = None
    if payload is not None:
        tr = payload["extra"].get("training")
        if not tr:
            raise ValueError(f"{resume}: has no training state (extra['training']); "
                             "it can initialise weights but not resume a run")
        optimizer.load_state_dict(tr["optimizer"])
        scheduler.load_state_dict(tr["scheduler"])
        epoch, batch_in_epoch, step = tr["epoch"], tr["batch_in_epoch"], tr["step"]
        best_val = tr.get("best_val")
        states = tr["rng"]
        set_rng_state(states[info.rank] if info.rank < len(states) else states[0])
        if info.is_main:
            log.info("resumed %s at epoch %d, batch %d, step %d", resume, epoch,
                     batch_in_epoch, step)

    logger = _Logger(out_dir, info.is_main, append=payload is not None)
    checkpoints: list[Path] = []
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / cfg.batch_size)
    if info.is_main:
        log.info("training %d windows (%d clip-sides), validating %d windows; %d steps/epoch on "
                 "%d process(es), device %s; model %s: %.2f M trainable parameters",
                 len(train_ds), len(train_sides), len(val_ds) if val_ds else 0, steps_per_epoch,
                 info.world_size, info.device, cfg.model,
                 model.num_parameters(trainable_only=True) / 1e6)

    def elapsed() -> float:
        return time.perf_counter() - start_time

    def lr_now() -> float:
        return float(optimizer.param_groups[0]["lr"])

    def save(name: str, epoch_: int, batch_: int) -> Path | None:
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
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch_, "batch_in_epoch": batch_, "step": step, "best_val": best_val,
            "rng": states_all, "config": cfg.to_dict(), "data": str(data_root),
            "world_size": info.world_size,
        }}
        if ema is not None:
            extra["training"]["raw_state_dict"] = model.state_dict()
        path = save_checkpoint(out_dir / name, eval_model, extra=extra)
        if path not in checkpoints:
            checkpoints.append(path)
        return path

    last_val: float | None = None

    def validate(epoch_: int) -> float | None:
        nonlocal best_val, last_val
        if val_ds is None or len(val_ds) == 0:
            return None
        # the bare model, not the DDP wrapper: ranks may run different numbers of validation
        # batches, and DDP's forward would wait for the others (buffer broadcast)
        parts = evaluate_loss(eval_model, val_ds, cfg, info, weights)
        logger.row("val", epoch_, step, parts, lr_now(), elapsed())
        last_val = parts["loss"]
        if info.is_main:
            log.info("epoch %d step %d: validation loss %.5f", epoch_, step, parts["loss"])
        return parts["loss"]

    if cfg.validate_at_start and payload is None:
        v = validate(0)
        best_val = v

    stopped_by = "epochs"
    stop = False
    train_model.train()
    while epoch < cfg.epochs and not stop:
        sampler.set_epoch(epoch)
        indices = list(sampler)
        batches = [indices[i:i + cfg.batch_size] for i in range(0, len(indices), cfg.batch_size)]
        generator = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        loader = DataLoader(train_ds, batch_sampler=batches[batch_in_epoch:],
                            num_workers=cfg.num_workers, generator=generator,
                            pin_memory=info.device.type == "cuda")
        bar = None
        if info.is_main and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=len(batches), initial=batch_in_epoch, desc=f"epoch {epoch + 1}",
                       unit="batch", leave=False, dynamic_ncols=True)
        epoch_sums, epoch_n = {}, 0
        b = batch_in_epoch
        for batch in loader:
            batch = _to_device(batch, info.device)
            pred = _forward(train_model, batch)
            loss, parts = dualtalk_loss(pred, batch["target_motion"], batch["mask"], weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            b += 1
            keys = LOSS_TERMS
            reduced = _all_reduce([parts[k] for k in keys], info)
            parts = {k: v / info.world_size for k, v in zip(keys, reduced)}
            for k, v in parts.items():
                epoch_sums[k] = epoch_sums.get(k, 0.0) + v
            epoch_n += 1
            if step % cfg.log_every_steps == 0:
                logger.row("train_step", epoch + 1, step, parts, lr_now(), elapsed())
            if bar is not None:
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
                bar.update(1)
            if cfg.val_every_steps and step % cfg.val_every_steps == 0 and b < len(batches):
                validate(epoch + 1)
            reason = 0.0
            if cfg.max_steps is not None and step >= cfg.max_steps:
                reason = 1.0
            elif cfg.max_minutes is not None and elapsed() >= 60 * cfg.max_minutes:
                reason = 2.0
            reason = _all_reduce([reason], info, op="max")[0]  # every rank stops together
            if reason:
                stop = True
                stopped_by = "max_steps" if reason == 1.0 else "max_minutes"
                break
        if bar is not None:
            bar.close()
        if epoch_n:
            logger.row("train_epoch", epoch + 1, step,
                       {k: v / epoch_n for k, v in epoch_sums.items()}, lr_now(), elapsed())
        if stop and b < len(batches):   # stopped inside the epoch: resume point = this batch
            v = validate(epoch + 1)
            if v is not None and cfg.keep_best and (best_val is None or v < best_val):
                best_val = v
                save("best.pt", epoch, b)
            save("last.pt", epoch, b)
            break
        batch_in_epoch = 0
        epoch += 1
        scheduler.step()
        v = None
        if epoch % cfg.val_every_epochs == 0 or stop or epoch == cfg.epochs:
            v = validate(epoch)
        if v is not None and cfg.keep_best and (best_val is None or v < best_val):
            best_val = v
            save("best.pt", epoch, 0)
        if epoch % cfg.checkpoint_every_epochs == 0:
            save(f"epoch_{epoch:04d}.pt", epoch, 0)
        save("last.pt", epoch, 0)
    logger.close()
    if info.is_main:
        log.info("done: %d steps, %d epochs, stopped by %s, best validation loss %s, %.1f s; "
                 "checkpoints in %s", step, epoch, stopped_by,
                 "n/a" if best_val is None else f"{best_val:.5f}", elapsed(), out_dir)
    if info.distributed:
        torch.distributed.barrier()
        if owns_group:
            torch.distributed.destroy_process_group()
    return TrainResult(out_dir, step, epoch, best_val, last_val, logger.rows, checkpoints,
                       stopped_by)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``log.csv`` with numbers parsed."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out: dict[str, Any] = {"kind": row["kind"]}
            for k in LOG_FIELDS[1:]:
                value = row.get(k) or ""  # a log from before a column was added: nan
                out[k] = float(value) if value not in ("", "nan") else math.nan
            out["epoch"], out["step"] = int(out["epoch"]), int(out["step"])
            rows.append(out)
    return rows


__all__ = ["TrainConfig", "TrainResult", "train", "evaluate_loss", "read_log",
           "setup_distributed", "DistInfo"]
