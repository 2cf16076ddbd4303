"""Offline inference on whole clips, with the length handling of the released code, logged.

The released model takes T = ceil(n / 640) frames from the agent's (self) audio. Inputs that do
not match are made to match, and every change is logged at INFO level:

- partner audio longer/shorter than the self audio: trimmed / zero-padded to n samples;
- partner motion with S != T frames: trimmed / padded by repeating its last frame.

``length_from="motion"`` instead takes T from the partner motion (both audios are then trimmed or
zero-padded to T * 640 samples): the output is then frame-aligned with a motion track that is a
frame longer than its audio, as in the DualTalk data (30 s of motion, 29.95 s of audio).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from dualtalk_core.devices import check_precision, inference, resolve_device, to_device
from dualtalk_core.media.audio_io import fit_audio
from dualtalk_core.layout import DIM, SAMPLES_PER_FRAME, num_frames_for_samples
from dualtalk_core.data.motion_io import load_motion

log = logging.getLogger(__name__)
LENGTH_FROM = ("audio", "motion")


def fit_motion(motion: np.ndarray, T: int, what: str = "partner motion") -> np.ndarray:
    """Trim, or pad by repeating the last frame, a [S, 56] motion to T frames (logged)."""
    if len(motion) == T:
        return motion
    log.info("%s: %d frames, %s to %d", what, len(motion),
             "trimmed" if len(motion) > T else "padded (last frame repeated)", T)
    if len(motion) > T:
        return motion[:T]
    return np.concatenate([motion, np.repeat(motion[-1:], T - len(motion), axis=0)])


def _as_array(x, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim}-d array, got shape {list(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name}: empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def fit_clip(self_audio: np.ndarray, partner_audio: np.ndarray, partner_motion: np.ndarray,
             length_from: str = "audio") -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate and fit a clip's inputs to one length (module docstring) -> (self audio [n],
    partner audio [n], partner motion [T, 56], T).  Shared by :func:`predict_clip` and the
    streamed path (``dualtalk infer --streaming``), so both feed the model identical inputs."""
    if length_from not in LENGTH_FROM:
        raise ValueError(f"length_from: expected one of {LENGTH_FROM}, got {length_from!r}")
    self_audio = _as_array(self_audio, "self_audio", 1)
    partner_audio = _as_array(partner_audio, "partner_audio", 1)
    partner_motion = _as_array(partner_motion, "partner_motion", 2)
    if partner_motion.shape[1] != DIM:
        raise ValueError(f"partner_motion: expected [T, {DIM}], got {list(partner_motion.shape)}")

    if length_from == "audio":
        n = len(self_audio)
        T = num_frames_for_samples(n)
    else:
        T = len(partner_motion)
        n = T * SAMPLES_PER_FRAME
        self_audio = fit_audio(self_audio, n, "self audio", log)
    partner_audio = fit_audio(partner_audio, n, "partner audio", log)
    return self_audio, partner_audio, fit_motion(partner_motion, T), T


def predict_clip(model: torch.nn.Module, self_audio: np.ndarray, partner_audio: np.ndarray,
                 partner_motion: np.ndarray, device: str | torch.device = "cpu",
                 length_from: str = "audio", normalize_audio: bool | None = None,
                 precision: str = "fp32") -> np.ndarray:
    """Whole clip -> agent motion float32 [T, 56] (see the module docstring for lengths).

    self_audio [n] and partner_audio [m] are 16 kHz mono float waveforms; partner_motion is
    [S, 56] in the 56-layout. The model runs in eval mode under ``torch.inference_mode`` on
    ``device`` (``auto``/``cpu``/``cuda[:N]``; the model is moved there), with ``precision``
    ``fp32`` (default), ``bf16`` or ``fp16`` (CUDA only) autocast; the output is float32.
    """
    self_audio, partner_audio, partner_motion, T = fit_clip(self_audio, partner_audio,
                                                            partner_motion, length_from)
    device = resolve_device(device)
    check_precision(precision, device)
    # one pinned, non-blocking copy per input (cuda); the only sync is reading the result back
    inputs = to_device([self_audio[None], partner_audio[None], partner_motion[None]], device)
    with inference(model, device, precision):
        out = model(*inputs, num_frames=T, normalize_audio=normalize_audio)
        return out[0].float().cpu().numpy()


def load_partner_motion(path) -> np.ndarray:
    """A DualTalk ``.npz`` (``exp``/``pose``) or a [T, 56] ``.npy`` -> float32 [T, 56]."""
    return load_motion(path, what="partner motion")
