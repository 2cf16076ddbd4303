"""plot_motion and ``dualtalk plot``: a real PNG, turns detected where they are."""
from __future__ import annotations

import numpy as np
import pytest

from dualtalk_core.layout import DIM, JAW, SAMPLES_PER_FRAME
from dualtalk_core.media.plot import close_gaps, plot_motion, turns_from_audio, turns_from_jaw
from metrics_helpers import run_command, synth_root  # noqa: F401  (fixture)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _talk_then_listen(t=100, seed=0):
    """Jaw moving fast in the first half (talking), still in the second (listening)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((t, DIM), np.float32)
    m[: t // 2, JAW.start] = 0.1 + 0.1 * np.sin(np.arange(t // 2) * 1.7)
    m[:, JAW.start] += 0.001 * rng.normal(size=t)
    return m


def test_turns_from_jaw_and_audio():
    m = _talk_then_listen()
    turns = turns_from_jaw(m)
    assert turns[5:45].all() and not turns[60:].any()
    rng = np.random.default_rng(1)
    loud = np.concatenate([0.3 * rng.normal(size=50 * SAMPLES_PER_FRAME),
                           1e-4 * rng.normal(size=50 * SAMPLES_PER_FRAME)]).astype(np.float32)
    a = turns_from_audio(loud, 100)
    assert a[2:45].all() and not a[55:].any()


def test_close_gaps():
    mask = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
    assert close_gaps(mask, 2).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]


def test_plot_motion_writes_png(tmp_path):
    gt = _talk_then_listen(seed=2)
    partner = _talk_then_listen(seed=3)[::-1].copy()
    pred = gt + 0.01
    out = plot_motion(pred, tmp_path / "sub" / "fig.png", gt=gt, partner=partner, title="t")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    only_pred = plot_motion(pred, tmp_path / "p.png")
    assert only_pred.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="at least 2 frames"):
        plot_motion(pred[:1], tmp_path / "x.png")


def test_cli_plot_with_audio(synth_root, tmp_path, capsys):
    d = synth_root / "test"
    clip = sorted(p.stem for p in d.glob("*_speaker1.npz"))[0][: -len("_speaker1")]
    from dualtalk_core.commands.plot import load_motion

    gt = load_motion(d / f"{clip}_speaker1.npz")
    np.save(tmp_path / "pred.npy", gt * 0.8)
    out = tmp_path / "fig.png"
    rc = run_command("plot", ["plot", str(tmp_path / "pred.npy"),
                              "--gt", str(d / f"{clip}_speaker1.npz"),
                              "--partner", str(d / f"{clip}_speaker2.npz"),
                              "--self-audio", str(d / f"{clip}_speaker1.wav"),
                              "--partner-audio", str(d / f"{clip}_speaker2.wav"),
                              "-o", str(out)])
    assert rc == 0 and str(out) in capsys.readouterr().out
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 20_000
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        run_command("plot", ["plot", str(tmp_path / "pred.npy"), "--gt",
                             str(tmp_path / "missing.npz"), "-o", str(out)])


def test_plot_real_sample(sample_dir, tmp_path):
    from dualtalk_core.commands.plot import load_audio, load_motion

    clip = "xkHwlcDSOjc_sub_video_109_000"
    gt = load_motion(sample_dir / f"{clip}_speaker1.npz")
    self_audio = load_audio(sample_dir / f"{clip}_speaker1.wav")
    partner_audio = load_audio(sample_dir / f"{clip}_speaker2.wav")
    turns = turns_from_audio(self_audio, len(gt))
    assert 0.1 < turns.mean() < 0.9          # a real conversation: both talking and listening
    out = plot_motion(np.roll(gt, 5, axis=0), tmp_path / "real.png", gt=gt,
                      self_audio=self_audio, partner_audio=partner_audio)
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 50_000
