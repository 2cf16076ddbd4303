"""Message <-> numpy conversions and stamp helpers, shared by every node and the bag tools.

One place decides how ``AudioChunk`` samples are scaled (int16 full scale 32767, float32 full
scale 1.0), how interleaved channels are laid out, and how ``Blendshapes`` weights are named,
so a node, a bag writer and a test all read the same numbers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from dualtalk_msgs.msg import AudioChunk, BlendshapeSequence, Blendshapes

from dualtalk_core.layout import FLAME56, FRAME_RATE, RIGS

INT16_SCALE = 32767.0
ENCODINGS = ("float32", "int16")


class MessageError(ValueError):
    """A message that cannot be used; the text names the field, the expected and the got value."""


# --------------------------------------------------------------------------- stamps
def stamp_to_sec(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (negative values clamp to 0)."""
    ns = max(0, int(ns))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def sec_to_stamp(sec: float) -> Time:
    """Float seconds -> ``builtin_interfaces/Time`` (rounded to the nanosecond)."""
    return ns_to_stamp(int(round(float(sec) * 1e9)))


# --------------------------------------------------------------------------- audio
def audio_chunk_to_numpy(msg: AudioChunk) -> np.ndarray:
    """``AudioChunk`` -> float32 array [frames, channels] in full scale 1.0.

    Raises :class:`MessageError` for an unknown encoding, a zero channel count, a sample
    count that is not a multiple of ``channels`` or data in the field the encoding does not name.
    """
    channels = int(msg.channels)
    if channels < 1:
        raise MessageError(f"AudioChunk.channels: expected >= 1, got {channels}")
    if msg.encoding == "float32":
        data = np.asarray(msg.data_float32, dtype=np.float32)
        if len(msg.data_int16):
            raise MessageError("AudioChunk: encoding 'float32' but data_int16 is not empty")
    elif msg.encoding == "int16":
        data = np.asarray(msg.data_int16, dtype=np.int16).astype(np.float32) / INT16_SCALE
        if len(msg.data_float32):
            raise MessageError("AudioChunk: encoding 'int16' but data_float32 is not empty")
    else:
        raise MessageError(f"AudioChunk.encoding: expected one of {ENCODINGS}, got {msg.encoding!r}")
    if data.size % channels:
        raise MessageError(
            f"AudioChunk: {data.size} samples is not a multiple of channels={channels}")
    return data.reshape(-1, channels)


def _set_header(msg, stamp: Time | None, frame_id: str) -> None:
    """Copy the stamp (when given) and frame id into ``msg.header``."""
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id


def _audio_chunk(channels: int, sample_rate: int, first_sample_index: int, stamp: Time | None,
                 frame_id: str, encoding: str) -> AudioChunk:
    """An ``AudioChunk`` with everything but the samples filled in."""
    msg = AudioChunk()
    _set_header(msg, stamp, frame_id)
    msg.sample_rate = int(sample_rate)
    msg.channels = int(channels)
    msg.first_sample_index = int(first_sample_index)
    msg.encoding = encoding
    return msg


def numpy_to_audio_chunk(samples: np.ndarray, sample_rate: int, first_sample_index: int,
                         stamp: Time | None = None, frame_id: str = "",
                         encoding: str = "float32") -> AudioChunk:
    """float array [frames] or [frames, channels] (full scale 1.0) -> ``AudioChunk``.

    int16 encoding clips to [-1, 1] before scaling so loud input saturates instead of wrapping.
    """
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise MessageError(f"samples: expected [frames] or [frames, channels], got {list(arr.shape)}")
    msg = _audio_chunk(arr.shape[1], sample_rate, first_sample_index, stamp, frame_id, encoding)
    flat = np.ascontiguousarray(arr).reshape(-1)
    if encoding == "float32":
        msg.data_float32 = flat
    elif encoding == "int16":
        msg.data_int16 = np.round(np.clip(flat, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    else:
        raise MessageError(f"encoding: expected one of {ENCODINGS}, got {encoding!r}")
    return msg


def int16_to_audio_chunk(samples: np.ndarray, sample_rate: int, first_sample_index: int,
                         stamp: Time | None = None, frame_id: str = "") -> AudioChunk:
    """Raw int16 [frames, channels] -> ``AudioChunk`` with encoding int16, bit-exact."""
    arr = np.asarray(samples, dtype=np.int16)
    if arr.ndim == 1:
        arr = arr[:, None]
    msg = _audio_chunk(arr.shape[1], sample_rate, first_sample_index, stamp, frame_id, "int16")
    msg.data_int16 = np.ascontiguousarray(arr).reshape(-1)
    return msg


# --------------------------------------------------------------------------- blendshapes
def blendshapes_to_numpy(msg: Blendshapes) -> tuple[np.ndarray, tuple[str, ...]]:
    """``Blendshapes`` -> (float32 weights [D], names).

    Empty ``names`` means the rig's canonical order (``dualtalk_core.layout.RIGS``); then the
    weight count must match it. Raises :class:`MessageError` on any mismatch.
    """
    weights = np.asarray(msg.weights, dtype=np.float32)
    names = tuple(msg.names)
    if not names:
        if msg.rig not in RIGS:
            raise MessageError(
                f"Blendshapes: names empty and rig {msg.rig!r} is not a known rig {sorted(RIGS)}")
        names = RIGS[msg.rig]
    if len(names) != weights.size:
        raise MessageError(
            f"Blendshapes(rig={msg.rig!r}): {weights.size} weights but {len(names)} names")
    return weights, names


def numpy_to_blendshapes(weights: np.ndarray, rig: str = FLAME56,
                         names: Sequence[str] | None = None, stamp: Time | None = None,
                         frame_id: str = "") -> Blendshapes:
    """float weights [D] -> ``Blendshapes``; ``names`` default to the rig's canonical names."""
    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    if names is None:
        names = RIGS.get(rig, ())
    if names and len(names) != w.size:
        raise MessageError(f"names: expected {w.size} names for rig {rig!r}, got {len(names)}")
    msg = Blendshapes()
    _set_header(msg, stamp, frame_id)
    msg.rig = rig
    msg.names = list(names)
    msg.weights = w
    return msg


def numpy_to_blendshape_sequence(frames: np.ndarray, rig: str = FLAME56,
                                 names: Sequence[str] | None = None,
                                 stamp: Time | None = None, frame_id: str = "",
                                 frame_rate: float = FRAME_RATE) -> BlendshapeSequence:
    """float frames [T, D] -> ``BlendshapeSequence`` (row-major weights)."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 2:
        raise MessageError(f"frames: expected [T, D], got {list(arr.shape)}")
    if names is None:
        names = RIGS.get(rig, ())
    msg = BlendshapeSequence()
    _set_header(msg, stamp, frame_id)
    msg.rig = rig
    msg.names = list(names)
    msg.frame_rate = float(frame_rate)
    msg.num_frames = int(arr.shape[0])
    msg.weights = np.ascontiguousarray(arr).reshape(-1)
    return msg


def blendshape_sequence_to_numpy(msg: BlendshapeSequence) -> np.ndarray:
    """``BlendshapeSequence`` -> float32 [num_frames, dims]."""
    w = np.asarray(msg.weights, dtype=np.float32)
    n = int(msg.num_frames)
    if n == 0:
        return w.reshape(0, len(msg.names) or 0)
    if w.size % n:
        raise MessageError(f"BlendshapeSequence: {w.size} weights not divisible by num_frames={n}")
    return w.reshape(n, -1)
