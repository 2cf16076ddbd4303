"""``dualtalk fit-map``: a known random linear map is recovered from synthetic paired tracks,
the YAML loads with the nodes' map loader and reproduces the targets, and bad input stops the
command with the file's name and writes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from dualtalk_core import layout
from dualtalk_core.cli import main as dualtalk
from dualtalk_core.data.map_fit import fit_map, load_pair, pair_files

from data_helpers import rewrite_npz

N_ARKIT = len(layout.ARKIT61_NAMES)
TOL = 0.02
"""Recovery tolerance: every fitted gain within 2 % of the largest true gain (noise-free data,
ridge 1e-6), bias within 0.01."""


def _flame_tracks(rng, n_tracks=3, frames=400) -> list[np.ndarray]:
    """Real-scale FLAME-like motion: exp ~0.4, jaw/head ~0.03 rad, smooth over time."""
    from scipy.ndimage import gaussian_filter1d

    scale = np.r_[np.full(50, 0.4), np.full(6, 0.03)]
    return [gaussian_filter1d(rng.normal(0, 1, (frames, 56)), 2, axis=0) * 2.5 * scale
            for _ in range(n_tracks)]


def _write(root, name, flame, arkit):
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / f"{name}.npz", **layout.npz_fields_from_flame56(flame.astype(np.float32)))
    np.save(root / f"{name}.npy", arkit.astype(np.float32))


def _flame_to_arkit_data(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    flames = _flame_tracks(rng)
    sd = np.concatenate(flames).std(0)
    # each target: 4 random sources, gains sized so one source std moves it by ~0.1
    true = np.zeros((52, 56))
    for k in range(52):
        src = rng.choice(56, 4, replace=False)
        true[k, src] = rng.uniform(0.05, 0.15, 4) * rng.choice([-1, 1], 4) / sd[src]
    bias = rng.uniform(0.05, 0.3, 52)
    for i, f in enumerate(flames):
        arkit = np.zeros((len(f), N_ARKIT))
        arkit[:, :52] = np.clip(f @ true.T + bias, 0.0, 1.0)   # ARKit weights live in [0, 1]
        arkit[:, 52:] = rng.normal(0, 0.05, (len(f), 9))        # head / eyes: not targets
        _write(tmp_path / "data", f"clip{i}_speaker1", f, arkit)
    return true, bias


def test_flame_to_arkit_recovers_a_known_map_and_writes_a_loadable_yaml(tmp_path):
    from dualtalk_ros.rig_mapping import load_linear_map

    true, bias = _flame_to_arkit_data(tmp_path)
    tracks = [load_pair(*p) for p in pair_files([tmp_path / "data"])]
    clipped = np.mean([(t.arkit[:, :52] <= 0).mean() for t in tracks])
    assert clipped > 0.01                      # some targets do sit at the clamp
    fitted = fit_map(tracks, "flame-to-arkit", ridge=1e-6)
    assert np.abs(fitted.matrix - true).max() < TOL * np.abs(true).max()
    assert np.abs(fitted.bias - bias).max() < 0.01
    assert fitted.rmse.max() < 0.005 and np.nanmin(fitted.r2) > 0.99

    out = tmp_path / "map.yaml"
    assert dualtalk(["fit-map", "flame-to-arkit", str(tmp_path / "data"), "-o", str(out),
                     "--ridge", "1e-6"]) == 0
    body = out.read_text()
    assert body.startswith("# FITTED map flame56 -> arkit52")
    assert "#   JawOpen: rmse " in body and "clamp: [0.0, 1.0]" in body
    loaded = load_linear_map(out)
    assert (loaded.source_rig, loaded.target_rig, loaded.clamp) == ("flame56", "arkit52",
                                                                    (0.0, 1.0))
    assert np.abs(loaded.matrix - true).max() < TOL * np.abs(true).max()
    y = loaded.apply(tracks[0].flame.astype(np.float32))
    assert np.abs(y - tracks[0].arkit[:, :52]).max() < 0.02


def test_arkit_to_flame_recovers_a_known_map_with_noise_and_smoothing(tmp_path):
    from dualtalk_ros.rig_mapping import load_linear_map

    rng = np.random.default_rng(1)
    true = rng.normal(0, 0.5, (56, N_ARKIT)) * (rng.random((56, N_ARKIT)) < 0.1)
    bias = rng.normal(0, 0.1, 56)
    for i in range(3):
        from scipy.ndimage import gaussian_filter1d

        arkit = np.clip(gaussian_filter1d(rng.random((300, N_ARKIT)), 1.5, axis=0) * 2 - 0.5,
                        0, 1)
        flame = arkit @ true.T + bias + rng.normal(0, 1e-3, (300, 56))   # tracker noise
        _write(tmp_path / "data", f"c{i}_speaker2", flame, arkit)
    tracks = [load_pair(*p) for p in pair_files([tmp_path / "data"])]
    fitted = fit_map(tracks, "arkit-to-flame", ridge=1e-6)
    assert np.abs(fitted.matrix - true).max() < TOL * np.abs(true).max()
    assert fitted.rmse.max() < 3e-3
    smoothed = fit_map(tracks, "arkit-to-flame", ridge=1e-6, smooth_frames=1.0)
    assert np.abs(smoothed.matrix - true).max() < 5 * TOL * np.abs(true).max()
    out = tmp_path / "inv.yaml"
    assert dualtalk(["fit-map", "arkit-to-flame", str(tmp_path / "data"), "-o", str(out),
                     "--prune", "1e-4"]) == 0
    loaded = load_linear_map(out)
    assert loaded.clamp is None and loaded.source_rig == "arkit61"
    assert np.abs(loaded.apply(tracks[1].arkit.astype(np.float32)) - tracks[1].flame).max() < 0.05


@pytest.mark.parametrize("case, message", [
    ("no_npy", "no ARKit track beside it"),
    ("npy_shape", "expected an ARKit [T, 61] array"),
    ("no_exp", "missing field 'exp'"),
    ("no_pose", "missing field 'pose'"),
    ("nan", "NaN/inf in 1 frame(s), first at frame 5"),
    ("short", "99 frames, need at least 100"),
    ("lengths", "150 frames but"),
])
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, capsys, case, message):
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    for name in ("a_speaker1", "b_speaker1"):
        _write(d, name, rng.normal(0, 0.3, (150, 56)), rng.random((150, N_ARKIT)))
    bad_npz, bad_npy = d / "b_speaker1.npz", d / "b_speaker1.npy"
    bad = bad_npz
    if case == "no_npy":
        bad_npy.unlink()
    elif case == "npy_shape":
        np.save(bad_npy, rng.random((150, 52)))
        bad = bad_npy
    elif case in ("no_exp", "no_pose"):
        rewrite_npz(bad_npz, **{case[3:]: None})
    elif case == "nan":
        arkit = rng.random((150, N_ARKIT))
        arkit[5, 0] = np.nan
        np.save(bad_npy, arkit)
        bad = bad_npy
    elif case == "short":
        _write(d, "b_speaker1", rng.normal(0, 0.3, (99, 56)), rng.random((99, N_ARKIT)))
    else:
        np.save(bad_npy, rng.random((140, N_ARKIT)))
    out = tmp_path / "map.yaml"
    assert dualtalk(["fit-map", "flame-to-arkit", str(d), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err, err
    assert not out.exists()
