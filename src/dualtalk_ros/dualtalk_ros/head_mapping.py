"""Agent face motion -> robot joint commands: linear joint map + limits, smoothing, velocity cap.

A joint map file (example: ``config/head_6dof.yaml``)::

    rig: flame56                 # rig of the incoming weights (names resolved by name)
    frame_rate: 25.0             # nominal rate, used when stamps give no usable dt
    smoothing_tau_s: 0.06        # default exponential smoothing time constant (0 = off)
    joints:
      jaw:                       # JointState name
        terms: {jaw_rx: 1.0}     # value = offset + sum(gain * weight[name])
        offset: 0.0
        min: 0.0                 # limits (rad or m), always enforced
        max: 0.45
        max_velocity: 3.0        # |change| / dt cap, units per second
        smoothing_tau_s: 0.04    # optional per-joint override

:class:`JointCommandFilter` turns one frame of weights into joint positions that are always
inside the limits and never move faster than ``max_velocity``, whatever the input (huge values
clamp, non-finite frames are refused, so the previous command holds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dualtalk_core.layout import FRAME_RATE, RIGS

from .rig_mapping import MapFileError, read_map_yaml


@dataclass(frozen=True)
class JointSpec:
    name: str
    terms: tuple[tuple[str, float], ...]
    offset: float
    low: float
    high: float
    max_velocity: float
    smoothing_tau_s: float


@dataclass(frozen=True)
class HeadJointMap:
    rig: str
    frame_rate: float
    joints: tuple[JointSpec, ...]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]


def _num(doc: Mapping[str, Any], key: str, default: float | None, where: str) -> float:
    value = doc.get(key, default)
    if value is None:
        raise MapFileError(f"{where}: field {key!r} is required")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise MapFileError(f"{where}: field {key!r} should be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise MapFileError(f"{where}: field {key!r} should be finite, got {value!r}")
    return value


def head_joint_map_from_dict(doc: Mapping[str, Any], origin: str = "<dict>") -> HeadJointMap:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("joints"), Mapping) or not doc["joints"]:
        raise MapFileError(f"{origin}: expected a mapping with a non-empty 'joints:' mapping")
    rig = str(doc.get("rig", "flame56"))
    known = set(RIGS.get(rig, ()))
    frame_rate = _num(doc, "frame_rate", float(FRAME_RATE), origin)
    default_tau = _num(doc, "smoothing_tau_s", 0.0, origin)
    joints = []
    for name, spec in doc["joints"].items():
        where = f"{origin}: joints.{name}"
        if not isinstance(spec, Mapping):
            raise MapFileError(f"{where}: expected a mapping")
        terms = spec.get("terms") or {}
        if not isinstance(terms, Mapping):
            raise MapFileError(f"{where}.terms: expected {{weight_name: gain}}")
        for src in terms:
            if known and src not in known:
                raise MapFileError(f"{where}.terms.{src}: not a weight name of rig {rig!r}")
        low, high = _num(spec, "min", None, where), _num(spec, "max", None, where)
        if low > high:
            raise MapFileError(f"{where}: min {low} > max {high}")
        vmax = _num(spec, "max_velocity", None, where)
        if vmax <= 0:
            raise MapFileError(f"{where}: max_velocity should be > 0, got {vmax}")
        tau = _num(spec, "smoothing_tau_s", default_tau, where)
        if tau < 0:
            raise MapFileError(f"{where}: smoothing_tau_s should be >= 0, got {tau}")
        joints.append(JointSpec(str(name), tuple((str(k), float(v)) for k, v in terms.items()),
                                _num(spec, "offset", 0.0, where), low, high, vmax, tau))
    return HeadJointMap(rig, frame_rate, tuple(joints))


def load_head_joint_map(path: str | Path) -> HeadJointMap:
    """Read a joint map file; raises ``FileNotFoundError``/:class:`MapFileError` naming the file."""
    return head_joint_map_from_dict(read_map_yaml(path, "joint map file"), origin=str(Path(path)))


class JointCommandFilter:
    """Stateful frame -> joint positions with limits, smoothing and a velocity cap."""

    def __init__(self, joint_map: HeadJointMap) -> None:
        self.map = joint_map
        self.low = np.array([j.low for j in joint_map.joints])
        self.high = np.array([j.high for j in joint_map.joints])
        self.vmax = np.array([j.max_velocity for j in joint_map.joints])
        self.tau = np.array([j.smoothing_tau_s for j in joint_map.joints])
        self.offset = np.array([j.offset for j in joint_map.joints])
        self.nominal_dt = 1.0 / joint_map.frame_rate
        self._names: tuple[str, ...] | None = None
        self._gains: np.ndarray | None = None
        self.position: np.ndarray | None = None

    def _gain_matrix(self, names: Sequence[str]) -> np.ndarray:
        names = tuple(names)
        if names != self._names:
            pos = {n: i for i, n in enumerate(names)}
            gains = np.zeros((len(self.map.joints), len(names)))
            for j, spec in enumerate(self.map.joints):
                for src, gain in spec.terms:
                    if src not in pos:
                        raise KeyError(f"weight {src!r} needed by joint {spec.name!r} is not in "
                                       f"the message's names")
                    gains[j, pos[src]] = gain
            self._names, self._gains = names, gains
        return self._gains

    def target(self, weights: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Unsmoothed joint targets, clamped to the limits. Raises ValueError on bad input."""
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != len(names):
            raise ValueError(f"{w.size} weights but {len(names)} names")
        if not np.isfinite(w).all():
            raise ValueError("non-finite weights")
        raw = self.offset + self._gain_matrix(names) @ w
        return np.clip(np.nan_to_num(raw, nan=0.0, posinf=1e9, neginf=-1e9), self.low, self.high)

    def step(self, weights: np.ndarray, names: Sequence[str], dt: float | None) -> np.ndarray:
        """Advance by one frame ``dt`` seconds after the previous one; returns positions.

        ``dt`` None/non-positive/non-finite uses the nominal frame period.
        """
        goal = self.target(weights, names)
        if dt is None or not math.isfinite(dt) or dt <= 0:
            dt = self.nominal_dt
        if self.position is None:
            self.position = goal
            return self.position.copy()
        with np.errstate(divide="ignore", over="ignore"):
            alpha = np.where(self.tau > 0, 1.0 - np.exp(-dt / np.maximum(self.tau, 1e-12)), 1.0)
        smoothed = self.position + alpha * (goal - self.position)
        step = np.clip(smoothed - self.position, -self.vmax * dt, self.vmax * dt)
        self.position = np.clip(self.position + step, self.low, self.high)
        return self.position.copy()

    def reset(self) -> None:
        self.position = None
