"""The released DualTalk training loss, with configurable weights and padding masks.

loss = w_exp * MSE(EXP) + w_jaw * MSE(JAW) + w_pose * MSE(POSE) + w_vel * MSE(d/dt, all 56 dims)
       [+ w_spread * mean over clips and dims of (std_t(pred) - std_t(target))^2]

The spread term is ours, off by default (w_spread = 0 gives the released loss). Why: a model
trained on MSE alone predicts the conditional mean, which moves less than real faces do (its
per-clip spread shrinks, and FD, which compares per-clip distributions, punishes that). Matching
each clip's per-dim standard deviation keeps the motion as lively as the data.

Each MSE is a mean over valid frames and the group's dims, so the released weights (all 1) give
the released loss when no frame is padded. ``mask`` [B, T] (True = real frame) keeps the padding
of short clips out of every term; a velocity term needs both of its frames real.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dualtalk_core import layout


LOSS_WEIGHT_NAMES = ("exp", "jaw", "pose", "velocity", "spread")
LOSS_TERMS = ("loss",) + LOSS_WEIGHT_NAMES  # the floats dualtalk_loss reports, in log order


@dataclass
class LossWeights:
    exp: float = 1.0
    jaw: float = 1.0
    pose: float = 1.0
    velocity: float = 1.0
    spread: float = 0.0

    def __post_init__(self) -> None:
        for name in LOSS_WEIGHT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"LossWeights.{name}: expected a number >= 0, got {value!r}")
            setattr(self, name, float(value))


def _masked_mse(diff: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """mean(diff^2) over [B, T, D], counting only frames where mask [B, T] is True."""
    sq = diff.pow(2)
    if mask is None:
        return sq.mean()
    m = mask.to(sq.dtype).unsqueeze(-1)
    denom = m.sum() * sq.shape[-1]
    return (sq * m).sum() / denom.clamp_min(1.0)


def _masked_std(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Population std over time of x [B, T, D] -> [B, D], counting only real frames."""
    if mask is None:
        return (x.var(dim=1, unbiased=False) + 1e-8).sqrt()
    m = mask.to(x.dtype).unsqueeze(-1)
    n = m.sum(1).clamp_min(1.0)
    mean = (x * m).sum(1) / n
    var = ((x - mean.unsqueeze(1)).pow(2) * m).sum(1) / n
    return (var + 1e-8).sqrt()


def dualtalk_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                  weights: LossWeights | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """-> (total loss tensor, {name: float for name in LOSS_TERMS}).

    ``pred``/``target`` are [B, T, 56] in the 56-layout; ``mask`` [B, T] bool or None.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {list(pred.shape)} and target {list(target.shape)} differ")
    if pred.shape[-1] != layout.DIM:
        raise ValueError(f"expected the {layout.DIM}-dim layout, got {pred.shape[-1]} dims")
    w = weights or LossWeights()
    diff = pred - target
    terms = {
        "exp": _masked_mse(diff[..., layout.EXP], mask),
        "jaw": _masked_mse(diff[..., layout.JAW], mask),
        "pose": _masked_mse(diff[..., layout.POSE], mask),
    }
    vel_diff = diff[:, 1:] - diff[:, :-1]  # = d/dt pred - d/dt target
    vel_mask = None if mask is None else (mask[:, 1:] & mask[:, :-1])
    terms["velocity"] = _masked_mse(vel_diff, vel_mask) if pred.shape[1] > 1 \
        else pred.new_zeros(())
    spread = _masked_std(pred, mask) - _masked_std(target, mask)
    terms["spread"] = spread.pow(2).mean()
    total = (w.exp * terms["exp"] + w.jaw * terms["jaw"] + w.pose * terms["pose"]
             + w.velocity * terms["velocity"] + w.spread * terms["spread"])
    parts = {"loss": float(total.detach())}
    parts.update({k: float(v.detach()) for k, v in terms.items()})
    return total, parts
