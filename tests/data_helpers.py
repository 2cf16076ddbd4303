"""Shared helpers for the data / synth / train tests: small synthetic data sets, CLI runners."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np


def make_synth(root: Path, pairs: int = 5, seed: int = 0, splits: str = "train=0.8,test=0.2",
               max_seconds: float = 8.0, max_rounds: int = 2, voice: str = "procedural",
               face_stats: str = "real"):
    """A small procedural-voice data set (fast, byte-deterministic); ``face_stats="legacy"``
    for the hand-set scale the bundled demo model was trained on."""
    from dualtalk_core.data.synth import synthesize_dataset

    return synthesize_dataset(root, pairs, seed, splits=splits, min_rounds=1,
                              max_rounds=max_rounds, voice=voice, min_seconds=6.0,
                              max_seconds=max_seconds, face_stats=face_stats)


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``root`` (sorted)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def copy_clip(src_dir: Path, dst_dir: Path, clip: str, new_name: str | None = None,
              suffixes: tuple[str, ...] = (".wav", ".npz")) -> None:
    """Copy both sides of ``clip`` (optionally renamed) into ``dst_dir``."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for spk in (1, 2):
        for suffix in suffixes:
            src = src_dir / f"{clip}_speaker{spk}{suffix}"
            if src.exists():
                shutil.copy(src, dst_dir / f"{new_name or clip}_speaker{spk}{suffix}")


def rewrite_npz(path: Path, **changes) -> None:
    """Rewrite an npz with some fields replaced (value None deletes the field)."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    np.savez(path, **data)


def run_module_main(module, argv: list[str]) -> tuple[int, str]:
    """Call ``module.main(argv)``; return (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main(argv)
    return code, out.getvalue()


def files_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
