"""The parts of one optimizer step that depend on the hardware: mixed precision and gradient
accumulation.

Why a module of its own: the released loop did forward, ``zero_grad``, backward, step for every
batch. Mixed precision adds a loss scaler (fp16) whose state must be checkpointed, and
accumulation needs gradients zeroed once per optimizer step (not before every backward, which
would keep only the last micro-batch's gradient) and each micro-batch's loss weighted by its
share of the batch. Keeping both here leaves :class:`~dualtalk_core.training.loop.Trainer` about
data, epochs and checkpoints.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from dualtalk_core import devices


class MixedPrecision:
    """Autocast (bf16 or fp16) and, for fp16, a ``GradScaler``, for one run on ``device``.

    ``none`` = fp32, exactly the released arithmetic. bf16 has fp32's exponent range, so its
    gradients need no scaling; fp16 underflows without it, and torch's scaler is CUDA-only,
    hence fp16 is refused on CPU."""

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in ("none", "bf16", "fp16"):
            raise ValueError(f"TrainConfig.amp: expected none, bf16 or fp16, got {mode!r}")
        if mode == "fp16" and device.type != "cuda":
            raise ValueError(f"TrainConfig.amp fp16 needs a CUDA device (GradScaler); this run's "
                             f"device is {device}: use amp: bf16 or none")
        self.mode, self.device = mode, device
        self.scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None

    def autocast(self):
        """Context for the forward pass (the loss is computed outside, in fp32)."""
        return devices.autocast(self.device, "fp32" if self.mode == "none" else self.mode)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
             grad_clip: float) -> None:
        """Clip (on unscaled gradients) and step; with fp16 a step whose gradients overflowed
        is skipped and the scale lowered (``GradScaler``'s rule)."""
        if self.scaler is None:
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            return
        if grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def micro_batches(batch: dict[str, Any], parts: int) -> list[tuple[dict[str, Any], float]]:
    """Split a batch (dict of tensors, batch first) into up to ``parts`` micro-batches, each
    with its share of the samples (n_i / N).

    Weighting each micro-batch's mean loss by its share makes the accumulated gradient the
    gradient of the whole batch's mean loss (exact when no frame is padded: the loss averages
    over valid frames). ``parts`` = 1 returns the batch itself with share 1."""
    n = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
    if parts <= 1 or n <= 1:
        return [(batch, 1.0)]
    chunks: list[tuple[dict[str, Any], float]] = []
    for idx in torch.tensor_split(torch.arange(n), min(parts, n)):
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        chunks.append(({k: v[lo:hi] if torch.is_tensor(v) else v for k, v in batch.items()},
                       (hi - lo) / n))
    return chunks


def sync_context(model: torch.nn.Module, sync: bool):
    """DDP: skip the gradient all-reduce on all but the last micro-batch (``no_sync``); the
    last backward then reduces the accumulated sum once."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()
