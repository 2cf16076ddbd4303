"""Motion files: read a [T, 56] FLAME motion from a DualTalk ``.npz`` or a ``.npy`` array.

Predictions are written as ``.npy`` [T, 56] and the dataset stores ``.npz`` (``exp``/``pose``),
so ``dualtalk infer`` (partner motion) and ``dualtalk plot`` (prediction, ground truth, partner)
accept either. One loader keeps the checks and messages the same. Kept free of torch so light
commands stay light.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from dualtalk_core import layout
from dualtalk_core.layout import DIM, flame56_from_npz


def load_motion(path: str | Path, what: str = "motion") -> np.ndarray:
    """A DualTalk ``.npz`` (``exp``/``pose``) or a [T, 56] ``.npy`` -> float32 [T, 56].

    ``what`` names the file's role in the messages (e.g. ``"partner motion"``):
    ``FileNotFoundError`` when missing, ``ValueError`` naming the file for a wrong shape or suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if path.suffix == ".npz":
        with np.load(path) as npz:
            return flame56_from_npz(npz, source=str(path))
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.ndim != 2 or arr.shape[1] != DIM:
            raise ValueError(f"{path}: expected a [T, {DIM}] array, got {list(arr.shape)}")
        return arr.astype(np.float32, copy=False)
    raise ValueError(f"{path}: {what} must be .npz (exp/pose) or .npy [T, {DIM}]")


MIN_TRACK_FRAMES = 100
"""A real track shorter than this (4 s) is refused by ``calibrate`` and ``fit-map``: too few
frames for per-dim statistics or a regression to mean anything."""


def read_track_npz(path: Path) -> np.ndarray:
    """A real track's ``.npz`` (``exp``/``pose``) -> [T, 56]; ``ValueError`` naming the file when
    it is not an npz, holds a single array, or misses/misshapes a field."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # not an npz, corrupt zip
        raise ValueError(f"{path}: unreadable as .npz ({type(exc).__name__}: {exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: unreadable as .npz (a single array, not exp/pose fields)")
    with npz:  # names the missing or misshaped field
        return flame56_from_npz(npz, source=str(path))


def check_track(path: Path, track: np.ndarray, fields: str = "") -> None:
    """``ValueError`` naming ``path`` when ``track`` [T, D] has a NaN/inf frame (``fields``: what
    they are, for the message, e.g. ``" of exp/pose"``) or fewer than :data:`MIN_TRACK_FRAMES`."""
    bad = ~np.isfinite(track).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: NaN/inf in {int(bad.sum())} frame(s){fields}, first at "
                         f"frame {int(np.argmax(bad))}")
    if len(track) < MIN_TRACK_FRAMES:
        raise ValueError(f"{path}: {len(track)} frames, need at least {MIN_TRACK_FRAMES}")


def write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, buf.getvalue())


def npz_arrays(motion: np.ndarray) -> dict[str, np.ndarray]:
    """The release's npz fields: exp/pose from the motion, the unused ones as zeros."""
    t = motion.shape[0]
    fields = layout.npz_fields_from_flame56(motion)
    return {"shape": np.zeros((t, 100), np.float32), "tex": np.zeros((t, 50), np.float32),
            "exp": fields["exp"].astype(np.float32), "pose": fields["pose"].astype(np.float32),
            "cam": np.zeros((t, 3), np.float32), "light": np.zeros((t, 9, 3), np.float32)}
