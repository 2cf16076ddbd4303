"""The Table 4 baselines: shapes, determinism, retrieval correctness, sensible scores."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dualtalk_core.evaluation import baselines as B
from dualtalk_core.evaluation import metrics as M
from dualtalk_core.data.dataset import load_split
from dualtalk_core.evaluation.evaluate import evaluate_predictions, targets_of
from dualtalk_core.layout import DIM
from metrics_helpers import run_command, synth_root  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def bank_and_sides(synth_root):
    train, _ = load_split(synth_root, "train")
    test, _ = load_split(synth_root, "test")
    return B.BaselineBank.from_sides(train, seed=3), train, test


def test_every_baseline_gives_t_by_56(bank_and_sides):
    bank, _, test = bank_and_sides
    for key in B.BASELINES:
        preds = B.run_baseline(key, bank, test)
        assert set(preds) == {s.name for s in test}
        for s in test:
            p = preds[s.name]
            assert p.shape == (s.num_frames, DIM) and p.dtype == np.float32
            assert np.all(np.isfinite(p))


def test_random_frames_seeded_per_side(bank_and_sides):
    bank, _, test = bank_and_sides
    a = B.random_frames(bank, test[0])
    assert np.array_equal(a, B.random_frames(bank, test[0]))        # deterministic
    assert not np.array_equal(a, B.random_frames(bank, test[1], len(a)))  # differs per side
    rows = {tuple(r) for r in bank.frames[:, :4].round(6)}           # drawn from training frames
    assert all(tuple(r) in rows for r in a[:, :4].round(6))


def test_mean_and_copy_partner(bank_and_sides):
    bank, train, test = bank_and_sides
    mean = B.mean_motion(bank, test[0])
    all_frames = np.concatenate([s.target_motion for s in train])
    np.testing.assert_allclose(mean, np.tile(all_frames.mean(0), (len(mean), 1)), atol=1e-6)
    np.testing.assert_array_equal(B.copy_partner(None, test[0]), test[0].partner_motion)
    longer = B.copy_partner(None, test[0], test[0].num_frames + 5)
    np.testing.assert_array_equal(longer[-6:], np.repeat(test[0].partner_motion[-1:], 6, 0))


def test_retrieval_finds_the_training_side_itself(bank_and_sides):
    # a training clip-side is its own nearest neighbour (audio and partner motion alike)
    bank, train, _ = bank_and_sides
    for side in train[:3]:
        for fn in (B.nearest_audio, B.nearest_motion):
            np.testing.assert_array_equal(fn(bank, side), side.target_motion)


def test_fit_to_length_mirror_tiles():
    m = np.arange(3, dtype=np.float32)[:, None] * np.ones((1, DIM), np.float32)
    out = B.fit_to_length(m, 8)
    assert out[:, 0].tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    assert B.fit_to_length(m, 2)[:, 0].tolist() == [0, 1]


def test_parse_baselines():
    assert B.parse_baselines("all") == list(B.BASELINES)
    assert B.parse_baselines("none") == []
    assert B.parse_baselines("copy_partner, mean") == ["copy-partner", "mean"]
    with pytest.raises(ValueError, match="unknown baseline"):
        B.parse_baselines("mean,oracle")


def test_baseline_scores_differ_sensibly(bank_and_sides):
    bank, _, test = bank_and_sides
    test = test[:4]
    gts, partners = targets_of(test)
    res = {k: evaluate_predictions(B.run_baseline(k, bank, test), gts, partners, method=k)
           for k in ("random", "mean", "copy-partner")}
    # copying the partner gives corr(pred, partner) = 1, so rPCC = mean |corr(gt, partner) - 1|
    expected = np.mean([1 - M.pearson_flat(gts[n][:, :50], partners[n][:, :50]) for n in gts])
    assert res["copy-partner"].mean["rPCC"]["EXP"] == pytest.approx(expected, rel=1e-6)
    # a constant prediction has (almost) no diversity: its k-means centres coincide up to
    # float32 rounding, so gt frames fall in very few clusters; random frames spread out
    for g in M.GROUP_NAMES:
        assert res["mean"].mean["SID"][g] < res["random"].mean["SID"][g] - 1.0
    # i.i.d. random frames add the training variance on top of the mean's error
    assert res["random"].mean["MSE"]["EXP"] > res["mean"].mean["MSE"]["EXP"]


def test_cli_all_baselines(synth_root, tmp_path):
    out = tmp_path / "r.json"
    assert run_command("evaluate", ["evaluate", "--data", str(synth_root), "--split", "test",
                                    "--baselines", "all", "--json", str(out),
                                    "--max-clips", "1"]) == 0
    data = json.loads(out.read_text())
    assert list(data["methods"]) == [B.BASELINES[k][0] for k in B.BASELINES]
    assert all(m["n_clips"] == 2 for m in data["methods"].values())
