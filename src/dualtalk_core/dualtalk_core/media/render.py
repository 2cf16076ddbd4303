"""Preview renderer: two stylised 2D faces drawn from [T, 56] coefficients, side by side.

Why a cartoon and not FLAME: the FLAME model is licence-bound and heavy; a preview only has to
show *what the model does* (when the jaw opens, nods, smiles, blinks) so a person can judge
timing against the audio. The face is a handful of 3D points on a head, rotated by the exact
head pose (axis-angle, Rodrigues) and projected orthographically, so roll tilts the face, yaw
slides the features sideways and narrows the outline, pitch slides them up and down.

What drives what (see :class:`RenderConfig`):

* mouth opening  <- jaw opening (index 50, radians, from its rest to its full opening) + the
  jaw-coupled expression direction;
* mouth corners  <- the smile direction (raise and widen);
* eyelids        <- the blink direction;
* head           <- head pose (indices 53:56).

The directions come from :class:`~dualtalk_core.media.face_readout.FaceReadout`: by default
the calibrated real scale (``dualtalk data synth``'s default), ``legacy`` for motion on the
first synthetic scale (the bundled demo model's output).

Frames are plain RGB ``uint8`` arrays; writers make a GIF (Pillow), an MP4 (an ``ffmpeg``
binary, with the audio muxed in) or a PNG still. Pure Python: numpy + Pillow, no ROS.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from dualtalk_core.media.audio_io import fit_audio
from dualtalk_core.media.face_readout import FaceReadout, readout_for
from dualtalk_core.media.video import output_kind, require_ffmpeg, write_gif, write_mp4
from dualtalk_core.layout import DIM, EXP, FRAME_RATE, JAW, POSE, SAMPLE_RATE

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
JAW_OPEN = JAW.start       # 56-layout index of the jaw opening (rx)
HEAD = (0.86, 1.08, 0.8)   # head ellipsoid semi-axes (x, y, z) in head units
SUPERSAMPLE = 2            # draw at 2x and box-filter down: smooth edges, exact flat colours


@dataclass(frozen=True)
class FaceStyle:
    """Colours of one face (the two speakers get different hair/skin so they are told apart)."""

    skin: RGB = (238, 200, 170)
    hair: RGB = (90, 60, 40)
    line: RGB = (60, 40, 30)
    mouth: RGB = (110, 20, 30)      # mouth interior (the tests count these pixels)
    sclera: RGB = (250, 250, 250)   # eye white (the tests count these pixels)
    iris: RGB = (50, 90, 140)


AGENT_STYLE = FaceStyle()
PARTNER_STYLE = FaceStyle(skin=(225, 190, 150), hair=(40, 40, 45), iris=(70, 110, 60))


@dataclass(frozen=True)
class RenderConfig:
    """How coefficients become a drawing.

    ``readout`` holds the expression directions of the synthetic data's rules (mouth follows
    speech, smile after the partner's phrase, blinks) on the data's scale: the calibrated real
    scale by default, :meth:`FaceReadout.legacy` for the first synthetic scale. Jaw and head
    pose are drawn exactly (they are rotations) while expression is only approximate: FLAME's
    expression basis has no "smile dim", so the read-outs are a projection, clamped to stay sane.
    """

    size: int = 256                   # one face panel is size x size pixels
    fps: float = FRAME_RATE           # motion frame rate (time labels, writers)
    background: RGB = (245, 245, 240)
    text: RGB = (30, 30, 30)
    speaking: RGB = (40, 170, 70)
    agent: FaceStyle = AGENT_STYLE
    partner: FaceStyle = PARTNER_STYLE
    readout: FaceReadout = field(default_factory=readout_for)
    mouth_gain: float = 0.3           # share of the mouth direction in the opening (jaw: 1.0)
    max_angle: float = 0.8            # head rotation is clamped to this many radians
    speaking_threshold: float = 0.1   # speech level (see speech_levels) above it = "speaking"

    def __post_init__(self):
        if not 64 <= self.size <= 2048:
            raise ValueError(f"size must be 64..2048 pixels, got {self.size}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.max_angle > 0:
            raise ValueError(f"max_angle must be > 0, got {self.max_angle}")
        if not isinstance(self.readout, FaceReadout):
            raise ValueError(f"readout must be a FaceReadout, got {type(self.readout).__name__}")


# ------------------------------------------------------------------------------------------
# input checks

def check_motion(motion, source: str = "motion") -> np.ndarray:
    """-> float32 [T, 56]; ``ValueError`` naming ``source`` for a wrong shape, no frames, NaN."""
    arr = np.asarray(motion, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != DIM:
        raise ValueError(f"{source}: expected a [T, {DIM}] array, got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{source}: has no frames")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"{source}: NaN or infinite values in {int(bad.sum())} frame(s), "
                         f"first at frame {int(np.argmax(bad))}")
    return arr


def match_lengths(agent: np.ndarray, partner: np.ndarray | None):
    """Trim agent and partner to the shorter one (logged: a mismatch usually means a wrong pair)."""
    if partner is None or len(partner) == len(agent):
        return agent, partner
    t = min(len(agent), len(partner))
    log.warning("agent has %d frames, partner %d: rendering the first %d", len(agent),
                len(partner), t)
    return agent[:t], partner[:t]


# ------------------------------------------------------------------------------------------
# one face

def _rotation(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle -> 3x3 rotation matrix (Rodrigues), FLAME's convention for the head pose."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-8:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _ellipse(cx, cy, rx, ry, n=32) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _bezier(p0, mid, p2, n=16) -> np.ndarray:
    """Quadratic curve from p0 to p2 passing through ``mid`` at its half-way point: [n, 2]."""
    p0, mid, p2 = (np.asarray(p, float) for p in (p0, mid, p2))
    ctrl = 2 * mid - (p0 + p2) / 2
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * ctrl + t ** 2 * p2


def _lip(half_width: float, corner_y: float, mid_y: float, n: int = 20,
         reverse: bool = False) -> np.ndarray:
    """Half an ellipse from corner to corner through (0, mid_y): a round lip line, [n, 2]."""
    a = np.linspace(0, math.pi, n)[::-1 if reverse else 1]
    return np.stack([half_width * np.cos(a), corner_y + (mid_y - corner_y) * np.sin(a)], axis=1)


def _on_head(xy: np.ndarray, lift: float = 0.0) -> np.ndarray:
    """Put 2D front-view points onto the head ellipsoid's front surface (+ ``lift``): [n, 3]."""
    a, b, c = HEAD
    xy = np.asarray(xy, float)
    z = c * np.sqrt(np.clip(1 - (xy[:, 0] / a) ** 2 - (xy[:, 1] / b) ** 2, 0, 1)) + lift
    return np.concatenate([xy, z[:, None]], axis=1)


@functools.lru_cache(maxsize=16)
def _solid(colour: RGB, size: int) -> Image.Image:
    """A plain image to paste through a mask (much faster than pasting a colour tuple)."""
    return Image.new("RGB", (size, size), colour)


def face_controls(coeffs, config: RenderConfig) -> dict[str, float | np.ndarray]:
    """The few numbers the drawing uses, clamped: wild inputs never crash or leave the panel.

    ``open`` (0..1.3) = jaw above its rest / (full - rest) + mouth_gain x mouth read-out:
    monotonic in the jaw. Read-outs are projections on the rule directions (1 = one rule unit).
    """
    c = np.nan_to_num(np.asarray(coeffs, np.float64).reshape(DIM), nan=0.0, posinf=0.0,
                      neginf=0.0)
    exp, ro = c[EXP], config.readout
    mouth = float(np.clip(ro.read(exp, "mouth"), -1.0, 1.5))
    span = ro.jaw_full - ro.jaw_rest
    jaw = float(np.clip((c[JAW_OPEN] - ro.jaw_rest) / span, 0.0, 2.0))
    return {
        "open": float(np.clip(jaw + config.mouth_gain * mouth, 0.0, 1.3)),
        "smile": float(np.clip(ro.read(exp, "smile"), -0.5, 1.0)),
        "blink": float(np.clip(ro.read(exp, "blink"), 0.0, 1.0)),
        "pose": np.clip(c[POSE], -config.max_angle, config.max_angle),
    }


def draw_face(coeffs, config: RenderConfig | None = None, style: FaceStyle | None = None,
              size: int | None = None) -> Image.Image:
    """One frame's coefficients [56] -> an RGB ``size`` x ``size`` cartoon face.

    Geometry lives in head units (head radius ~1, x to the viewer's right, y up, z towards the
    viewer, like FLAME's camera frame); everything is rotated by the head pose and projected.
    """
    config = config or RenderConfig()
    style = style or config.agent
    size = size or config.size
    ctl = face_controls(coeffs, config)
    ss = size * SUPERSAMPLE
    img = Image.new("RGB", (ss, ss), config.background)
    draw = ImageDraw.Draw(img)
    rot = _rotation(ctl["pose"])
    scale, centre = 0.36 * ss, np.array([0.5 * ss, 0.52 * ss])
    lw = max(2, round(ss / 110))

    def pts(p3: np.ndarray, clip: bool = True) -> list[tuple[float, float]]:
        xy = centre + scale * (p3 @ rot.T)[:, :2] * np.array([1.0, -1.0])  # image y is down
        return [tuple(q) for q in (np.clip(xy, 0, ss - 1) if clip else xy)]

    def facing(p3: np.ndarray) -> bool:   # a feature turned away from the viewer is not drawn
        return float((p3 @ rot.T)[:, 2].mean()) > 0.05

    # head: the exact outline of the rotated ellipsoid (narrows with yaw), hair clipped to it
    # (an ellipsoid with axes HEAD rotated by R projects to the ellipse of (R D^2 R^T)[:2, :2])
    shape = np.linalg.cholesky((rot @ np.diag(np.square(HEAD)) @ rot.T)[:2, :2])
    ring = _ellipse(0, 0, 1, 1, 72) @ shape.T
    head_poly = [tuple(q) for q in np.clip(centre + scale * ring * [1, -1], 0, ss - 1)]
    head_mask = Image.new("L", (ss, ss), 0)
    ImageDraw.Draw(head_mask).polygon(head_poly, fill=255)
    draw.polygon(head_poly, fill=style.skin)
    hairline = _on_head(_bezier((-0.86, 0.28), (0.0, 0.70), (0.86, 0.28)))
    above = np.array([[2.0, 0.28, 0.0], [2.0, 3.0, 0.0], [-2.0, 3.0, 0.0], [-2.0, 0.28, 0.0]])
    hair_mask = Image.new("L", (ss, ss), 0)
    ImageDraw.Draw(hair_mask).polygon(pts(np.concatenate([hairline, above]), clip=False),
                                      fill=255)
    img.paste(_solid(style.hair, ss), mask=ImageChops.darker(hair_mask, head_mask))
    draw.polygon(head_poly, outline=style.line, width=lw)
    # eyes: lids close with the blink dim (the eye white's height shrinks to a line)
    open_eye = 1.0 - ctl["blink"]
    for side in (-1, 1):
        ex, ey = 0.32 * side, 0.14
        eye = _on_head(_ellipse(ex, ey, 0.15, max(0.10 * open_eye, 0.01)))
        if not facing(eye):
            continue
        if open_eye > 0.08:
            draw.polygon(pts(eye), fill=style.sclera, outline=style.line, width=lw)
            r = min(0.06, 0.10 * open_eye)
            draw.polygon(pts(_on_head(_ellipse(ex, ey, r, r, 20), 0.01)), fill=style.iris)
        else:
            draw.line(pts(_on_head(_bezier((ex - 0.15, ey), (ex, ey - 0.03), (ex + 0.15, ey),
                                           8))), fill=style.line, width=lw)
        draw.line(pts(_on_head(_bezier((ex - 0.16, 0.33), (ex, 0.38), (ex + 0.16, 0.33), 8))),
                  fill=style.hair, width=2 * lw)
    # nose: its tip sticks out of the surface, so yaw/pitch show as parallax
    nose = _on_head(np.array([[0.0, 0.05], [-0.06, -0.18], [0.05, -0.2]]))
    nose[1, 2] += 0.15
    if facing(nose):
        draw.line(pts(nose), fill=style.line, width=lw)
    # mouth: corners rise and widen with the smile, the lower lip drops with the opening
    smile, opening = ctl["smile"], 0.40 * ctl["open"]
    my, hw = -0.50, 0.26 * (1 + 0.15 * smile)
    corner_y = my + 0.12 * smile
    upper = _lip(hw, corner_y, my + 0.12 * opening - 0.04 * smile, reverse=True)
    lower = _lip(hw, corner_y, my - 0.88 * opening - 0.04 * smile)
    mouth = _on_head(np.concatenate([upper, lower]))
    if facing(mouth):   # fill, then the lips as a line (a polygon outline vanishes when shut)
        lips = pts(mouth)
        draw.polygon(lips, fill=style.mouth)
        draw.line(lips + lips[:1], fill=style.line, width=lw, joint="curve")
    return img.reduce(SUPERSAMPLE)


# ------------------------------------------------------------------------------------------
# frames

def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: bitmap font of a fixed size
        return ImageFont.load_default()


def speech_levels(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Audio -> per-frame speech level in 0..1 (40 ms RMS over its 95th percentile): [T].

    Normalised over the whole clip, so a window cut out of it (``--start``) keeps the same scale.
    """
    from dualtalk_core.signals import speech_energy_per_frame

    energy = speech_energy_per_frame(audio, num_frames, smooth_frames=1.0).astype(np.float64)
    ref = float(np.percentile(energy, 95))
    return np.clip(energy / ref, 0.0, 1.0) if ref > 0 else np.zeros(num_frames)


def _levels(level: np.ndarray | None, t: int) -> np.ndarray | None:
    if level is None:
        return None
    out = np.zeros(t)
    k = min(t, len(level))
    out[:k] = np.nan_to_num(np.asarray(level, np.float64)[:k])
    return np.clip(out, 0.0, 1.0)


def render_frames(agent, partner=None, *, config: RenderConfig | None = None,
                  agent_level: np.ndarray | None = None,
                  partner_level: np.ndarray | None = None,
                  start_frame: int = 0,
                  indices: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 [H, W, 3] frames: partner left, agent right, labels and the time.

    ``agent_level``/``partner_level`` (per-frame speech level 0..1, :func:`speech_levels`) add
    a level bar that turns green while that person speaks. ``start_frame`` only offsets the
    time label; ``indices`` picks the frames to draw (default all; ``range(0, T, 2)`` for a
    lighter GIF). Width and height are even (h264 needs that).
    """
    config = config or RenderConfig()
    agent = check_motion(agent, "agent")
    partner = None if partner is None else check_motion(partner, "partner")
    agent, partner = match_lengths(agent, partner)
    t, size = len(agent), config.size
    panels = [("agent", agent, config.agent, _levels(agent_level, t))]
    if partner is not None:
        panels.insert(0, ("partner", partner, config.partner,
                          _levels(partner_level, t)))
    head, foot = round(0.14 * size), round(0.26 * size)
    width = len(panels) * size
    height = size + head + foot
    width, height = width + width % 2, height + height % 2
    font, small = _font(max(10, round(0.085 * size))), _font(max(9, round(0.065 * size)))
    for i in range(t) if indices is None else (i for i in indices if 0 <= i < t):
        frame = Image.new("RGB", (width, height), config.background)
        draw = ImageDraw.Draw(frame)
        for j, (label, motion, style, levels) in enumerate(panels):
            x0 = j * size
            frame.paste(draw_face(motion[i], config, style, size), (x0, head))
            draw.text((x0 + size / 2, head / 2), label, fill=config.text, font=font, anchor="mm")
            if levels is not None:
                level = levels[i]
                speaking = level > config.speaking_threshold
                colour = config.speaking if speaking else (170, 170, 170)
                bx, by, bh = x0 + 0.2 * size, head + size + 0.04 * size, 0.04 * size
                draw.rectangle([bx, by, bx + 0.6 * size, by + bh], outline=colour)
                draw.rectangle([bx, by, bx + 0.6 * size * level, by + bh], fill=colour)
                if speaking:
                    draw.text((x0 + size / 2, by + 2 * bh), "speaking", fill=colour, font=small,
                              anchor="mt")
        seconds = (start_frame + i) / config.fps
        draw.text((width / 2, height - 0.03 * size), f"t = {seconds:.2f} s", fill=config.text,
                  font=small, anchor="md")
        yield np.asarray(frame)


def mix_audio(*tracks: np.ndarray | None) -> np.ndarray | None:
    """Sum mono tracks (the shorter ones padded with silence), clipped to [-1, 1]."""
    tracks = [np.asarray(t, np.float32) for t in tracks if t is not None]
    if not tracks:
        return None
    out = np.zeros(max(len(t) for t in tracks), np.float32)
    for t in tracks:
        out[: len(t)] += t
    return np.clip(out, -1.0, 1.0)


def preview_frame_index(agent: np.ndarray) -> int:
    """The frame a still shows by default: the agent's widest jaw opening (the most telling)."""
    return int(np.argmax(np.asarray(agent)[:, JAW_OPEN]))


def save_preview_png(path: Path, agent, partner=None, frame: int | None = None, *,
                     config: RenderConfig | None = None, start_frame: int = 0,
                     **levels) -> Path:
    """One still frame as PNG (``frame`` defaults to :func:`preview_frame_index`)."""
    path = Path(path)
    agent = check_motion(agent, "agent")
    frame = preview_frame_index(agent) if frame is None else int(frame)
    if not 0 <= frame < len(agent):
        raise ValueError(f"{path}: frame {frame} outside 0..{len(agent) - 1}")
    rgb = next(render_frames(agent, partner, config=config, start_frame=start_frame,
                             indices=[frame], **levels))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def render_to_file(path: Path, agent, partner=None, *, config: RenderConfig | None = None,
                   audio: np.ndarray | None = None, agent_level: np.ndarray | None = None,
                   partner_level: np.ndarray | None = None, start_frame: int = 0,
                   step: int = 1) -> Path:
    """Render to ``.gif``/``.mp4``/``.png`` by the file name; ``audio`` is muxed into MP4 only.

    ``step`` keeps every ``step``-th frame (the output plays at ``fps / step``, same duration).
    """
    kind = output_kind(path)
    config = config or RenderConfig()
    levels = {"agent_level": agent_level, "partner_level": partner_level}
    if kind == ".png":
        return save_preview_png(path, agent, partner, config=config, start_frame=start_frame,
                                **levels)
    ffmpeg = require_ffmpeg(path) if kind == ".mp4" else None   # fail before rendering
    frames = render_frames(agent, partner, config=config, start_frame=start_frame,
                           indices=range(0, len(agent), max(1, int(step))), **levels)
    fps = config.fps / max(1, int(step))
    if kind == ".gif":
        if audio is not None:
            log.info("%s: a GIF has no sound; audio used for the speaking bars only", path)
        return write_gif(frames, path, fps)
    if audio is not None:
        seconds = len(range(0, len(agent), max(1, int(step)))) / fps
        audio = fit_audio(np.asarray(audio, np.float32), int(round(seconds * SAMPLE_RATE)),
                          f"{path} audio", log)
    return write_mp4(frames, path, fps, audio=audio, ffmpeg=ffmpeg)
