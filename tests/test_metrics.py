"""The paper's metrics against hand-computed values and invariants."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dualtalk_core.evaluation import metrics as M
from dualtalk_core.layout import DIM, EXP, JAW, POSE


def _motion(rng, t=120, scale=1.0):
    return (scale * rng.normal(size=(t, DIM))).astype(np.float32)


# ---------------------------------------------------------------- FD

def test_fd_of_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 50))
    assert abs(M.fd(x, x)) < 1e-6
    assert abs(M.fd(x[:, :3], x[:, :3].copy())) < 1e-6


def test_fd_one_dimensional_closed_form():
    # 1-D Gaussians: FD = (m1 - m2)^2 + (s1 - s2)^2 with the sample (ddof=1) statistics
    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 3.0, size=(500, 1))
    b = rng.normal(-1.0, 0.5, size=(400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert M.fd(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([4.0, 1.0, 9.0]), np.array([1.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # 5 + 1 + 4
    assert expected == 10.0
    assert M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(10.0)


def test_fd_large_samples_approach_population_value():
    # N(0, 4I) vs N(1, I) in 3-D: |dmu|^2 = 3, sum (2 - 1)^2 = 3 -> FD = 6
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 2.0, size=(40_000, 3))
    b = rng.normal(1.0, 1.0, size=(40_000, 3))
    assert M.fd(a, b) == pytest.approx(6.0, abs=0.15)


def test_fd_singular_covariance_is_finite_and_correct():
    # a constant set has a zero covariance: sqrtm(0 @ S) = 0, so FD = |dmu|^2 + Tr(S)
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(300, 3))
    const = np.tile([[0.5, -0.5, 1.0]], (300, 1))
    expected = np.sum((gt.mean(0) - const[0]) ** 2) + np.trace(np.cov(gt, rowvar=False))
    assert M.fd(const, gt) == pytest.approx(expected, rel=1e-6)


def test_fd_raises_on_large_imaginary_part():
    # not covariances: the product has negative eigenvalues -> sqrtm is imaginary
    with pytest.raises(ValueError, match="imaginary"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


def test_paired_fd_nonnegative_and_zero_for_exact_prediction():
    rng = np.random.default_rng(4)
    for _ in range(5):
        gt, pred, partner = (rng.normal(size=(80, 3)) for _ in range(3))
        assert M.paired_fd(pred, gt, partner) > -1e-9
    assert abs(M.paired_fd(gt, gt, partner)) < 1e-6


# ---------------------------------------------------------------- MSE / SID / rPCC

def test_mse_hand_value():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[0.0, 2.0], [3.0, 6.0]])
    assert M.mse(pred, gt) == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_sid_single_cluster_is_zero():
    rng = np.random.default_rng(5)
    pred = rng.normal(size=(100, 3))
    gt = np.tile(pred[:1], (50, 1))          # every gt frame lands in the same cluster
    assert abs(M.sid(pred, gt, 10)) < 1e-5


def test_sid_uniform_clusters_is_log2_k():
    rng = np.random.default_rng(6)
    centers = np.eye(4) * 100
    pts = np.concatenate([c + rng.normal(size=(25, 4)) for c in centers])
    expected = -4 * 0.25 * math.log2(0.25 + 1e-6)
    assert M.sid(pts, pts[::-1].copy(), 4) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(2.0, abs=1e-5)


def test_sid_fits_on_prediction_as_released():
    # pred: 4 blobs with 25 frames each; gt: the same blobs with 70/10/10/10 frames.
    rng = np.random.default_rng(7)
    centers = np.eye(4) * 100
    pred = np.concatenate([c + rng.normal(size=(25, 4)) for c in centers])
    gt = np.concatenate([c + rng.normal(size=(n, 4)) for c, n in zip(centers, (70, 10, 10, 10))])
    h = np.array([0.7, 0.1, 0.1, 0.1])
    released = -np.sum(h * np.log2(h + 1e-6))     # gt frames counted in pred's clusters
    assert M.sid(pred, gt, 4) == pytest.approx(released, abs=1e-9)
    # fitted on gt, the prediction's frames are counted: uniform -> 2 bits
    assert M.sid(pred, gt, 4, fit_on="gt") == pytest.approx(2.0, abs=1e-5)
    with pytest.raises(ValueError, match="fit_on"):
        M.sid(pred, gt, 4, fit_on="both")


def test_sid_with_fewer_frames_than_clusters_uses_frame_count():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(5, 50))
    assert np.isfinite(M.sid(x, x, 40))


def test_rpcc_cases():
    rng = np.random.default_rng(9)
    gt, partner, pred = (rng.normal(size=(60, 3)) for _ in range(3))
    c = np.corrcoef(gt.ravel(), partner.ravel())[0, 1]
    assert M.rpcc(gt, gt, partner) == 0.0
    # |a - b| is symmetric in pred <-> gt
    assert M.rpcc(pred, gt, partner) == pytest.approx(M.rpcc(gt, pred, partner))
    assert M.rpcc(partner, gt, partner) == pytest.approx(abs(c - 1.0))
    assert M.rpcc(-partner, gt, partner) == pytest.approx(abs(c + 1.0))
    assert M.rpcc(2 * partner + 3, gt, partner) == pytest.approx(abs(c - 1.0))
    # a constant prediction has no correlation (0), not NaN
    assert M.rpcc(np.ones_like(gt), gt, partner) == pytest.approx(abs(c))


# ---------------------------------------------------------------- clip level, scale

def test_clip_metrics_structure_and_groups():
    rng = np.random.default_rng(10)
    gt, partner = _motion(rng), _motion(rng)
    pred = gt + 0.1 * _motion(rng)
    m = M.clip_metrics(pred, gt, partner)
    assert list(m) == ["EXP", "JAW", "POSE"]
    for g, sl in (("EXP", EXP), ("JAW", JAW), ("POSE", POSE)):
        assert set(m[g]) == set(M.METRICS)
        assert m[g]["MSE"] == pytest.approx(np.mean((pred[:, sl] - gt[:, sl]) ** 2), rel=1e-6)
        assert m[g]["FD"] == pytest.approx(M.fd(pred[:, sl], gt[:, sl]))
        assert m[g]["P-FD"] >= -1e-9
    exact = M.clip_metrics(gt, gt, partner)
    for g in exact:
        assert abs(exact[g]["FD"]) < 1e-6 and exact[g]["MSE"] == 0 and exact[g]["rPCC"] == 0


def test_clip_metrics_trims_to_shortest():
    rng = np.random.default_rng(11)
    gt, partner, pred = _motion(rng, 100), _motion(rng, 97), _motion(rng, 110)
    full = M.clip_metrics(pred, gt, partner)
    trimmed = M.clip_metrics(pred[:97], gt[:97], partner)
    assert full == trimmed


def test_clip_metrics_rejects_bad_input():
    rng = np.random.default_rng(12)
    gt = _motion(rng, 20)
    with pytest.raises(ValueError, match=r"prediction: expected \[T, 56\]"):
        M.clip_metrics(gt[:, :50], gt, gt)
    bad = gt.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="ground truth: 1 non-finite"):
        M.clip_metrics(gt, bad, gt)
    with pytest.raises(ValueError, match="at least 2"):
        M.clip_metrics(gt[:1], gt, gt)


def test_paper_scale_table_and_applied_once():
    assert M.PAPER_SCALE["FD"] == {"EXP": 1, "JAW": 1e3, "POSE": 1e2}
    assert M.PAPER_SCALE["P-FD"] == M.PAPER_SCALE["FD"]
    assert M.PAPER_SCALE["MSE"] == {"EXP": 10, "JAW": 1e3, "POSE": 1e2}
    assert M.PAPER_SCALE["SID"] == {"EXP": 1, "JAW": 1, "POSE": 1}
    assert M.PAPER_SCALE["rPCC"] == {"EXP": 1e2, "JAW": 10, "POSE": 10}
    rng = np.random.default_rng(13)
    rows = [M.clip_metrics(_motion(rng, 60), _motion(rng, 60), _motion(rng, 60))
            for _ in range(2)]
    raw = M.aggregate_metrics(rows)
    scaled = M.scale_metrics(raw)
    for m in M.METRICS:
        for g in M.GROUP_NAMES:
            assert raw[m][g] == pytest.approx((rows[0][g][m] + rows[1][g][m]) / 2)
            assert scaled[m][g] == pytest.approx(raw[m][g] * M.PAPER_SCALE[m][g])


def test_aggregate_leaves_out_non_finite_values():
    row = {g: {m: 1.0 for m in M.METRICS} for g in M.GROUP_NAMES}
    bad = {g: {m: (float("nan") if m == "FD" else 3.0) for m in M.METRICS}
           for g in M.GROUP_NAMES}
    agg = M.aggregate_metrics([row, bad])
    assert agg["FD"]["EXP"] == 1.0 and agg["MSE"]["JAW"] == 2.0
    with pytest.raises(ValueError):
        M.aggregate_metrics([])


def test_paper_results_are_published_numbers():
    paper = M.PAPER_RESULTS["DualTalk (paper)"]
    assert paper["FD"] == {"EXP": 11.14, "JAW": 1.90, "POSE": 3.83}
    assert paper["rPCC"]["POSE"] == 2.38
    assert M.PAPER_RESULTS["TIMAR 2025 (8 s context)"]["FD"]["EXP"] == 8.97


def test_jaw_speech_correlation_sees_lip_sync():
    from dualtalk_core.signals import speech_energy_per_frame
    from dualtalk_core.layout import SAMPLES_PER_FRAME

    rng = np.random.default_rng(14)
    t = 100
    env = np.clip(np.sin(np.linspace(0, 12, t)), 0, None) + 0.05
    audio = (np.repeat(env, SAMPLES_PER_FRAME) * rng.normal(size=t * SAMPLES_PER_FRAME))
    audio = audio.astype(np.float32)
    motion = np.zeros((t, DIM), np.float32)
    motion[:, JAW.start] = speech_energy_per_frame(audio, t)
    assert M.jaw_speech_correlation(motion, audio) == pytest.approx(1.0, abs=1e-6)
    assert M.jaw_speech_correlation(np.zeros_like(motion), audio) == 0.0


def test_real_clip_numerics(sample_dir):
    """Real EMOCA covariances are ill-conditioned; FD/P-FD must stay finite and >= 0."""
    from dualtalk_core.layout import flame56_from_npz

    with np.load(sample_dir / "xkHwlcDSOjc_sub_video_109_000_speaker1.npz") as npz:
        gt = flame56_from_npz(npz)[:300]
    shifted = np.roll(gt, 5, axis=0)      # a "prediction" 200 ms late
    partner = gt[::-1].copy()             # the partner's motion is not in the sample
    exact = M.clip_metrics(gt, gt, partner)
    late = M.clip_metrics(shifted, gt, partner)
    for g in M.GROUP_NAMES:
        assert abs(exact[g]["FD"]) < 1e-5 and abs(exact[g]["P-FD"]) < 1e-5
        assert late[g]["MSE"] > 0 and late[g]["P-FD"] > -1e-9
        assert 0 <= late[g]["SID"] <= math.log2(M.SID_CLUSTERS[g]) + 1e-6
        # the same frames in another order: the per-clip Gaussian barely changes
        assert late[g]["FD"] < late[g]["P-FD"] + 1e-9
