"""Loss, training config, and real training runs (tiny preset, small synthetic data set):
the validation loss falls, resume reproduces the uninterrupted curve, torchrun (gloo) works."""
from __future__ import annotations

import math
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
    TrainConfig(**TINY, grad_accum_steps=2).to_yaml(cfg)   # accumulation under DDP (no_sync)
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
    assert all(r["samples_per_s"] > 0 for r in rows if r["kind"] == "train_step")


# ------------------------------------------------------------------------------ GPU-ready options
# (AMP, gradient accumulation, DDP backend, throughput columns), all exercised on CPU
STEP = dict(model="cpu", batch_size=8, window=50, progress=False, device="cpu", seed=5,
            num_threads=1, validate_at_start=False, val_split=None,
            # no dropout: one batch and its micro-batches then see the same function
            model_overrides={"transformer_dropout": 0.0, "interaction_dropout": 0.0})


def _trainer(tmp_path, name: str, **changes):
    from dualtalk_core.training.loop import Trainer
    from dualtalk_core.training.synthetic import random_sides

    sides = (random_sides(4, 3.0, seed=1), [])
    return Trainer(TrainConfig(**{**STEP, **changes}), tmp_path, tmp_path / name, None,
                   sides=sides)


def _first_batch(trainer):
    from torch.utils.data import DataLoader

    return next(iter(DataLoader(trainer.train_ds, batch_size=trainer.cfg.batch_size)))


def test_grad_accumulation_equals_one_step_on_the_whole_batch(tmp_path):
    """4 micro-batches of 2 windows give the gradient (and the Adam step) of one batch of 8:
    gradients are zeroed once per optimizer step, each micro-loss weighted by 1/4."""
    whole, accum = _trainer(tmp_path, "whole"), _trainer(tmp_path, "accum", grad_accum_steps=4)
    batch = _first_batch(whole)
    parts_whole, parts_accum = whole.train_step(batch), accum.train_step(batch)
    assert parts_accum["loss"] == pytest.approx(parts_whole["loss"], rel=1e-5)
    grads = {n: p.grad for n, p in whole.model.named_parameters() if p.grad is not None}
    assert len(grads) > 10
    for n, p in accum.model.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6, msg=n)
    # the Adam step: equal wherever the gradient is not float noise (Adam's first step is
    # lr * sign(g), so a ~1e-12 gradient, e.g. of an attention key bias, steps either way)
    for (n, a), b in zip(whole.model.named_parameters(), accum.model.parameters()):
        real = grads[n].abs() > 1e-7 if n in grads else torch.zeros_like(a, dtype=torch.bool)
        torch.testing.assert_close(b[real], a[real], rtol=1e-5, atol=1e-6, msg=n)
    # the last micro-batch alone (what zeroing before every backward would keep) differs
    last = _trainer(tmp_path, "last")
    last.train_step({k: v[6:] if torch.is_tensor(v) else v for k, v in batch.items()})
    name = next(iter(grads))
    assert not torch.allclose(dict(last.model.named_parameters())[name].grad, grads[name])


def test_amp_bf16_step_is_finite_and_close_to_fp32(tmp_path):
    fp32, bf16 = _trainer(tmp_path, "fp32"), _trainer(tmp_path, "bf16", amp="bf16")
    batch = _first_batch(fp32)
    a, b = fp32.train_step(batch), bf16.train_step(batch)
    assert all(math.isfinite(v) for v in b.values())
    assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
    for p in bf16.model.parameters():           # weights stay fp32 under autocast
        assert p.dtype == torch.float32 and torch.isfinite(p).all()


def test_amp_fp16_is_refused_on_cpu(tmp_path):
    from dualtalk_core.training.step import MixedPrecision

    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        TrainConfig(**TINY, amp="fp16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        MixedPrecision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="TrainConfig.amp: expected one of none, bf16, fp16"):
        TrainConfig(**TINY, amp="fp8")
    with pytest.raises(ValueError, match="grad_accum_steps: expected <= batch_size"):
        TrainConfig(**TINY, grad_accum_steps=5)
    assert (TrainConfig().amp, TrainConfig().grad_accum_steps) == ("none", 1)   # as released


def test_ddp_backend_follows_the_device():
    from dualtalk_core.devices import DeviceError
    from dualtalk_core.training.distributed import ddp_backend, process_device

    assert ddp_backend(torch.device("cpu")) == "gloo"
    assert ddp_backend(torch.device("cuda", 1)) == "nccl"
    assert process_device("cpu", local_rank=1) == torch.device("cpu")
    if torch.cuda.is_available():
        assert process_device("cuda", local_rank=0) == torch.device("cuda", 0)
    else:
        assert process_device("auto", local_rank=1) == torch.device("cpu")
        with pytest.raises(DeviceError, match="TrainConfig.device 'cuda'.*no usable CUDA"):
            process_device("cuda", local_rank=0)


def test_bf16_accumulated_run_logs_throughput_and_memory(data_root, tmp_path):
    """A whole run (train()) with amp bf16 and 2 micro-batches: finite losses, samples/s and
    peak memory in every training row."""
    result = train(TrainConfig(**TINY, max_steps=3, amp="bf16", grad_accum_steps=2),
                   data_root, tmp_path)
    assert result.steps == 3
    rows = [r for r in read_log(tmp_path / "log.csv") if r["kind"].startswith("train")]
    assert rows and all(math.isfinite(r["loss"]) for r in rows)
    assert all(r["samples_per_s"] > 0 and r["peak_mem_mb"] > 10 for r in rows)


def test_old_logs_without_the_new_columns_still_read(tmp_path):
    """A log.csv from before samples_per_s/peak_mem_mb: read_log gives nan; resuming rewrites
    the header once and appends full rows."""
    from dualtalk_core.training.log import TrainLogger

    old = ["kind", "epoch", "step", "loss", "exp", "jaw", "pose", "velocity", "spread", "lr",
           "elapsed_s"]
    (tmp_path / "log.csv").write_text(",".join(old) + "\ntrain_step,1,1,0.5,0.1,0.1,0.1,0.1,"
                                      "0.0,0.0001,1.0\n")
    rows = read_log(tmp_path / "log.csv")
    assert rows[0]["loss"] == 0.5 and math.isnan(rows[0]["samples_per_s"])
    logger = TrainLogger(tmp_path, enabled=True, append=True)
    logger.row("train_step", 1, 2, {"loss": 0.4}, 1e-4, 2.0, samples_per_s=12.5,
               peak_mem_mb=300.0)
    logger.close()
    rows = read_log(tmp_path / "log.csv")
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["loss"] == 0.5
    assert rows[1]["samples_per_s"] == 12.5 and rows[1]["peak_mem_mb"] == 300.0


def test_train_cli_refuses_cuda_without_a_gpu(data_root, tmp_path, capsys):
    from dualtalk_core.cli import main as dualtalk

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen")
    code = dualtalk(["train", "--data", str(data_root), "--out", str(tmp_path / "o"),
                     "--device", "cuda", "--amp", "bf16"])
    assert code == 2
    assert "TrainConfig.device 'cuda': this machine has no usable CUDA" in capsys.readouterr().err
