"""Distillation (``dualtalk distill``): the teacher's two-pass outputs are cached once per clip
under its weights' hash (reused, never for another teacher, resumable), a student really trains
toward them, ground truth mixes in with ``--gt-weight``, and teachers of another rig or frame
rate are refused.  Small random configs, a tiny synthetic data set, real training steps."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dualtalk_core import cli, layout
from dualtalk_core.data.dataset import load_split
from dualtalk_core.model.checkpoint import load_checkpoint, save_checkpoint
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.model.inference import predict_clip
from dualtalk_core.training import teacher_cache as tc
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.training.distill import (DistillWindowDataset, distill, distill_loss,
                                            distill_sides, student_config)
from dualtalk_core.training.losses import LossWeights, dualtalk_loss

from data_helpers import make_synth

SMALL = dict(n_mels=20, frontend_hidden=16, frontend_layers=1, d_model=16, interaction_layers=1,
             interaction_ffn=32, decoder_ffn=32)
STUDENT = dict(model="live", model_overrides=SMALL, lr=3e-3, batch_size=4, window=50, stride=25,
               context_frames=10, epochs=50, val_split="test", progress=False, device="cpu",
               num_threads=1, seed=0, validate_at_start=True, checkpoint_every_epochs=100)


def _teacher(path, seed: int, **changes):
    torch.manual_seed(seed)
    return save_checkpoint(path, DualTalk(get_preset("cpu").replace(**SMALL, **changes)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_data")
    make_synth(root, pairs=3, seed=4, splits="train=0.67,test=0.33", max_seconds=7,
               max_rounds=1)
    return root


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    d = tmp_path_factory.mktemp("teachers")
    return _teacher(d / "a.pt", 1), _teacher(d / "b.pt", 2)


def _cache(teacher, data, cache, **cfg):
    return distill(teacher, data, cache / "out", TrainConfig(**(STUDENT | cfg)), cache=cache,
                   cache_only=True).cache


def _stamps(directory):
    return {p.name: p.stat().st_mtime_ns for p in directory.rglob("*.npz")}


def test_cache_is_written_once_and_reused(data, teachers, tmp_path):
    first = _cache(teachers[0], data, tmp_path)
    assert (first.computed, first.reused) == (3, 0)          # 2 train clips + 1 test clip
    manifest = json.loads((first.directory / "manifest.json").read_text())
    model, _ = load_checkpoint(teachers[0])
    assert manifest["teacher_hash"] == tc.teacher_hash(model)
    assert first.directory.name == "teacher-" + manifest["teacher_hash"][:16]
    stamps = _stamps(first.directory)
    assert len(stamps) == 3
    again = _cache(teachers[0], data, tmp_path)
    assert (again.computed, again.reused) == (0, 3)           # nothing computed
    assert _stamps(first.directory) == stamps
    # the cached speaker1 is pass 2: the teacher again, with its pass-1 speaker2 as partner
    side1 = next(s for s in load_split(data, "test")[0] if s.speaker == 1)
    a1, a2 = side1.self_audio, side1.partner_audio
    zeros = np.zeros((side1.num_frames, layout.DIM), np.float32)
    partner = predict_clip(model, a2, a1, zeros)
    expected = predict_clip(model, a1, a2, partner)
    cached = tc.read_clip(tc.clip_path(first.directory, "test", side1.clip))
    np.testing.assert_allclose(cached[1], expected, atol=1e-5)
    assert not np.allclose(cached[1], predict_clip(model, a1, a2, zeros), atol=1e-3)


def test_another_teacher_is_never_reused(data, teachers, tmp_path):
    mine = _cache(teachers[0], data, tmp_path)
    other = _cache(teachers[1], data, tmp_path)
    assert other.directory != mine.directory and (other.computed, other.reused) == (3, 0)
    hash_a = json.loads((mine.directory / "manifest.json").read_text())["teacher_hash"]
    with pytest.raises(ValueError, match="another teacher") as err:    # --cache at A's folder
        _cache(teachers[1], data, mine.directory)
    assert hash_a[:16] in str(err.value)
    assert other.directory.name[len("teacher-"):] in str(err.value)
    assert _cache(teachers[0], data, mine.directory).reused == 3      # its own folder: fine


def test_resume_after_a_partial_cache(data, teachers, tmp_path):
    partial = _cache(teachers[0], data, tmp_path, max_train_clips=1)
    assert partial.computed == 2                              # 1 train clip + the test clip
    full = _cache(teachers[0], data, tmp_path)
    assert (full.computed, full.reused) == (1, 2)
    victim = sorted((full.directory / "train").glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])             # a damaged file is recomputed
    assert _cache(teachers[0], data, tmp_path).computed == 1
    assert tc.read_clip(victim) is not None


def test_student_moves_toward_the_teacher(data, teachers, tmp_path):
    result = distill(teachers[0], data, tmp_path / "run",
                     TrainConfig(**(STUDENT | {"max_steps": 12})), cache=tmp_path / "cache")
    vals = [r["loss"] for r in result.train.history if r["kind"] == "val"]
    assert result.train.steps == 12 and len(vals) >= 2
    assert vals[-1] < 0.8 * vals[0], vals                     # against the teacher's outputs
    student, payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert type(student).__name__ == "LiveDualTalk" and payload["preset"] == "live"
    record = json.loads((tmp_path / "run" / "distill.json").read_text())
    assert record["teacher_hash"] == result.teacher_hash and record["cache_computed"] == 3


def test_gt_weight_mixes_the_loss():
    g = torch.Generator().manual_seed(0)
    pred, teacher, gt = (torch.randn(2, 6, layout.DIM, generator=g) for _ in range(3))
    batch = {"target_motion": teacher, "gt_motion": gt, "mask": torch.ones(2, 6, dtype=bool),
             "has_gt": torch.tensor([True, True])}
    w = LossWeights()
    plain = dualtalk_loss(pred, teacher, batch["mask"], w)[0]
    to_gt = dualtalk_loss(pred, gt, batch["mask"], w)[0]
    assert torch.isclose(distill_loss(pred, batch, w, 0.0)[0], plain)
    assert torch.isclose(distill_loss(pred, batch, w, 1.0)[0], to_gt)
    mixed, parts = distill_loss(pred, batch, w, 0.3)
    assert torch.isclose(mixed, 0.7 * plain + 0.3 * to_gt, rtol=1e-5)
    assert parts["loss"] == pytest.approx(float(mixed), rel=1e-5)
    batch["has_gt"] = torch.tensor([True, False])            # row 1 has no ground truth
    exp = distill_loss(pred, batch, w, 0.3)[1]["exp"]
    e = lambda a, b: float((a - b)[..., layout.EXP].pow(2).mean())      # noqa: E731
    want = (0.7 * e(pred[0], teacher[0]) + 0.3 * e(pred[0], gt[0]) + e(pred[1], teacher[1])) / 2
    assert exp == pytest.approx(want, rel=1e-5)


def test_items_carry_ground_truth_where_a_clip_has_it(data, teachers, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data, root, ignore=shutil.ignore_patterns("teacher_cache"))
    clip = sorted(p.stem.rsplit("_", 1)[0] for p in (root / "train").glob("*.wav"))[0]
    for spk in (1, 2):                                        # one conversation: audio only
        (root / "train" / f"{clip}_speaker{spk}.npz").unlink()
    report = _cache(teachers[0], root, tmp_path / "cache")
    assert report.computed == 3
    sides, _ = load_split(root, "train", require_target=False, allow_missing_partner_motion=True)
    ds = DistillWindowDataset(distill_sides(sides, report.directory, "train"), window=50)
    for idx in range(len(ds)):
        item, (name, _) = ds[idx], ds.window_info(idx)
        assert item["has_gt"] == (not name.startswith(clip + "_"))
        assert item["gt_motion"].shape == item["target_motion"].shape
        assert (item["gt_motion"].any()) == item["has_gt"]


def test_refuses_a_teacher_of_another_rig_or_frame_rate(data, teachers, tmp_path, capsys):
    payload = torch.load(teachers[0], weights_only=True)
    arkit = dict(payload, rig=layout.ARKIT61, names=list(layout.ARKIT61_NAMES))
    torch.save(arkit, tmp_path / "arkit.pt")
    with pytest.raises(ValueError, match=r"arkit61 \(61 dims\).*flame56 \(56 dims\)"):
        distill(tmp_path / "arkit.pt", data, tmp_path / "o", TrainConfig(**STUDENT))
    torch.save(dict(payload, fps=30), tmp_path / "fps30.pt")
    with pytest.raises(ValueError, match="frame rate 30 fps differs from the student's 25 fps"):
        distill(tmp_path / "fps30.pt", data, tmp_path / "o", TrainConfig(**STUDENT))
    code = cli.main(["distill", "--teacher", str(tmp_path / "fps30.pt"), "--data", str(data),
                     "--out", str(tmp_path / "o")])
    assert code == 2 and "30 fps" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()                     # refused before anything is made
    with pytest.raises(ValueError, match="--gt-weight"):
        distill(teachers[0], data, tmp_path / "o", TrainConfig(**STUDENT), gt_weight=1.5)


def test_default_student_is_the_live_recipe_at_the_teachers_scale(tmp_path, repo_root,
                                                                  monkeypatch):
    monkeypatch.chdir(repo_root)
    legacy = get_preset("cpu").replace(partner_motion_scale=10.0)
    cfg = student_config(None, None, legacy, {"max_steps": 5})
    recipe = TrainConfig.from_yaml(repo_root / "config" / "train_live.yaml")
    assert cfg.model == "live" and cfg.max_steps == 5 and cfg.lr == recipe.lr
    assert cfg.model_config().partner_motion_scale == 10.0
    assert student_config(None, "cpu", get_preset("paper"), {}).model_config() \
        .partner_motion_scale == 1.0
    with pytest.raises(ValueError, match="not both"):
        student_config(repo_root / "config" / "train_live.yaml", "live", legacy)


def test_cli_end_to_end(data, teachers, tmp_path, capsys):
    cfg = tmp_path / "student.yaml"
    TrainConfig(**STUDENT).to_yaml(cfg)
    argv = ["distill", "--teacher", str(teachers[0]), "--data", str(data), "--out",
            str(tmp_path / "run"), "--config", str(cfg), "--cache", str(tmp_path / "cache"),
            "--gt-weight", "0.5", "--max-steps", "2", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "computed 3 clip(s)" in out and "trained 2 steps" in out
    model, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    assert type(model).__name__ == "LiveDualTalk"
    assert cli.main(argv[:-5] + ["--cache-only", "--no-progress"]) == 0   # second run
    out = capsys.readouterr().out
    assert "computed 0 clip(s)" in out and "reused 3" in out and "trained" not in out
