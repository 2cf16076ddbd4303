"""Offline inference: audio loading (resample/downmix with warnings), the released length
handling (logged), and ``dualtalk infer`` on the real shared sample clip."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from dualtalk_core.media.audio_io import load_wav, normalize_waveform
from dualtalk_core.model.checkpoint import load_checkpoint
from dualtalk_core.cli import main as dualtalk
from dualtalk_core.model.inference import fit_motion, load_partner_motion, predict_clip

CLIP = "xkHwlcDSOjc_sub_video_109_000"


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)[0]


def test_load_wav_resamples_and_downmixes_with_warning(tmp_path, caplog):
    sr = 44100
    t = np.arange(sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "st.wav", np.stack([tone, tone * 0.5], axis=1), sr, subtype="PCM_16")
    with caplog.at_level(logging.WARNING):
        audio = load_wav(tmp_path / "st.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1
    assert "2 channels" in caplog.text and "44100" in caplog.text
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 3   # the tone survives
    assert abs(np.abs(audio).max() - 0.375) < 0.01                   # mean of both channels


def test_load_wav_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_wav(tmp_path / "none.wav")
    (tmp_path / "bad.wav").write_text("nope")
    with pytest.raises(ValueError, match="bad.wav"):
        load_wav(tmp_path / "bad.wav")


def test_normalize_waveform():
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 4 + 2
    y = normalize_waveform(x)
    assert y.dtype == np.float32 and abs(y.mean()) < 1e-5 and abs(y.std() - 1) < 1e-4


def test_length_handling_is_logged(tiny_model, caplog):
    rng = np.random.default_rng(0)
    self_audio = rng.standard_normal(16000).astype(np.float32) * 0.1      # T = 25
    partner_audio = rng.standard_normal(15000).astype(np.float32) * 0.1
    motion = rng.standard_normal((20, 56)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="dualtalk_core.model.inference"):
        pred = predict_clip(tiny_model, self_audio, partner_audio, motion)
    assert pred.shape == (25, 56) and pred.dtype == np.float32
    assert "partner audio: 15000 samples, zero-padded to 16000" in caplog.text
    assert "partner motion: 20 frames, padded (last frame repeated) to 25" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dualtalk_core.model.inference"):
        pred = predict_clip(tiny_model, self_audio, partner_audio,
                            rng.standard_normal((30, 56)), length_from="motion")
    assert pred.shape == (30, 56)
    assert "self audio: 16000 samples, zero-padded to 19200" in caplog.text


def test_fit_motion_repeats_last_frame():
    m = np.arange(3 * 56, dtype=np.float32).reshape(3, 56)
    out = fit_motion(m, 5)
    assert out.shape == (5, 56) and (out[3] == m[2]).all() and (out[4] == m[2]).all()
    assert (fit_motion(m, 2) == m[:2]).all()


def test_predict_clip_rejects_bad_inputs(tiny_model):
    audio = np.zeros(16000, dtype=np.float32)
    with pytest.raises(ValueError, match="partner_motion"):
        predict_clip(tiny_model, audio, audio, np.zeros((25, 50)))
    with pytest.raises(ValueError, match="NaN"):
        predict_clip(tiny_model, audio, audio, np.full((25, 56), np.nan))
    with pytest.raises(ValueError, match="length_from"):
        predict_clip(tiny_model, audio, audio, np.zeros((25, 56)), length_from="video")


def test_load_partner_motion(tmp_path, sample_dir):
    m = load_partner_motion(sample_dir / f"{CLIP}_speaker1.npz")
    assert m.shape == (750, 56) and m.dtype == np.float32
    np.save(tmp_path / "m.npy", m[:10])
    assert load_partner_motion(tmp_path / "m.npy").shape == (10, 56)
    np.save(tmp_path / "bad.npy", m[:, :50])
    with pytest.raises(ValueError, match="bad.npy"):
        load_partner_motion(tmp_path / "bad.npy")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match=".npz"):
        load_partner_motion(tmp_path / "m.txt")


def test_infer_cli_on_shared_sample(tiny_checkpoint, sample_dir, tmp_path, capsys):
    out = tmp_path / "pred.npy"
    rc = dualtalk(["infer", "--checkpoint", str(tiny_checkpoint),
                   "--self-audio", str(sample_dir / f"{CLIP}_speaker2.wav"),
                   "--partner-audio", str(sample_dir / f"{CLIP}_speaker1.wav"),
                   "--partner-motion", str(sample_dir / f"{CLIP}_speaker1.npz"), "-o", str(out)])
    assert rc == 0
    pred = np.load(out)
    assert pred.shape == (750, 56) and pred.dtype == np.float32 and np.isfinite(pred).all()
    assert pred.std(axis=0).max() > 0                      # not a constant output
    assert "[750, 56]" in capsys.readouterr().out


def test_infer_cli_errors(tiny_checkpoint, tmp_path, capsys):
    rc = dualtalk(["infer", "--checkpoint", str(tiny_checkpoint), "--self-audio",
                   str(tmp_path / "missing.wav"), "--partner-audio", str(tmp_path / "x.wav"),
                   "--partner-motion", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o.npy")])
    assert rc == 2 and "missing.wav" in capsys.readouterr().err


def test_presets_cli_lists_parameter_counts(capsys):
    assert dualtalk(["presets", "tiny", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "| tiny | wav2vec2 (2 x 32) | 32 |" in table and "| cpu | logmel |" in table
    assert dualtalk(["presets", "--yaml", "cpu"]) == 0
    assert "audio_frontend: logmel" in capsys.readouterr().out
