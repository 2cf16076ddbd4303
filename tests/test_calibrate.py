"""``dualtalk data calibrate``: face statistics measured on real tracks, the packaged numbers,
a round trip through synthesis, and bad input (one clear error, nothing written)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dualtalk_core.data import calibrate as C
from dualtalk_core.data.face_stats import (FaceStats, default_stats_path, load_face_stats,
                                           resolve_face_stats)
from dualtalk_core.data.synth import synthesize_dataset

from conftest import SAMPLE_CLIP
from data_helpers import rewrite_npz, run_module_main


def _close(a, b, rtol=1e-4, atol=1e-6) -> bool:
    return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol))


def test_packaged_statistics_are_the_sample_clips(sample_dir, tmp_path):
    """The repository's numbers are reproducible from the real clip with the command."""
    from dualtalk_core.commands import data as data_cmd

    out = tmp_path / "stats.json"
    code, text = run_module_main(data_cmd, ["calibrate", str(sample_dir / f"{SAMPLE_CLIP}"
                                                              "_speaker1.npz"), "-o", str(out)])
    assert code == 0 and "blink-like events" in text and "ASSUMED" in text
    got, packaged = load_face_stats(out), load_face_stats(default_stats_path())
    for name, value in packaged.to_json_dict().items():
        numeric = isinstance(value, float) or (isinstance(value, list) and value
                                               and isinstance(value[0], float))
        if numeric:
            assert _close(getattr(got, name), value), name
    # what the issue measured on this clip
    assert got.speakers == 1 and got.frames == 750 and "own audio" in got.speaking_source
    assert 0.16 < min(got.exp_std[:10]) and max(got.exp_std[:10]) < 0.95
    assert abs(got.jaw_std - 0.031) < 0.002
    assert all(0.02 < s < 0.035 for s in got.head_std)
    assert got.blink_measured and got.smile_source.startswith("measured")


def test_round_trip_synthesis_then_calibration_recovers_the_statistics(tmp_path):
    """Faces drawn from known statistics are measured back: spreads, jaw-coupled directions,
    identity spread (measured here: every clip-side is its own speaker)."""
    truth = resolve_face_stats("real")
    synthesize_dataset(tmp_path, 8, seed=2, splits="train=1", voice="procedural",
                       min_rounds=3, max_rounds=6, min_seconds=25, max_seconds=30)
    files = sorted((tmp_path / "train").glob("*.npz"))
    got = C.calibrate(files)
    assert got.speakers == 16 and "measured across 16 speakers" in got.identity_method
    ratio = np.asarray(got.exp_std) / np.asarray(truth.exp_std)
    assert 0.7 < np.median(ratio) < 1.3, ratio
    beta_r = np.corrcoef(got.jaw_exp_beta, truth.jaw_exp_beta)[0, 1]
    assert beta_r > 0.8, beta_r
    assert 0.5 < np.median(np.asarray(got.identity_std) / truth.identity_std) < 2.0
    assert got.jaw_speaking_mean - got.jaw_silent_mean > 0.5 * (truth.jaw_speaking_mean
                                                                - truth.jaw_silent_mean)
    assert np.corrcoef(got.speaking_shift, truth.speaking_shift)[0, 1] > 0.5
    assert got.smile_source.startswith("measured")
    assert np.corrcoef(got.smile_direction, truth.smile_direction)[0, 1] > 0.5
    # without audio the speaking frames come from the jaw, and the file says so
    assert "no audio" in C.calibrate(files[:2], use_audio=False).speaking_source


def _good_track(path, frames=150, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, exp=rng.normal(0, 0.3, (frames, 50)).astype(np.float32),
             pose=rng.normal(0, 0.02, (frames, 6)).astype(np.float32))
    return path


@pytest.mark.parametrize("case, message", [
    ("no_exp", "missing field 'exp'"),
    ("no_pose", "missing field 'pose'"),
    ("nan", "NaN/inf in 1 frame(s) of exp/pose, first at frame 7"),
    ("short", "99 frames, need at least 100"),
    ("not_npz", "unreadable as .npz"),
])
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, capsys, case, message):
    from dualtalk_core.commands import data as data_cmd

    good = _good_track(tmp_path / "a_speaker1.npz")
    bad = _good_track(tmp_path / "b_speaker1.npz", seed=1)
    if case == "no_exp":
        rewrite_npz(bad, exp=None)
    elif case == "no_pose":
        rewrite_npz(bad, pose=None)
    elif case == "nan":
        with np.load(bad) as z:
            exp = z["exp"].copy()
        exp[7, 3] = np.nan
        rewrite_npz(bad, exp=exp)
    elif case == "short":
        _good_track(bad, frames=99)
    else:
        bad.write_bytes(b"not a zip")
    out = tmp_path / "stats.json"
    code, _ = run_module_main(data_cmd, ["calibrate", str(good), str(bad), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and message in err, err
    assert not out.exists()


def test_stats_file_is_validated_on_load(tmp_path):
    doc = json.loads(default_stats_path().read_text())
    doc["exp_std"] = doc["exp_std"][:10]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"bad.json: field 'exp_std' should be 50 finite"):
        load_face_stats(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a face statistics file"):
        load_face_stats(path)
    assert resolve_face_stats("legacy") is None
    assert isinstance(resolve_face_stats(None), FaceStats)
