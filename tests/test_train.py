"""Loss, training config, and real training runs (tiny preset, small synthetic data set):
the validation loss falls, resume reproduces the uninterrupted curve, torchrun (gloo) works."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dualtalk_core import layout
from dualtalk_core.training.losses import LossWeights, dualtalk_loss
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.training.log import read_log
from dualtalk_core.training.loop import train

from data_helpers import make_synth

TINY = dict(model="tiny", lr=2e-3, batch_size=4, window=50, epochs=50, checkpoint_every_epochs=1,
            progress=False, device="cpu", seed=3, num_threads=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("traindata")
    make_synth(root, pairs=5, seed=21, splits="train=0.8,test=0.2", max_seconds=7, max_rounds=1)
    return root


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory):
    """An uninterrupted run of 14 steps (crosses an epoch boundary), validating every 3 steps
    (validation must not disturb the RNG: the resume test compares against this run)."""
    out = tmp_path_factory.mktemp("full")
    result = train(TrainConfig(**TINY, max_steps=14, val_every_steps=3), data_root, out)
    return out, result


# ------------------------------------------------------------------------------ loss
def test_loss_terms_by_hand():
    target = torch.zeros(2, 5, layout.DIM)
    pred = target.clone()
    total, parts = dualtalk_loss(pred, target)
    assert total.item() == 0.0 and parts["velocity"] == 0.0
    pred[..., layout.EXP] = 1.0                      # constant offset: no velocity error
    _, parts = dualtalk_loss(pred, target)
    assert parts == {"loss": 1.0, "exp": 1.0, "jaw": 0.0, "pose": 0.0, "velocity": 0.0,
                     "spread": 0.0}
    pred = target.clone()
    pred[:, 2, layout.JAW] = 2.0                     # one spike: jaw 4*(2/10), velocity
    _, parts = dualtalk_loss(pred, target, weights=LossWeights(velocity=0.5))
    assert parts["jaw"] == pytest.approx(4 * 2 / 10)
    vel = 2 * 2 * 3 * 4 / (2 * 4 * layout.DIM)      # 2 clips x 2 diffs x 3 dims x 2^2
    assert parts["velocity"] == pytest.approx(vel)
    assert parts["loss"] == pytest.approx(parts["jaw"] + 0.5 * vel)


def test_spread_term_by_hand():
    """std over time per clip and dim: a flat prediction of a +-1 square wave misses std 1."""
    target = torch.zeros(1, 4, layout.DIM)
    target[0, :, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    pred = torch.zeros_like(target)
    _, parts = dualtalk_loss(pred, target)
    assert parts["spread"] == pytest.approx(1.0 / layout.DIM, rel=1e-3)
    assert parts["loss"] == pytest.approx(parts["exp"] + parts["velocity"])  # weight 0: released
    total, parts = dualtalk_loss(pred, target, weights=LossWeights(velocity=0.0, spread=2.0))
    assert total.item() == pytest.approx(parts["exp"] + 2.0 / layout.DIM, rel=1e-3)
    mask = torch.tensor([[True, True, False, False]])
    pred[0, :, 0] = torch.tensor([1.0, -1.0, 5.0, 5.0])             # padding ignored
    _, parts = dualtalk_loss(pred, target, mask=mask)
    assert parts["spread"] == pytest.approx(0.0, abs=1e-6)


def test_loss_mask_ignores_padding():
    target = torch.zeros(1, 6, layout.DIM)
    pred = target.clone()
    pred[:, 4:] = 100.0                               # garbage in the padded frames only
    mask = torch.tensor([[True, True, True, True, False, False]])
    total, parts = dualtalk_loss(pred, target, mask)
    assert total.item() == 0.0
    with pytest.raises(ValueError, match="differ"):
        dualtalk_loss(pred, target[:, :3])
    with pytest.raises(ValueError):
        LossWeights(exp=-1)


# ------------------------------------------------------------------------------ config
def test_train_config_yaml_and_validation(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny\nlr: 1e-4\nbatch_size: 8\nloss_weights: {velocity: 0.5}\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.lr == 1e-4 and cfg.batch_size == 8 and cfg.window == 200
    assert cfg.loss_weights == {"exp": 1.0, "jaw": 1.0, "pose": 1.0, "velocity": 0.5,
                                "spread": 0.0}
    assert (cfg.scheduler_step_epochs, cfg.scheduler_gamma) == (50, 0.8)
    cfg.to_yaml(tmp_path / "c2.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c2.yaml") == cfg
    path.write_text("model: tiny\nbatchsize: 8\n")
    with pytest.raises(ValueError, match="unknown key.*batchsize"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig(model="huge")
    with pytest.raises(ValueError, match="TrainConfig.window"):
        TrainConfig(window=0)
    with pytest.raises(ValueError, match=r"TrainConfig.ema_decay: expected in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="d_model|unknown field"):
        TrainConfig(model_overrides={"d_modle": 3})


def test_repo_train_configs_are_valid(repo_root):
    configs = sorted((repo_root / "config").glob("train_*.yaml"))
    assert any(p.name == "train_cpu.yaml" for p in configs)
    for p in configs:
        cfg = TrainConfig.from_yaml(p)
        cfg.model_config()


# ------------------------------------------------------------------------------ training
def test_short_run_lowers_validation_loss_and_writes_checkpoints(full_run):
    from dualtalk_core.model.checkpoint import load_checkpoint

    out, result = full_run
    assert result.steps == 14 and result.stopped_by == "max_steps"
    vals = [r for r in read_log(out / "log.csv") if r["kind"] == "val"]
    assert vals[0]["step"] == 0 and vals[-1]["step"] == 14
    assert {3, 6, 9, 12} <= {v["step"] for v in vals}       # val_every_steps=3
    assert any(r["kind"] == "train_epoch" for r in read_log(out / "log.csv"))
    assert vals[-1]["loss"] < 0.5 * vals[0]["loss"]
    steps = [r for r in read_log(out / "log.csv") if r["kind"] == "train_step"]
    assert [r["step"] for r in steps] == list(range(1, 15))
    for name in ("last.pt", "best.pt", "epoch_0001.pt", "train_config.yaml"):
        assert (out / name).exists(), name
    model, payload = load_checkpoint(out / "best.pt")
    training = payload["extra"]["training"]
    assert training["best_val"] == pytest.approx(min(v["loss"] for v in vals))
    assert model.config.d_model == 32  # the tiny preset


def test_resume_continues_the_same_curve(full_run, data_root, tmp_path):
    out_full, _ = full_run
    first = train(TrainConfig(**TINY, max_steps=5), data_root, tmp_path)
    assert first.steps == 5
    resumed = train(TrainConfig(**TINY, max_steps=14), data_root, tmp_path,
                    resume=tmp_path / "last.pt")
    assert resumed.steps == 14
    full = {r["step"]: r for r in read_log(out_full / "log.csv") if r["kind"] == "train_step"}
    split = {r["step"]: r for r in read_log(tmp_path / "log.csv") if r["kind"] == "train_step"}
    assert sorted(split) == list(range(1, 15))
    for step in range(1, 15):
        assert split[step]["loss"] == full[step]["loss"], step
    full_val = [r for r in read_log(out_full / "log.csv") if r["kind"] == "val"][-1]
    assert resumed.last_val == pytest.approx(full_val["loss"], rel=1e-6)


def test_ema_averages_the_weights_without_changing_the_optimisation(full_run, data_root,
                                                                   tmp_path):
    """ema_decay > 0: the optimizer takes the same steps as without it; checkpoints hold the
    average (what gets deployed) with the optimizer's own weights beside it, and a resumed
    EMA run ends exactly where the uninterrupted one does."""
    from dualtalk_core.model.checkpoint import read_payload

    out_full, _ = full_run
    ema = dict(TINY, ema_decay=0.9)
    whole = train(TrainConfig(**ema, max_steps=8), data_root, tmp_path / "whole")
    plain = {r["step"]: r["loss"] for r in read_log(out_full / "log.csv")
             if r["kind"] == "train_step"}
    averaged = {r["step"]: r["loss"] for r in read_log(tmp_path / "whole" / "log.csv")
                if r["kind"] == "train_step"}
    assert [averaged[s] for s in range(1, 9)] == [plain[s] for s in range(1, 9)]
    payload = read_payload(tmp_path / "whole" / "last.pt")
    avg, raw = payload["state_dict"], payload["extra"]["training"]["raw_state_dict"]
    assert avg.keys() == raw.keys()
    assert max((avg[k] - raw[k]).abs().max().item() for k in avg) > 1e-4

    train(TrainConfig(**ema, max_steps=3), data_root, tmp_path / "split")
    resumed = train(TrainConfig(**ema, max_steps=8), data_root, tmp_path / "split",
                    resume=tmp_path / "split" / "last.pt")
    assert resumed.last_val == pytest.approx(whole.last_val, rel=1e-6)
    again = read_payload(tmp_path / "split" / "last.pt")["state_dict"]
    for k in avg:
        torch.testing.assert_close(again[k], avg[k], rtol=1e-6, atol=1e-7)


def test_resume_needs_training_state(data_root, tmp_path, full_run):
    from dualtalk_core.model.checkpoint import save_checkpoint
    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    bare = save_checkpoint(tmp_path / "bare.pt", DualTalk(get_preset("tiny")))
    with pytest.raises(ValueError, match="no training state"):
        train(TrainConfig(**TINY, max_steps=2), data_root, tmp_path / "o", resume=bare)


def test_torchrun_two_processes_gloo(data_root, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    cfg = tmp_path / "cfg.yaml"
    TrainConfig(**TINY).to_yaml(cfg)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
           "dualtalk_core.commands.train", "--config", str(cfg), "--data", str(data_root),
           "--out", str(tmp_path / "ddp"), "--max-steps", "4", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("trained 4 steps") == 1      # rank 0 reports, rank 1 stays quiet
    from dualtalk_core.model.checkpoint import read_payload

    payload = read_payload(tmp_path / "ddp" / "last.pt")
    training = payload["extra"]["training"]
    assert training["world_size"] == 2 and training["step"] == 4
    assert len(training["rng"]) == 2                      # every rank's RNG state is kept
    rows = read_log(tmp_path / "ddp" / "log.csv")
    assert [r["step"] for r in rows if r["kind"] == "train_step"] == [1, 2, 3, 4]
