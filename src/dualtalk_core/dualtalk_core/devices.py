"""The one place that turns a device name into a ``torch.device``, and the small device facts
built on it (reduced-precision autocast, pinned host-to-device copies, synchronisation, peak
memory).

Why one module: ``--device cuda`` is typed in many places (``dualtalk infer``, ``train``,
``evaluate``, the streaming session, ``dualtalk_node``, ``bench/``). Each used to check CUDA on its
own, with its own wording; a machine without a GPU must get the same clear refusal everywhere, and
``cuda:3`` on a 2-GPU machine must be refused before a kernel launch fails deep inside torch.
"""
from __future__ import annotations

import contextlib
import resource
import sys
from typing import Iterator, Sequence

import numpy as np
import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "bf16", "fp16")
"""Inference precisions: fp32 (exact), or autocast to bfloat16 / float16 (weights stay fp32)."""
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """A device that cannot be used here (names what was asked and what this machine has)."""


def cuda_summary() -> str:
    """What this machine offers, for error messages."""
    if not torch.cuda.is_available():
        build = torch.version.cuda
        return ("no usable CUDA (torch.cuda.is_available() is False; this torch build "
                + (f"targets CUDA {build})" if build else "is CPU-only)"))
    return f"{torch.cuda.device_count()} CUDA device(s)"


def resolve_device(spec: str | torch.device | None = "auto", what: str = "device") -> torch.device:
    """``auto`` (cuda:0 when available, else cpu), ``cpu``, ``cuda`` or ``cuda:N`` -> device.

    Raises :class:`DeviceError` naming ``what`` (e.g. ``--device``), the value and the reason,
    when the name is malformed or CUDA (or device N) is not there."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = "auto" if spec is None else str(spec).strip().lower()
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    index: int | None = None
    if name == "cuda":
        index = 0
    elif name.startswith("cuda:") and name[5:].isdigit():
        index = int(name[5:])
    if index is None:
        raise DeviceError(f"{what} {spec!r}: expected {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise DeviceError(f"{what} {spec!r}: this machine has {cuda_summary()}; use cpu")
    if index >= torch.cuda.device_count():
        raise DeviceError(f"{what} {spec!r}: this machine has {cuda_summary()} "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device, what: str = "precision") -> str:
    """Validate an inference precision for ``device``; returns it.

    fp16 autocast is refused on CPU: CPU kernels for float16 are slow or missing and give no
    speed-up there; bf16 is the CPU's reduced precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"{what} {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"{what} fp16 needs a CUDA device (got {device}); use bf16 on CPU")
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """Context manager: autocast to ``precision`` on ``device`` (fp32 = no autocast).

    Weights stay fp32; matmuls and convolutions run in the reduced type, reductions and
    normalisations in fp32 (torch's autocast lists)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def to_device(arrays: Sequence[np.ndarray | torch.Tensor], device: torch.device,
              pin: bool | None = None) -> list[torch.Tensor]:
    """Host arrays -> tensors on ``device``, each copied once.

    For a CUDA device (``pin`` None = when the device is cuda) each array goes through
    page-locked (pinned) host memory and is copied with ``non_blocking=True``: the copies are
    queued behind the compute instead of stalling the host, and nothing synchronises until the
    result is read back. On CPU the tensors share the arrays' memory (no copy at all)."""
    pin = device.type == "cuda" if pin is None else pin
    out = []
    for a in arrays:
        t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
        if pin and device.type == "cuda" and not t.is_pinned():
            t = t.pin_memory()
        out.append(t.to(device, non_blocking=pin))
    return out


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """fp32 that is fp32 on the GPU: cuDNN convolutions and CUDA matmuls default to TF32 on
    Ampere and later, which would make an "fp32 reference" itself reduced precision."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (for timing); nothing to do on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new GPU peak-memory window (CPU peak RSS cannot be reset: a process figure)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: GPU = ``torch.cuda.max_memory_allocated`` (tensors on that device
    since the last reset); CPU = the process's peak resident set size (all of it)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB else


def device_name(device: torch.device) -> str:
    """Human name for tables and logs, e.g. ``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def inference(model: torch.nn.Module, device: torch.device,
              precision: str = "fp32") -> Iterator[torch.nn.Module]:
    """``model`` moved to ``device`` in eval mode under ``torch.inference_mode`` and autocast;
    its train/eval mode is restored afterwards."""
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode(), autocast(device, precision):
            yield model
    finally:
        model.train(was_training)
