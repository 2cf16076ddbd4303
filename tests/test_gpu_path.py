"""The CUDA path, as far as a CPU can check it, plus ``cuda``-marked tests for a GPU machine.

CPU (CI): the one device check (``dualtalk_core.devices``), the host-to-device copy path of
offline inference, reduced precision (bf16 vs fp32), ``dualtalk infer --device/--precision``, and
checkpoints moving between GPU and CPU machines (a file whose tensors are tagged ``cuda:0``, as a
GPU-trained one is, loads here; a CPU file loads through a callable ``map_location``).
GPU (``-m cuda``, run by ``bench/gpu_check.sh``): forward on cuda vs cpu, a bf16 training step,
a streaming hop. They skip, saying why, where there is no GPU.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from dualtalk_core import devices
from dualtalk_core.cli import main as dualtalk
from dualtalk_core.model.checkpoint import load_checkpoint, save_checkpoint
from dualtalk_core.model.config import get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.model.inference import predict_clip

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() "
                                "is False); bench/gpu_check.sh runs these on a GPU machine")


def _model(preset: str, seed: int = 0) -> DualTalk:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DualTalk(get_preset(preset)).eval()


def _clip(seconds: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, t = int(seconds * 16000), int(seconds * 25)
    return ((0.1 * rng.standard_normal(n)).astype(np.float32),
            (0.1 * rng.standard_normal(n)).astype(np.float32),
            (0.1 * rng.standard_normal((t, 56))).astype(np.float32))


# ------------------------------------------------------------------------------ device check
def test_resolve_device_names_and_refusals():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(" CPU ") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert devices.resolve_device("auto") == (torch.device("cuda", 0) if HAS_CUDA
                                              else torch.device("cpu"))
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(devices.DeviceError, match="expected auto, cpu, cuda or cuda:N"):
            devices.resolve_device(bad, "--device")
    with pytest.raises(devices.DeviceError, match="--device 'cuda:99'"):
        devices.resolve_device("cuda:99", "--device")
    if not HAS_CUDA:
        with pytest.raises(devices.DeviceError, match="'cuda'.*no usable CUDA.*use cpu"):
            devices.resolve_device("cuda")


def test_precision_check():
    cpu = torch.device("cpu")
    assert devices.check_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*use bf16 on CPU"):
        devices.check_precision("fp16", cpu)
    with pytest.raises(ValueError, match="expected one of fp32, bf16, fp16"):
        devices.check_precision("int8", cpu)


def test_host_to_device_copy_path():
    """The copy helper offline inference uses: on CPU the tensors share the arrays' memory
    (no copy, nothing pinned); on a GPU they go through pinned memory, non-blocking."""
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.float32)]
    cpu = devices.to_device(arrays, torch.device("cpu"))
    assert [t.device.type for t in cpu] == ["cpu", "cpu"]
    assert cpu[0].data_ptr() == arrays[0].__array_interface__["data"][0]   # zero-copy
    assert not cpu[0].is_pinned()
    if HAS_CUDA:
        gpu = devices.to_device(arrays, torch.device("cuda", 0))
        torch.cuda.synchronize()
        assert gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0])


def test_peak_memory_and_names_on_cpu():
    cpu = torch.device("cpu")
    assert devices.peak_memory_mb(cpu) > 10          # this process's peak RSS
    assert devices.device_name(cpu).startswith("cpu (")
    devices.synchronize(cpu)
    devices.reset_peak_memory(cpu)


@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_bf16_inference_is_close_to_fp32(preset):
    """bf16 autocast on CPU (the GPU check measures the same on cuda): finite, float32 out.
    Random weights give outputs of std ~0.5 (5x real FLAME coefficients), and bf16's 8-bit
    mantissa moves them by up to ~0.025 (measured: tiny 0.023, cpu 0.015); the issue's 1e-2
    bound is checked on the trained demo model below."""
    model = _model(preset)
    a, b, m = _clip(4.0)
    fp32 = predict_clip(model, a, b, m, device="cpu")
    bf16 = predict_clip(model, a, b, m, device="cpu", precision="bf16")
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    diff = float(np.abs(bf16 - fp32).max())
    assert 0 < diff < 0.05, diff
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        predict_clip(model, a, b, m, device="cpu", precision="fp16")


def test_bf16_on_the_trained_demo_model_is_within_1e_2(repo_root, sample_dir):
    """The issue's bound (reduced precision within 1e-2 of fp32), on trained weights and the
    real 30 s clip (measured: max 0.0095, mean 0.0002)."""
    from dualtalk_core.media.audio_io import load_wav
    from dualtalk_core.model.inference import load_partner_motion

    model, _ = load_checkpoint(repo_root / "models" / "dualtalk_cpu_demo.pt")
    clip = sample_dir / "xkHwlcDSOjc_sub_video_109_000_speaker"
    a, b = load_wav(f"{clip}2.wav"), load_wav(f"{clip}1.wav")
    m = load_partner_motion(f"{clip}1.npz")
    fp32 = predict_clip(model, a, b, m, length_from="motion")
    bf16 = predict_clip(model, a, b, m, length_from="motion", precision="bf16")
    assert float(np.abs(bf16 - fp32).max()) < 1e-2


def test_infer_cli_device_and_precision(tiny_checkpoint, tmp_path, capsys):
    import soundfile as sf

    a, b, m = _clip(2.0)
    sf.write(tmp_path / "a.wav", a, 16000)
    sf.write(tmp_path / "b.wav", b, 16000)
    np.save(tmp_path / "m.npy", m)
    args = ["infer", "--checkpoint", str(tiny_checkpoint), "--self-audio", str(tmp_path / "a.wav"),
            "--partner-audio", str(tmp_path / "b.wav"), "--partner-motion",
            str(tmp_path / "m.npy")]
    assert dualtalk(args + ["-o", str(tmp_path / "bf16.npy"), "--precision", "bf16"]) == 0
    assert dualtalk(args + ["-o", str(tmp_path / "fp32.npy")]) == 0
    diff = np.abs(np.load(tmp_path / "bf16.npy") - np.load(tmp_path / "fp32.npy")).max()
    assert 0 < diff < 0.05                      # random weights: see the test above
    if not HAS_CUDA:
        capsys.readouterr()
        assert dualtalk(args + ["-o", str(tmp_path / "x.npy"), "--device", "cuda"]) == 2
        assert "--device 'cuda': this machine has no usable CUDA" in capsys.readouterr().err
        assert not (tmp_path / "x.npy").exists()


# ------------------------------------------------------------------------------ checkpoints
@contextlib.contextmanager
def saved_as_on_gpu():
    """``torch.save`` inside tags every CPU tensor ``cuda:0``, exactly as a file written from a
    GPU is tagged (what a CPU-only torch cannot load without ``map_location``)."""
    import torch.serialization as ser

    def tagger(obj):
        return "cuda:0" if obj.device.type == "cpu" else None

    entry = (0, tagger, lambda obj, location: None)
    ser._package_registry.insert(0, entry)
    try:
        yield
    finally:
        ser._package_registry.remove(entry)


def test_gpu_trained_checkpoint_loads_on_cpu(tmp_path):
    model = _model("tiny")
    with saved_as_on_gpu():
        path = save_checkpoint(tmp_path / "gpu.pt", model)
    if not HAS_CUDA:  # proves the file really is GPU-tagged
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    a, b, m = _clip(1.0)
    ref = predict_clip(model, a, b, m)
    for location in ("cpu", torch.device("cpu"), lambda storage, loc: storage):
        loaded, _ = load_checkpoint(path, map_location=location)
        assert all(p.device.type == "cpu" for p in loaded.parameters())
        np.testing.assert_array_equal(predict_clip(loaded, a, b, m), ref)


def test_cpu_checkpoint_loads_with_a_callable_map_location(tmp_path):
    """The other direction's mechanism: a callable map_location (what a GPU machine passes as
    ``lambda s, loc: s.cuda()``) is applied to every tensor of a CPU-written file."""
    model = _model("tiny")
    path = save_checkpoint(tmp_path / "cpu.pt", model)
    seen = []

    def location(storage, loc):
        seen.append(loc)
        return storage.cuda() if HAS_CUDA else storage

    loaded, _ = load_checkpoint(path, map_location=location)
    assert seen and set(seen) == {"cpu"}
    a, b, m = _clip(1.0)
    np.testing.assert_allclose(predict_clip(loaded, a, b, m, device="cpu"),
                               predict_clip(model, a, b, m), atol=1e-5)


# ------------------------------------------------------------------------------ on a GPU
@cuda
@needs_cuda
@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_cuda_forward_matches_cpu(preset):
    model = _model(preset)
    a, b, m = _clip(4.0)
    ref = predict_clip(model, a, b, m, device="cpu")
    with devices.true_fp32():
        got = predict_clip(model, a, b, m, device="cuda")
    assert float(np.abs(got - ref).max()) < 1e-3
    bf16 = predict_clip(model, a, b, m, device="cuda", precision="bf16")
    assert float(np.abs(bf16 - ref).max()) < 0.05        # random weights (see the CPU test)


@cuda
@needs_cuda
def test_cuda_checkpoint_loads_to_gpu(tiny_checkpoint):
    loaded, _ = load_checkpoint(tiny_checkpoint, map_location="cuda")
    assert all(p.is_cuda for p in loaded.parameters())


@cuda
@needs_cuda
def test_cuda_training_step_bf16(tmp_path):
    from torch.utils.data import DataLoader

    from dualtalk_core.training.config import TrainConfig
    from dualtalk_core.training.loop import Trainer
    from dualtalk_core.training.synthetic import random_sides

    def trainer(device: str, amp: str) -> Trainer:
        cfg = TrainConfig(model="cpu", batch_size=8, window=50, device=device, amp=amp, seed=2,
                          progress=False, validate_at_start=False, val_split=None,
                          grad_accum_steps=2)
        return Trainer(cfg, tmp_path, tmp_path / f"{device}-{amp}", None,
                       sides=(random_sides(4, 3.0, seed=1), []))

    gpu, cpu = trainer("cuda", "bf16"), trainer("cpu", "none")
    batch = next(iter(DataLoader(cpu.train_ds, batch_size=8)))
    got, ref = gpu.train_step(batch), cpu.train_step(batch)
    assert np.isfinite(got["loss"]) and got["loss"] == pytest.approx(ref["loss"], rel=0.05)
    assert devices.peak_memory_mb(torch.device("cuda", 0)) > 0


@cuda
@needs_cuda
def test_cuda_streaming_hop_matches_cpu():
    from dualtalk_core.streaming.config import StreamingConfig
    from dualtalk_core.streaming.engine import StreamingEngine

    a, b, m = _clip(3.0)
    outs = []
    for device in ("cpu", "cuda"):
        engine = StreamingEngine(_model("tiny"), StreamingConfig(window_s=2.0, lookahead_s=0.4,
                                                                 hop_s=0.2), device=device)
        engine.push_agent_audio(a, 0)
        frames = []
        for k in range(0, len(b), 640):
            engine.push_partner_audio(b[k:k + 640], k)
            engine.push_partner_motion(m[k // 640], k / 16000)
            frames += engine.pull()
        frames += engine.flush()
        outs.append(np.stack([f.weights for f in frames]))
    assert outs[0].shape == outs[1].shape and np.abs(outs[0] - outs[1]).max() < 1e-3


