"""The 56-layout and the other rigs: the ONE place that defines slices, names and rates.

DualTalk predicts 56 FLAME coefficients per frame at 25 fps:
``[0:50]`` expression (npz ``exp``), ``[50:53]`` jaw rotation (npz ``pose[:, 3:6]``),
``[53:56]`` global head rotation, axis-angle radians (npz ``pose[:, 0:3]``).
Everything else in the project imports these constants instead of repeating numbers.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

SAMPLE_RATE = 16_000
"""Audio sample rate the model works at (Hz)."""
FRAME_RATE = 25
"""Face motion frame rate (frames per second)."""
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # 640
"""Audio samples per motion frame: output frame k belongs to audio sample k * 640."""

EXP = slice(0, 50)
JAW = slice(50, 53)
POSE = slice(53, 56)
DIM = 56
GROUPS: dict[str, slice] = {"EXP": EXP, "JAW": JAW, "POSE": POSE}
"""Metric groups of the paper (Table 2)."""

FLAME56 = "flame56"
FLAME56_NAMES: tuple[str, ...] = (
    tuple(f"exp_{i:02d}" for i in range(50))
    + ("jaw_rx", "jaw_ry", "jaw_rz")
    + ("head_rx", "head_ry", "head_rz")
)

ARKIT51_NAMES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight",
)
ARKIT52 = "arkit52"
ARKIT52_NAMES: tuple[str, ...] = ARKIT51_NAMES + ("TongueOut",)
ARKIT61 = "arkit61"
ARKIT61_NAMES: tuple[str, ...] = ARKIT52_NAMES + (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
"""The third-party ARKit version of DualTalk: [T, 61] = 51 ARKit + TongueOut + head ypr + eyes."""
ARKIT61_HEAD = slice(52, 55)

RIGS: dict[str, tuple[str, ...]] = {
    FLAME56: FLAME56_NAMES,
    ARKIT52: ARKIT52_NAMES,
    ARKIT61: ARKIT61_NAMES,
}
"""Known rigs and their canonical name order."""


def rig_names(rig: str) -> tuple[str, ...]:
    """Canonical names of a known rig; raises ``KeyError`` naming the known ones."""
    try:
        return RIGS[rig]
    except KeyError:
        raise KeyError(f"unknown rig {rig!r}; known rigs: {sorted(RIGS)}") from None


def num_frames_for_samples(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """T = ceil(n / sr * 25): number of motion frames covering ``num_samples`` of audio."""
    return int(math.ceil(num_samples / sample_rate * FRAME_RATE - 1e-9))


def flame56_from_npz(npz: Mapping[str, np.ndarray], source: str = "<npz>") -> np.ndarray:
    """DualTalk/EMOCA ``.npz`` (``exp`` [T,50], ``pose`` [T,6]) -> float32 [T, 56].

    ``pose[:, 0:3]`` is the global head rotation, ``pose[:, 3:6]`` the jaw.
    Raises ``ValueError`` naming ``source`` and the field when something is missing or misshaped.
    """
    for key, width in (("exp", 50), ("pose", 6)):
        if key not in npz:
            raise ValueError(f"{source}: missing field {key!r} (have {sorted(npz.keys())})")
        arr = np.asarray(npz[key])
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"{source}: field {key!r} should be [T, {width}], got {list(arr.shape)}")
    exp = np.asarray(npz["exp"], dtype=np.float32)
    pose = np.asarray(npz["pose"], dtype=np.float32)
    if exp.shape[0] != pose.shape[0]:
        raise ValueError(
            f"{source}: 'exp' has {exp.shape[0]} frames but 'pose' has {pose.shape[0]}")
    out = np.empty((exp.shape[0], DIM), dtype=np.float32)
    out[:, EXP] = exp
    out[:, JAW] = pose[:, 3:6]
    out[:, POSE] = pose[:, 0:3]
    return out


def npz_fields_from_flame56(motion: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :func:`flame56_from_npz`: [T, 56] -> ``{"exp": [T,50], "pose": [T,6]}``."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != DIM:
        raise ValueError(f"motion should be [T, {DIM}], got {list(motion.shape)}")
    pose = np.concatenate([motion[:, POSE], motion[:, JAW]], axis=1)
    return {"exp": motion[:, EXP].copy(), "pose": pose}
