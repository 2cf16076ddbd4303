"""A loaded model must produce numbers: finite weights, and a finite warm-up output.

Why: a checkpoint with NaN or infinite weights (a diverged run, a bad conversion, a corrupted
fp16 export) loads without complaint and then writes NaN faces everywhere: ``dualtalk infer``
exits 0, and a live node publishes frames a head driver can only drop. Every place that loads a
checkpoint (:func:`dualtalk_core.model.checkpoint.load_checkpoint`) runs :func:`check_model`
once, so the user gets one message naming the file and the first bad tensor instead.
"""
from __future__ import annotations

from typing import Mapping

import torch

from dualtalk_core.layout import DIM, SAMPLES_PER_FRAME

#: length of the warm-up forward (frames): short, but long enough for every layer to run
WARMUP_FRAMES = 25


class NonFiniteModelError(ValueError):
    """A model whose weights or warm-up output are not all finite (the message says where)."""


def first_nonfinite_tensor(tensors: Mapping[str, torch.Tensor]) -> tuple[str, int, int] | None:
    """(name, non-finite count, size) of the first floating tensor with NaN/inf, else None."""
    for name, t in tensors.items():
        if torch.is_tensor(t) and t.is_floating_point() and not t.is_meta:
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                return name, bad, t.numel()
    return None


def check_finite_weights(model: torch.nn.Module, source: str) -> None:
    """Raise :class:`NonFiniteModelError` naming ``source`` and the first bad tensor."""
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    found = first_nonfinite_tensor(tensors)
    if found is not None:
        name, bad, size = found
        raise NonFiniteModelError(f"{source}: tensor {name!r} has {bad} of {size} values NaN or "
                                  "infinite; the model cannot produce faces (re-export or "
                                  "retrain it)")


@torch.inference_mode()
def check_finite_output(model: torch.nn.Module, source: str,
                        frames: int = WARMUP_FRAMES) -> None:
    """One forward on ``frames`` of quiet noise (both voices, neutral partner face); raise
    :class:`NonFiniteModelError` when any output value is NaN/inf (e.g. finite weights that
    overflow)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    n = frames * SAMPLES_PER_FRAME
    audio = (1e-3 * torch.randn(2, 1, n, generator=gen)).to(device)
    motion = torch.zeros(1, frames, DIM, device=device)
    out = model(audio[0], audio[1], motion, num_frames=frames)
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        frame = int(bad.any(dim=-1).nonzero()[0, 1])
        raise NonFiniteModelError(f"{source}: the warm-up forward ({frames} frames of quiet "
                                  f"noise) gives {int(bad.sum())} NaN/infinite values (first at "
                                  f"frame {frame}); the weights are finite but the model is not "
                                  "usable")


def check_model(model: torch.nn.Module, source: str) -> None:
    """Both checks: weights first (names the tensor), then the warm-up output."""
    check_finite_weights(model, source)
    check_finite_output(model, source)
