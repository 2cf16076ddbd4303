"""``dualtalk data calibrate``: measure :class:`FaceStats` on real EMOCA/FLAME tracks.

Why: synthetic faces must be on the real data's scale; this turns real DualTalk ``.npz`` tracks
(and, when they sit beside them, both speakers' ``.wav`` files) into the numbers synthesis draws
from. How each number is estimated:

* speaking frames: :func:`dualtalk_core.signals.speaking_mask` of the speaker's own audio (the
  same definition the synthetic data and the evaluation use); without audio, frames whose jaw
  opening is above the track's median (said in ``speaking_source``);
* identity offsets: per-speaker means of ``exp`` and head rotation (a speaker = video id +
  ``speakerN``, see :func:`speaker_key`). With two or more speakers their spread is measured;
  with one it cannot be, and is *assumed* to be :data:`IDENTITY_FRACTION` of the within-speaker
  std (said in ``identity_method``);
* jaw-coupled ``exp`` directions: least squares of ``exp`` on jaw opening over speaking frames
  (``jaw_exp_beta``, per-dim R^2); the speaking posture is the speaking-minus-silent mean that
  the jaw does not explain;
* listening smile: regression of what is left on :func:`~dualtalk_core.data.synth_face.
  listening_response` of the partner's phrase ends (partner audio needed; at least
  :data:`MIN_PHRASE_ENDS` ends, otherwise a fallback direction, said in ``smile_source``);
* blink-like events: in the high-passed rest (15-frame running median removed), the principal
  direction with the most one-sided (skewed) excursions; peaks beyond 4 robust SDs are events.
  Measured only when such a direction exists (``blink_measured``);
* the rest: per-dim std and lag-1 correlation (from velocity) of the residual, drawn as AR(1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d
from scipy.signal import find_peaks, peak_widths
from scipy.stats import skew

from dualtalk_core import layout
from dualtalk_core.data.face_stats import FaceStats
from dualtalk_core.data.motion_io import check_track, read_track_npz
from dualtalk_core.data.synth_face import listening_response
from dualtalk_core.signals import speaking_mask

IDENTITY_FRACTION = 0.5
MIN_PHRASE_ENDS = 3
LISTEN_DELAY_FRAMES = 5      # the synthetic personas' nod/smile delay, 0.1..0.3 s
DRIFT_WINDOW = 2 * layout.FRAME_RATE
BLINK_MIN_SKEW = 1.0
BLINK_RATE_RANGE = (0.05, 1.5)
SIDE_RE = re.compile(r"^(?P<clip>.+)_speaker(?P<spk>[12])$")


@dataclass
class RealTrack:
    """One real clip-side: [T, 56] motion, and audio when found beside it."""

    path: Path
    motion: np.ndarray
    own_audio: np.ndarray | None
    partner_audio: np.ndarray | None

    @property
    def speaker(self) -> str:
        return speaker_key(self.path)


def speaker_key(path: Path) -> str:
    """``<video>_sub_video_..._speakerN`` -> ``<video>_speakerN`` (one person across sub-clips);
    other names -> the file stem (each file its own speaker)."""
    m = SIDE_RE.match(path.stem)
    if not m:
        return path.stem
    return f"{m['clip'].split('_sub_video')[0]}_speaker{m['spk']}"


def load_track(path: str | Path, use_audio: bool = True) -> RealTrack:
    """Read and check one ``.npz``: ``ValueError`` naming the file when exp/pose are missing or
    misshaped, contain NaN/inf, or have fewer than 100 frames
    (:func:`dualtalk_core.data.motion_io.check_track`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"real track not found: {path}")
    motion = read_track_npz(path)
    check_track(path, motion, " of exp/pose")
    own = partner = None
    m = SIDE_RE.match(path.stem)
    if use_audio and m:
        own = _audio_beside(path.with_suffix(".wav"))
        partner = _audio_beside(path.with_name(f"{m['clip']}_speaker{3 - int(m['spk'])}.wav"))
    return RealTrack(path, motion.astype(np.float64), own, partner)


def _audio_beside(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    from dualtalk_core.media.audio_io import load_wav

    return load_wav(path, layout.SAMPLE_RATE, strict=True)


def _speaking(track: RealTrack) -> tuple[np.ndarray, str]:
    t = len(track.motion)
    if track.own_audio is not None:
        return speaking_mask(track.own_audio, t), "own audio (signals.speaking_mask)"
    jaw = track.motion[:, layout.JAW.start]
    return jaw > np.median(jaw), "jaw opening above its median (no audio)"


def _partner_ends(track: RealTrack, speaking: np.ndarray) -> list[float]:
    """Frames where the partner's phrases end while this speaker is silent (+ the delay)."""
    if track.partner_audio is None:
        return []
    from scipy.ndimage import binary_closing, binary_opening

    t = len(track.motion)
    other = speaking_mask(track.partner_audio, t)
    other = binary_opening(binary_closing(other, np.ones(7)), np.ones(3))
    ends = np.nonzero(other[:-1] & ~other[1:])[0] + 1
    return [float(e + LISTEN_DELAY_FRAMES) for e in ends if not speaking[e]]


def _identity(means: np.ndarray, within_std: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    if len(means) >= 2:
        return means.std(axis=0, ddof=1), f"{what}: measured across {len(means)} speakers"
    return IDENTITY_FRACTION * within_std, (
        f"{what}: ASSUMED {IDENTITY_FRACTION} x within-speaker std (one speaker: the spread "
        f"between speakers cannot be measured)")


def _regress(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column slope of centred ``y`` [N, D] on centred ``x`` [N], and per-column R^2."""
    xc, yc = x - x.mean(), y - y.mean(axis=0)
    beta = yc.T @ xc / max(float(xc @ xc), 1e-12)
    res = yc - np.outer(xc, beta)
    r2 = 1.0 - res.var(axis=0) / np.maximum(yc.var(axis=0), 1e-12)
    return beta, r2


def calibrate(paths: Sequence[str | Path], use_audio: bool = True) -> FaceStats:
    """Measure :class:`FaceStats` on real ``.npz`` tracks; every file is checked first, so a bad
    one fails the whole call (naming it) before anything is computed."""
    if not paths:
        raise ValueError("calibrate: no input files")
    tracks = [load_track(p, use_audio) for p in paths]
    groups: dict[str, list[RealTrack]] = {}
    for tr in tracks:
        groups.setdefault(tr.speaker, []).append(tr)
    spk_of = {id(tr): s for s, trs in groups.items() for tr in trs}
    spk_mean = {s: np.concatenate([tr.motion for tr in trs]).mean(axis=0)
                for s, trs in groups.items()}
    centred = [tr.motion - spk_mean[spk_of[id(tr)]] for tr in tracks]
    masks, sources = zip(*(_speaking(tr) for tr in tracks))
    allc, speak = np.concatenate(centred), np.concatenate(masks)
    notes: list[str] = []

    exp_std = allc[:, layout.EXP].std(axis=0)
    head_std = allc[:, layout.POSE].std(axis=0)
    means = np.array(list(spk_mean.values()))
    identity_std, id_note = _identity(means[:, layout.EXP], exp_std, "exp identity")
    head_identity_std, head_note = _identity(means[:, layout.POSE], head_std, "head identity")
    notes += [id_note, head_note]

    jaw_all = np.concatenate([tr.motion[:, layout.JAW.start] for tr in tracks])
    jaw = _jaw_stats(jaw_all, speak)
    exp_c = allc[:, layout.EXP]
    beta, r2 = _regress(exp_c[speak], jaw_all[speak]) if speak.sum() > 10 else \
        (np.zeros(50), np.zeros(50))
    on = exp_c[speak] - exp_c[speak].mean(0)
    explained = 1.0 - float((on - np.outer(jaw_all[speak] - jaw_all[speak].mean(), beta))
                            .var(0).sum() / max(on.var(0).sum(), 1e-12))
    shift = np.zeros(50)
    if speak.any() and (~speak).any():
        shift = exp_c[speak].mean(0) - exp_c[~speak].mean(0) \
            - beta * (jaw["jaw_speaking_mean"] - jaw["jaw_silent_mean"])

    residuals, smile_parts, n_ends = [], [], 0
    for tr, c, mask in zip(tracks, centred, masks):
        r = c[:, layout.EXP] - np.outer(c[:, layout.JAW.start], beta) - np.outer(mask, shift)
        residuals.append(r - r.mean(0))
        ends = _partner_ends(tr, mask)
        n_ends += len(ends)
        smile_parts.append(listening_response(len(r), ends))
    smile, smile_source = _smile(residuals, smile_parts, n_ends, exp_std)
    residuals = [r - np.outer(s - s.mean(), smile) for r, s in zip(residuals, smile_parts)]
    blink = _blinks(residuals, exp_std)
    res_all = np.concatenate(residuals)
    res_vel = np.concatenate([np.diff(r, axis=0) for r in residuals])
    head_c = [c[:, layout.POSE] for c in centred]
    head_vel = np.concatenate([np.diff(h, axis=0) for h in head_c])
    drift = np.concatenate([uniform_filter1d(h, DRIFT_WINDOW, axis=0, mode="nearest")
                            for h in head_c])
    from dualtalk_core.data.synth_face import rho_from_velocity

    res_std = res_all.std(0)
    vel = np.concatenate([np.diff(c, axis=0) for c in centred])
    return FaceStats(
        exp_mean=means[:, layout.EXP].mean(0).tolist(), exp_std=exp_std.tolist(),
        exp_vel_std=vel[:, layout.EXP].std(0).tolist(), identity_std=identity_std.tolist(),
        identity_method=id_note, **jaw,
        jaw_side_mean=means[:, 51:53].mean(0).tolist(),
        jaw_side_std=allc[:, 51:53].std(0).tolist(),
        jaw_exp_beta=beta.tolist(), jaw_exp_r2=r2.tolist(), jaw_exp_explained=explained,
        speaking_shift=shift.tolist(), speaking_fraction=float(speak.mean()),
        speaking_source="; ".join(sorted(set(sources))),
        smile_direction=smile.tolist(), smile_source=smile_source, **blink,
        residual_std=res_std.tolist(),
        residual_rho=rho_from_velocity(res_std, res_vel.std(0)).tolist(),
        head_mean=means[:, layout.POSE].mean(0).tolist(), head_std=head_std.tolist(),
        head_vel_std=head_vel.std(0).tolist(), head_drift_std=drift.std(0).tolist(),
        head_identity_std=head_identity_std.tolist(), frames=int(len(allc)),
        speakers=len(groups), sources=[tr.path.name for tr in tracks], notes=notes)


def _jaw_stats(jaw: np.ndarray, speak: np.ndarray) -> dict[str, float]:
    silent = jaw[~speak] if (~speak).any() else jaw
    spoken = jaw[speak] if speak.any() else jaw
    return {"jaw_mean": float(jaw.mean()), "jaw_std": float(jaw.std()),
            "jaw_vel_std": float(np.diff(jaw).std()),
            "jaw_p05": float(np.percentile(jaw, 5)), "jaw_p95": float(np.percentile(jaw, 95)),
            "jaw_silent_mean": float(silent.mean()), "jaw_speaking_mean": float(spoken.mean()),
            "jaw_silent_std": float(silent.std()), "jaw_speaking_std": float(spoken.std())}


def _smile(residuals, responses, n_ends: int, exp_std) -> tuple[np.ndarray, str]:
    """The exp direction that follows the listening response (regression), or a fallback."""
    resp = np.concatenate(responses)
    if n_ends >= MIN_PHRASE_ENDS and resp.std() > 0:
        beta, _ = _regress(np.concatenate(residuals), resp)
        return beta, f"measured: regression on the listening response ({n_ends} phrase ends)"
    from dualtalk_core.data.synth import SMILE_DIMS, SMILE_WEIGHTS

    d = np.zeros(50)
    for dim, w in zip(SMILE_DIMS, SMILE_WEIGHTS):
        d[dim] = w * exp_std[dim]
    return d, (f"fallback: the legacy smile dims {SMILE_DIMS} in units of their real std "
               f"({n_ends} partner phrase ends, need {MIN_PHRASE_ENDS} and partner audio)")


def _blinks(residuals: list[np.ndarray], exp_std: np.ndarray) -> dict:
    """Blink-like events: the most one-sided principal direction of the high-passed rest."""
    hp = np.concatenate([r - median_filter(r, size=(15, 1), mode="nearest") for r in residuals])
    frames = len(hp)
    _, _, vt = np.linalg.svd(hp - hp.mean(0), full_matrices=False)
    best = max(range(3), key=lambda k: abs(skew(hp @ vt[k])))
    comp = hp @ vt[best]
    sign = np.sign(skew(comp)) or 1.0
    comp = comp * sign
    mad = 1.4826 * np.median(np.abs(comp - np.median(comp)))
    peaks, _ = find_peaks(comp, height=np.median(comp) + 4 * mad, distance=5)
    rate = len(peaks) / (frames / layout.FRAME_RATE)
    measured = bool(abs(skew(comp)) >= BLINK_MIN_SKEW and len(peaks) >= 3
                    and BLINK_RATE_RANGE[0] <= rate <= BLINK_RATE_RANGE[1])
    if measured:
        width = float(np.median(peak_widths(comp, peaks, rel_height=0.5)[0]))
        direction = hp[peaks].mean(axis=0)
        return {"blink_measured": True, "blink_rate_hz": float(rate),
                "blink_width_frames": width, "blink_direction": direction.tolist()}
    from dualtalk_core.data.synth import BLINK_DIM

    d = np.zeros(50)
    d[BLINK_DIM] = 2.0 * exp_std[BLINK_DIM]
    return {"blink_measured": False, "blink_rate_hz": 0.3, "blink_width_frames": 2.0,
            "blink_direction": d.tolist()}
