"""The preview renderer and ``dualtalk render``: drawings measured, GIF/MP4 files read back."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dualtalk_core.media import render, video
from dualtalk_core.media.face_readout import FaceReadout, readout_for
from dualtalk_core.data import synth
from dualtalk_core.cli import main as dualtalk
from dualtalk_core.signals import pearson
from dualtalk_core.layout import DIM, EXP, JAW, POSE, SAMPLE_RATE, SAMPLES_PER_FRAME, \
    npz_fields_from_flame56

JAW_OPEN, PITCH, YAW, ROLL = JAW.start, POSE.start, POSE.start + 1, POSE.start + 2
BLINK = EXP.start + synth.BLINK_DIM
CFG = render.RenderConfig(readout=FaceReadout.legacy())   # drawing mechanics, legacy units
REAL = render.RenderConfig()                                # default: the calibrated real scale
SIZE = CFG.size


def jaw_ramp() -> np.ndarray:
    """21 frames: jaw 0 -> 0.25 (frame 10) -> 0, everything else still."""
    m = np.zeros((21, DIM), np.float32)
    m[:, JAW_OPEN] = np.concatenate([np.linspace(0, 0.25, 11), np.linspace(0.25, 0, 11)[1:]])
    return m


def near(rgb: np.ndarray, colour, tol: int) -> np.ndarray:
    return (np.abs(rgb.astype(int) - np.array(colour)) <= tol).all(axis=-1)


def agent_panel(frame: np.ndarray) -> np.ndarray:
    """The agent's face panel (right of the partner) of a side-by-side frame."""
    return frame[:, -frame.shape[1] // 2:] if frame.shape[1] >= 2 * SIZE else frame


def mouth_pixels(rgb: np.ndarray, tol: int = 4) -> int:
    return int(near(agent_panel(rgb), CFG.agent.mouth, tol).sum())


def monotonic(counts) -> bool:
    """Never shrinks, and grows at every step once the lips part (a 0.02 rad jaw looks closed)."""
    counts = np.asarray(counts)
    steps = np.diff(counts)
    return bool((steps >= 0).all() and (steps[counts[:-1] > 0] > 0).all())


def eye_pixels(img) -> int:
    return int(near(np.asarray(img), CFG.agent.sclera, 2).sum())


def centroid(img, colour) -> np.ndarray:
    ys, xs = np.nonzero(near(np.asarray(img), colour, 4))
    return np.array([xs.mean(), ys.mean()])


def test_config_defaults_are_the_synthetic_rules_and_validated():
    legacy = CFG.readout
    assert [i for i, v in enumerate(legacy.smile) if v] == list(synth.SMILE_DIMS)
    assert legacy.blink[synth.BLINK_DIM] == synth.BLINK_AMPLITUDE
    assert REAL.readout == readout_for("real") and REAL.readout.label == "real"
    for bad in ({"size": 10}, {"fps": 0}, {"max_angle": 0}, {"readout": "legacy"}):
        with pytest.raises(ValueError):
            render.RenderConfig(**bad)
    fields = dict(rest=(0.0,) * 50, mouth=(0.0,) * 50, smile=(1.0,) * 50, blink=(1.0,) * 50,
                  jaw_rest=0.0, jaw_full=0.25)
    for bad in ({"jaw_full": 0.0}, {"smile": (0.0,) * 50}, {"blink": (1.0,) * 49}):
        with pytest.raises(ValueError):
            FaceReadout(**{**fields, **bad})


def test_mouth_opening_follows_the_jaw_in_a_gif(tmp_path):
    agent = jaw_ramp()
    partner = np.zeros_like(agent)
    out = render.render_to_file(tmp_path / "ramp.gif", agent, partner, config=CFG)
    with Image.open(out) as gif:
        assert gif.n_frames == len(agent) and gif.info["loop"] == 0
        assert gif.size == (2 * SIZE, next(render.render_frames(agent[:1])).shape[0])
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB")))
    counts = np.array([mouth_pixels(f, tol=12) for f in frames])
    jaw = agent[:, JAW_OPEN]
    assert pearson(counts, jaw) > 0.9, counts
    lo, hi = int(np.argmin(jaw)), int(np.argmax(jaw))
    assert monotonic(counts[lo:hi + 1]), counts
    rows = np.nonzero(near(agent_panel(frames[hi]), CFG.agent.mouth, 12).any(axis=1))[0]
    assert counts[hi] > 0.01 * SIZE ** 2 and np.ptp(rows) > 0.1 * SIZE   # clearly visible
    # exact (un-quantised) frames say the same, and the partner's still mouth does not move
    exact = list(render.render_frames(agent, partner, config=CFG))
    assert monotonic([mouth_pixels(f) for f in exact][lo:hi + 1])
    left = [int(near(f[:, :SIZE], CFG.partner.mouth, 4).sum()) for f in exact]
    assert max(left) == min(left)


def test_blink_closes_the_eyes_and_pose_moves_the_face():
    still = np.zeros(DIM, np.float32)
    blink = still.copy()
    blink[BLINK] = synth.BLINK_AMPLITUDE
    half = still.copy()
    half[BLINK] = synth.BLINK_AMPLITUDE / 2
    open_, half_, shut = (eye_pixels(render.draw_face(c, CFG)) for c in (still, half, blink))
    assert open_ > half_ > shut and shut < 0.05 * open_
    base = np.asarray(render.draw_face(still, CFG), int)
    rolled = still.copy()
    rolled[ROLL] = 0.3
    changed = (np.abs(np.asarray(render.draw_face(rolled, CFG), int) - base).sum(-1) > 30).mean()
    assert changed > 0.03
    iris = centroid(render.draw_face(still, CFG), CFG.agent.iris)
    for dim, axis, sign in ((YAW, 0, +1), (PITCH, 1, +1)):   # yaw: viewer's right; pitch: down
        turned = still.copy()
        turned[dim] = 0.3
        shift = centroid(render.draw_face(turned, CFG), CFG.agent.iris) - iris
        assert sign * shift[axis] > 0.05 * SIZE, (dim, shift)


def test_smile_raises_the_mouth_corners():
    still = np.zeros(DIM, np.float32)
    smile = still.copy()
    for d, w in zip(synth.SMILE_DIMS, synth.SMILE_WEIGHTS):
        smile[EXP.start + d] = w
    assert render.face_controls(smile, CFG)["smile"] == pytest.approx(1.0)
    def corner_minus_middle(img):   # image rows: the corners' height over the middle's
        box = np.asarray(img)[int(0.6 * SIZE):int(0.85 * SIZE), int(0.36 * SIZE):int(0.64 * SIZE)]
        ys, xs = np.nonzero(near(box, CFG.agent.line, 40))
        off = np.abs(xs - box.shape[1] / 2)
        return ys[off > 0.08 * SIZE].mean() - ys[off < 0.02 * SIZE].mean()
    assert abs(corner_minus_middle(render.draw_face(still, CFG))) < 2       # a straight line
    assert corner_minus_middle(render.draw_face(smile, CFG)) < -0.02 * SIZE  # corners higher


def test_wild_values_never_crash():
    rng = np.random.default_rng(0)
    for coeffs in (np.full(DIM, 1e6), np.full(DIM, -1e6), rng.normal(0, 5, DIM),
                   np.full(DIM, np.nan)):
        img = render.draw_face(coeffs)
        assert img.size == (SIZE, SIZE) and img.mode == "RGB"


def test_mp4_has_video_and_muxed_audio(tmp_path):
    ffmpeg = video.find_ffmpeg()
    assert ffmpeg, "imageio-ffmpeg is a dependency, so an ffmpeg is always there"
    agent = jaw_ramp()
    t = np.arange(len(agent) * SAMPLES_PER_FRAME) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    level = render.speech_levels(audio, len(agent))
    out = render.render_to_file(tmp_path / "a.mp4", agent, agent[::-1], audio=audio,
                                agent_level=level)
    info = subprocess.run([ffmpeg, "-hide_banner", "-i", str(out)], capture_output=True,
                          text=True).stderr
    assert "Video: h264" in info and "yuv420p" in info and "Audio: aac" in info, info
    seconds = re.search(r"Duration: 00:00:(\d+\.\d+)", info).group(1)
    assert abs(float(seconds) - 0.84) < 0.1, info   # 21 frames at 25 fps (+ an AAC frame)


def _write_inputs(tmp_path, t=50):
    rng = np.random.default_rng(1)
    agent = np.zeros((t, DIM), np.float32)
    agent[:, JAW_OPEN] = 0.12 + 0.12 * np.sin(np.arange(t) / 3)
    agent[:, POSE] = 0.05 * rng.normal(size=(t, 3))
    np.save(tmp_path / "pred.npy", agent)
    np.savez(tmp_path / "partner.npz", **npz_fields_from_flame56(agent[::-1]))
    voice = 0.2 * rng.normal(size=t * SAMPLES_PER_FRAME).astype(np.float32)
    voice[: t // 2 * SAMPLES_PER_FRAME] = 0
    sf.write(tmp_path / "a.wav", voice, SAMPLE_RATE)
    sf.write(tmp_path / "b.wav", voice[::-1].copy(), SAMPLE_RATE)
    return agent


def test_cli_end_to_end(tmp_path):
    _write_inputs(tmp_path, t=50)
    d = tmp_path
    cli = [sys.executable, "-m", "dualtalk_core.cli", "render"]
    runs = {
        "gif": [str(d / "pred.npy"), "--partner", str(d / "partner.npz"), "--audio",
                str(d / "a.wav"), "-o", str(d / "o.gif"), "--fps", "12.5", "--size", "128"],
        "mp4": [str(d / "partner.npz"), "--partner", str(d / "pred.npy"), "--audio",
                str(d / "a.wav"), "--partner-audio", str(d / "b.wav"), "-o", str(d / "o.mp4"),
                "--start", "0.4", "--duration", "1.2"],
    }
    for kind, argv in runs.items():   # the installed command line, as a user runs it
        proc = subprocess.run(cli + argv, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (kind, proc.stderr)
        assert proc.stdout.strip() == str(d / f"o.{kind}")
    assert dualtalk(["render", str(d / "partner.npz"), "-o", str(d / "o.png")]) == 0
    with Image.open(d / "o.gif") as gif:
        assert gif.n_frames == 25 and gif.size == (256, next(render.render_frames(
            np.zeros((1, DIM)), config=render.RenderConfig(size=128))).shape[0] )
        assert gif.info["duration"] == 80
    with Image.open(d / "o.png") as png:
        assert png.size[0] == SIZE       # no partner: one face
    info = subprocess.run([video.find_ffmpeg(), "-hide_banner", "-i", str(d / "o.mp4")],
                          capture_output=True, text=True).stderr
    seconds = re.search(r"Duration: 00:00:(\d+\.\d+)", info).group(1)
    assert abs(float(seconds) - 1.2) < 0.1 and "Audio:" in info, info


@pytest.mark.parametrize("case", ["shape", "nan", "missing", "extension", "start"])
def test_cli_bad_input_names_the_file(tmp_path, capsys, case):
    agent = _write_inputs(tmp_path, t=10)
    bad = tmp_path / "bad.npy"
    out = tmp_path / "o.gif"
    if case == "shape":
        np.save(bad, agent[:, :55])
        want = [str(bad), "[T, 56]", "[10, 55]"]
    elif case == "nan":
        agent[3, 7] = np.nan
        np.save(bad, agent)
        want = [str(bad), "NaN", "frame 3"]
    elif case == "missing":
        bad = tmp_path / "nope.npy"
        want = [str(bad), "not found"]
    elif case == "extension":
        bad, out = tmp_path / "pred.npy", tmp_path / "o.avi"
        want = [str(out), ".avi", ".gif"]
    else:
        bad = tmp_path / "pred.npy"
        want = [str(bad), "--start"]
    argv = ["render", str(bad), "-o", str(out)] + (["--start", "9"] if case == "start" else [])
    assert dualtalk(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in want), err
    assert not out.exists()


def test_length_mismatch_trims_and_logs(caplog):
    agent = jaw_ramp()
    frames = list(render.render_frames(agent, agent[:15]))
    assert len(frames) == 15
    assert "rendering the first 15" in caplog.text


# --------------------------------------------------------------------------------------------
# the calibrated real scale (the default): mouth, smile and blink still show

def test_real_scale_mouth_smile_and_blink_show():
    from dualtalk_core.data.face_stats import resolve_face_stats
    from dualtalk_core.data.synth_face import SMILE_PEAK

    stats = resolve_face_stats("real")
    rest = np.zeros(DIM, np.float32)
    rest[EXP] = stats.exp_mean
    rest[JAW_OPEN] = stats.jaw_silent_mean
    # mouth: the jaw from its silent level to its 95th percentile, exp following it
    frames = []
    for k in np.linspace(0.0, 1.0, 6):
        c = rest.copy()
        jaw = stats.jaw_silent_mean + k * (stats.jaw_p95 - stats.jaw_silent_mean)
        c[JAW_OPEN] = jaw
        c[EXP] += np.asarray(stats.jaw_exp_beta) * (jaw - stats.jaw_silent_mean)
        frames.append(mouth_pixels(np.asarray(render.draw_face(c, REAL))))
    assert monotonic(frames) and frames[-1] > 0.01 * SIZE ** 2, frames
    # blink: one blink-like event along the measured direction shuts the eyes
    shut = rest.copy()
    shut[EXP] += stats.blink_direction
    half = rest.copy()
    half[EXP] += 0.5 * np.asarray(stats.blink_direction)
    open_, half_, closed = (eye_pixels(render.draw_face(c, REAL)) for c in (rest, half, shut))
    assert open_ > half_ > closed and closed < 0.05 * open_
    # smile: a saturated listening smile raises the corners
    smile = rest.copy()
    smile[EXP] += SMILE_PEAK * np.asarray(stats.smile_direction)
    assert render.face_controls(smile, REAL)["smile"] == pytest.approx(1.0)
    assert render.face_controls(rest, REAL)["smile"] == pytest.approx(0.0, abs=1e-6)


def test_real_scale_synthetic_clip_shows_speech_in_the_mouth(tmp_path):
    """A whole synthetic conversation on the default scale: the drawn mouth follows speech."""
    from data_helpers import make_synth
    from dualtalk_core.data.dataset import load_split
    from dualtalk_core.signals import speech_energy_per_frame

    make_synth(tmp_path, pairs=1, seed=4, splits="train=1", max_seconds=8)
    (side, *_), _ = load_split(tmp_path, "train")
    counts = [mouth_pixels(f) for f in render.render_frames(side.target_motion, config=REAL)]
    env = speech_energy_per_frame(side.self_audio, side.num_frames)
    assert pearson(counts, env) > 0.4
