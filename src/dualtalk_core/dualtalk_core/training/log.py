"""The training log: ``log.csv`` (always) and TensorBoard (when it imports), on rank 0.

Besides the loss terms, training rows carry throughput (``samples_per_s``: windows per second
over all ranks, data loading included) and ``peak_mem_mb`` (GPU: ``max_memory_allocated`` of this
rank's device; CPU: the process's peak RSS), so a log says whether a run was compute- or
memory-bound. Logs written before a column existed still read (missing = nan), and resuming such
a run rewrites the file once with the new header.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

from dualtalk_core.training.losses import LOSS_TERMS

LOG_FIELDS = ("kind", "epoch", "step", *LOSS_TERMS, "lr", "elapsed_s", "samples_per_s",
              "peak_mem_mb")


class Throughput:
    """Samples per second of the last step and of the whole epoch (wall clock between steps,
    so data loading counts; on a GPU the per-step figure is exact in the steady state, where
    each step waits for the previous one's loss)."""

    def __init__(self, world_size: int = 1) -> None:
        self.world_size = world_size
        self.start = self.prev = time.perf_counter()
        self.samples = 0
        self.last = math.nan

    def add(self, batch_size: int) -> None:
        now = time.perf_counter()
        n = batch_size * self.world_size
        self.samples += n
        self.last = n / max(now - self.prev, 1e-9)
        self.prev = now

    @property
    def mean(self) -> float:
        return self.samples / max(self.prev - self.start, 1e-9) if self.samples else math.nan


def _upgrade_header(path: Path) -> None:
    """Rewrite an older ``log.csv`` (fewer columns) with the current header, rows kept."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) == LOG_FIELDS:
            return
        rows = list(reader)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class TrainLogger:
    """CSV (always) + TensorBoard (when it imports) on rank 0; no-ops elsewhere."""

    def __init__(self, out_dir: Path, enabled: bool, append: bool):
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.tb = None
        if not enabled:
            return
        self.path = out_dir / "log.csv"
        new = not (append and self.path.exists())
        if not new:
            _upgrade_header(self.path)
        self.file = open(self.path, "w" if new else "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=LOG_FIELDS)
        if new:
            self.writer.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except Exception:  # tensorboard not installed: CSV only
            self.tb = None

    def row(self, kind: str, epoch: int, step: int, parts: dict[str, float], lr: float,
            elapsed: float, samples_per_s: float = math.nan,
            peak_mem_mb: float = math.nan) -> None:
        row = {"kind": kind, "epoch": epoch, "step": step, "lr": lr,
               "elapsed_s": round(elapsed, 3),
               **{k: parts.get(k, math.nan) for k in LOSS_TERMS},
               "samples_per_s": round(samples_per_s, 3), "peak_mem_mb": round(peak_mem_mb, 1)}
        self.rows.append(row)
        if not self.enabled:
            return
        self.writer.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for k in ("loss", "exp", "jaw", "pose", "velocity"):
                self.tb.add_scalar(f"{kind}/{k}", parts.get(k, math.nan), step)
            if kind == "train_step":
                self.tb.add_scalar("perf/samples_per_s", samples_per_s, step)
                self.tb.add_scalar("perf/peak_mem_mb", peak_mem_mb, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``log.csv`` with numbers parsed."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out: dict[str, Any] = {"kind": row["kind"]}
            for k in LOG_FIELDS[1:]:
                value = row.get(k) or ""  # a log from before a column was added: nan
                out[k] = float(value) if value not in ("", "nan") else math.nan
            out["epoch"], out["step"] = int(out["epoch"]), int(out["step"])
            rows.append(out)
    return rows
