"""The training log: ``log.csv`` (always) and TensorBoard (when it imports), on rank 0."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from dualtalk_core.training.losses import LOSS_TERMS

LOG_FIELDS = ("kind", "epoch", "step", *LOSS_TERMS, "lr", "elapsed_s")


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
            elapsed: float) -> None:
        row = {"kind": kind, "epoch": epoch, "step": step, "lr": lr,
               "elapsed_s": round(elapsed, 3),
               **{k: parts.get(k, math.nan) for k in LOSS_TERMS}}
        self.rows.append(row)
        if not self.enabled:
            return
        self.writer.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for k in ("loss", "exp", "jaw", "pose", "velocity"):
                self.tb.add_scalar(f"{kind}/{k}", parts.get(k, math.nan), step)

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
