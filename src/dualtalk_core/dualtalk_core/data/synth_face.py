"""Synthetic faces on the real data's scale: the conversational rules drawn from :class:`FaceStats`.

Why a second motion model: the first one (:func:`dualtalk_core.data.synth.make_motion`, kept as
``--face-stats legacy``) uses hand-set sizes, ~10x smaller than real EMOCA tracks, so models
trained on it hardly move a real face. This one keeps the same rules but takes every size and
direction from statistics measured on real tracks (``dualtalk data calibrate``):

* speaking: the jaw opening rises from its silent level with the speaker's OWN speech envelope
  (scaled so the mean opening while speaking matches the real one), the ``exp`` directions that
  move with the jaw follow it (``jaw_exp_beta``), and the speaking posture (``speaking_shift``)
  fades in while the speaker talks;
* listening: after each of the partner's phrases ends the listener nods (head pitch, in units of
  the real pitch spread) and smiles along the measured listening direction;
* always: blink-like events along the measured blink direction at the measured rate, the
  speaker's identity offset, and the rest of the motion as a per-dim AR(1) whose std and
  frame-to-frame velocity match the real residual (so the face moves as jittery and as slowly
  drifting as an EMOCA track), for ``exp``, head rotation and the jaw alike.

The kernels (:data:`NOD_KERNEL`, :func:`listening_response`) are shared with calibration, which
regresses real tracks on the same response, so "one unit of smile" means the same in both.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from dualtalk_core import layout
from dualtalk_core.data.face_stats import FaceStats

FPS = layout.FRAME_RATE
NOD_KERNEL = np.sin(np.pi * np.arange(14) / 14) ** 2
"""Head-pitch bump of one nod (14 frames), the legacy rule's shape."""
SMILE_KERNEL = (1 - np.exp(-np.arange(60) / 5.0)) * np.exp(-np.arange(60) / 25.0)
"""Rise and decay of the listening smile after a partner phrase ends (60 frames)."""
SMILE_PEAK = 0.8
"""Smile size at a saturated response, in units of ``smile_direction`` (legacy rule's 0.8)."""
NOD_STDS = 2.0
"""Nod peak in units of the real head-pitch std: visible, yet on the real data's scale (the
legacy nod was ~3.5 of its pitch spread)."""
SPEAKING_BOB_STDS = 0.5
"""Head pitch that follows own speech, in units of the real head-pitch std."""
SPEAKING_SMOOTH_FRAMES = 3.0
"""Gaussian sigma (frames) of the speaking state that fades the speaking posture in and out."""


def kernel_response(num_frames: int, events: Sequence[float], kernel: np.ndarray) -> np.ndarray:
    """Sum of ``kernel`` placed at each (rounded) event frame, cut to ``num_frames``."""
    out = np.zeros(num_frames + kernel.size)
    for ev in events:
        k = int(round(ev))
        if 0 <= k < num_frames:
            out[k:k + kernel.size] += kernel
    return out[:num_frames]


def listening_response(num_frames: int, ends: Sequence[float]) -> np.ndarray:
    """The listening smile's time course (0..1) after phrase ``ends`` (frames, delay included)."""
    return np.minimum(kernel_response(num_frames, ends, SMILE_KERNEL), 1.0)


def ar1(rng: np.random.Generator, num_frames: int, std: np.ndarray, rho: np.ndarray
        ) -> np.ndarray:
    """Stationary AR(1) per column: std ``std``, lag-1 correlation ``rho`` -> [T, D].

    Its frame-to-frame velocity std is ``std * sqrt(2 (1 - rho))``, which is how calibration
    picks ``rho`` from a real track's velocity.
    """
    std = np.atleast_1d(np.asarray(std, np.float64))
    rho = np.clip(np.atleast_1d(np.asarray(rho, np.float64)), 0.0, 0.999)
    eps = rng.standard_normal((num_frames, std.size))
    out = np.empty_like(eps)
    out[0] = eps[0]
    scale = np.sqrt(1.0 - rho ** 2)
    for d in range(std.size):  # lfilter per column: the recursion x_t = rho x_{t-1} + e_t
        zi = [rho[d] * eps[0, d]]
        out[1:, d] = lfilter([scale[d]], [1.0, -rho[d]], eps[1:, d], zi=zi)[0]
    return out * std


def rho_from_velocity(std: np.ndarray, vel_std: np.ndarray) -> np.ndarray:
    """Lag-1 correlation of an AR(1) with this std and velocity std (clipped to 0..0.995)."""
    std = np.maximum(np.asarray(std, np.float64), 1e-9)
    return np.clip(1.0 - 0.5 * (np.asarray(vel_std, np.float64) / std) ** 2, 0.0, 0.995)


def draw_identity(rng: np.random.Generator, stats: FaceStats) -> np.ndarray:
    """A speaker's ``exp`` offset from the population mean (50 values)."""
    return rng.normal(0.0, 1.0, layout.EXP.stop) * stats.vec("identity_std")


def make_calibrated_motion(own_audio: np.ndarray, num_frames: int, persona, self_speaking,
                           partner_phrase_ends: Sequence[float], rng: np.random.Generator,
                           stats: FaceStats) -> np.ndarray:
    """The [T, 56] motion of one speaker on the real scale (rules in the module docstring)."""
    from dualtalk_core.data.synth import normalised_envelope

    t = num_frames
    speaking = np.asarray(self_speaking, bool)[:t]
    env = normalised_envelope(own_audio, t) * speaking
    jaw = _jaw_opening(env, speaking, persona, rng, stats)
    speak_state = gaussian_filter1d(speaking.astype(np.float64), SPEAKING_SMOOTH_FRAMES)
    ends = [e + persona.nod_delay_s * FPS for e in partner_phrase_ends
            if not speaking[min(int(e), t - 1)]]
    smile = listening_response(t, ends)

    exp = stats.vec("exp_mean") + np.asarray(persona.exp_offset, np.float64)
    exp = exp + persona.mouth_gain * np.outer(jaw - stats.jaw_silent_mean,
                                              stats.vec("jaw_exp_beta"))
    exp += np.outer(speak_state, stats.vec("speaking_shift"))
    exp += np.outer(persona.smile_gain * SMILE_PEAK * smile, stats.vec("smile_direction"))
    exp += np.outer(_blinks(t, persona, rng, stats), stats.vec("blink_direction"))
    exp += ar1(rng, t, stats.vec("residual_std"), stats.vec("residual_rho"))

    head = _head(t, env, ends, persona, rng, stats)
    side_rho = rho_from_velocity(stats.jaw_std, stats.jaw_vel_std)
    side = stats.vec("jaw_side_mean") + ar1(rng, t, stats.vec("jaw_side_std"), [side_rho] * 2)
    motion = np.empty((t, layout.DIM), np.float32)
    motion[:, layout.EXP] = exp
    motion[:, layout.JAW] = np.column_stack([jaw, side])
    motion[:, layout.POSE] = head
    return motion


def _jaw_opening(env, speaking, persona, rng, stats: FaceStats) -> np.ndarray:
    """Silent level + own-speech drive (mean speaking opening = the real one) + AR(1) jitter."""
    t = env.size
    gain = 0.0
    if speaking.any() and env[speaking].mean() > 0:
        gain = (stats.jaw_speaking_mean - stats.jaw_silent_mean) / float(env[speaking].mean())
    rho = rho_from_velocity(stats.jaw_std, stats.jaw_vel_std)
    jitter = ar1(rng, t, [stats.jaw_silent_std], [rho])[:, 0]
    return stats.jaw_silent_mean + persona.jaw_gain * gain * env + jitter


def _blinks(t: int, persona, rng, stats: FaceStats) -> np.ndarray:
    """Blink events (peak 1) at the measured rate scaled by the persona's blink rate."""
    rate = stats.blink_rate_hz * persona.blink_rate / 0.275   # 0.275 = persona rate mid-range
    n = rng.poisson(rate * t / FPS)
    half = max(1, int(round(stats.blink_width_frames)))
    kernel = np.hanning(2 * half + 1)
    return kernel_response(t, rng.uniform(0, t, n) - half, kernel)


def _head(t, env, ends, persona, rng, stats: FaceStats) -> np.ndarray:
    """Head rotation [T, 3] (pitch, yaw, roll columns of ``pose[:, 0:3]``)."""
    std = stats.vec("head_std")
    offset = rng.normal(0.0, 1.0, 3) * stats.vec("head_identity_std")
    rho = rho_from_velocity(std, stats.vec("head_vel_std"))
    head = stats.vec("head_mean") + offset + ar1(rng, t, std * persona.sway_amp / 0.035, rho)
    pitch_std = float(std[0])
    head[:, 0] += NOD_STDS * pitch_std * persona.nod_gain * kernel_response(t, ends, NOD_KERNEL)
    head[:, 0] += SPEAKING_BOB_STDS * pitch_std * env
    return head
