"""``TrainConfig``: every knob of a training run, the released recipe as defaults.

Released defaults (see the spec): loss = MSE(EXP) + MSE(JAW) + MSE(POSE) + velocity MSE, Adam
lr 1e-4, StepLR(50 epochs, gamma 0.8), batch 32, 200-frame windows. A validated dataclass
loaded from YAML (``config/train_*.yaml``).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.training.losses import LOSS_WEIGHT_NAMES, LossWeights

AMP_MODES = ("none", "bf16", "fp16")
_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")

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
    """auto (cuda when available), cpu, cuda or cuda:N; under torchrun auto/cuda = the GPU of
    the process's LOCAL_RANK. cuda without a GPU is refused when training starts."""
    amp: str = "none"
    """Mixed precision: none (fp32, as released), bf16 (autocast; CPU and GPU; no loss scaling
    needed: bf16 has fp32's range) or fp16 (autocast + GradScaler; CUDA only)."""
    grad_accum_steps: int = 1
    """Split each batch of ``batch_size`` windows into this many micro-batches whose gradients
    add up before the one optimizer step (1 = off, as released). The optimisation is the same
    as with the whole batch (to float rounding; exact when no window is padded); only the
    activation memory shrinks, so a large batch fits on a small GPU."""
    context_frames: int = 0
    """Causal (``live``) models: frames of the clip before each mid-conversation window that
    the model runs over but the loss ignores, so windows are learnt with a warm state, as in a
    stream (0 = off, as released; e.g. 100 = 4 s). Windows at a clip's start stay cold."""
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
                     "val_every_epochs", "checkpoint_every_epochs", "log_every_steps",
                     "grad_accum_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(name, "an int >= 1")
        if isinstance(self.context_frames, bool) or not isinstance(self.context_frames, int) \
                or self.context_frames < 0:
            bad("context_frames", "an int >= 0")
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
        if not _DEVICE_NAME.fullmatch(str(self.device)):
            bad("device", "auto, cpu, cuda or cuda:N")
        if self.amp not in AMP_MODES:
            bad("amp", f"one of {', '.join(AMP_MODES)}")
        if self.amp == "fp16" and self.device == "cpu":
            bad("amp", "none or bf16 on device cpu (fp16 needs CUDA's GradScaler)")
        if self.grad_accum_steps > self.batch_size:
            bad("grad_accum_steps", f"<= batch_size ({self.batch_size}): each micro-batch "
                                    "needs a window")
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
