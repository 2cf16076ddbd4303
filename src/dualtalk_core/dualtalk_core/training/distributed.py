"""Process set-up for single-process and ``torchrun`` (DDP) training, and RNG state.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group uses gloo on CPU and nccl on GPU. RNG
states are stored as tensors / plain lists so that checkpoints load with ``weights_only=True``
and a resumed run draws the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dualtalk_core.devices import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ddp_backend(device: torch.device) -> str:
    """The process-group backend for ``device``: nccl for GPUs (GPU-direct all-reduce), gloo
    for CPU (nccl has no CPU tensors)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def process_device(device: str, local_rank: int) -> torch.device:
    """This process's device: ``auto``/``cuda`` mean the GPU of its ``LOCAL_RANK`` (one GPU per
    process under torchrun); ``cuda:N`` is taken as given. Refusals come from
    :func:`dualtalk_core.devices.resolve_device`."""
    dev = resolve_device(device, "TrainConfig.device")
    if dev.type == "cuda" and str(device).strip().lower() in ("auto", "cuda"):
        dev = resolve_device(f"cuda:{local_rank}", f"TrainConfig.device (LOCAL_RANK {local_rank})")
    return dev


def setup_distributed(device: str) -> DistInfo:
    """Read torchrun's environment; init gloo (CPU) or nccl (GPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = process_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=ddp_backend(dev))
    return DistInfo(rank, world, local_rank, dev)


def all_reduce(values: list[float], info: DistInfo, op: str = "sum") -> list[float]:
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if op == "max"
                                 else torch.distributed.ReduceOp.SUM)
    return t.tolist()


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
