"""Shared helpers for the streaming / VAD tests: a real tiny DualTalk, test signals, feeders."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE


@contextlib.contextmanager
def single_thread():
    """One torch thread while the tests run: on the shared 2-core box, 2 threads under load are
    ~10x slower than 1 (spinning workers). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_model(seed: int = 0):
    """The real DualTalk network, ``tiny`` preset, random weights (seeded), eval mode."""
    import torch

    from dualtalk_core.model.config import get_preset
    from dualtalk_core.model.dualtalk import DualTalk

    torch.manual_seed(seed)
    return DualTalk(get_preset("tiny")).eval()


def espeak_speech(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Real synthetic speech from espeak-ng, resampled with soxr to 16 kHz float32 mono."""
    import soundfile as sf
    import soxr

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
        audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, sr, sample_rate).astype(np.float32)


def make_signals(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(partner audio, agent audio, partner motion [T,56]) - noise bursts and a smooth face."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    env_p = (np.sin(2 * np.pi * 0.7 * t) > 0).astype(np.float32)
    env_a = 1.0 - env_p
    partner = (0.1 * rng.standard_normal(n) * env_p).astype(np.float32)
    agent = (0.1 * rng.standard_normal(n) * env_a).astype(np.float32)
    frames = -(-n // (SAMPLE_RATE // FRAME_RATE))
    ft = np.arange(frames)[:, None] / FRAME_RATE
    motion = (0.3 * np.sin(2 * np.pi * (0.2 + np.arange(DIM)[None] / 40.0) * ft)).astype(np.float32)
    return partner, agent, motion


def feed(engine, partner: np.ndarray, chunk_sizes=None, agent: np.ndarray | None = None,
         motion: np.ndarray | None = None, flush: bool = True) -> list:
    """Push motion and agent audio up front, partner audio in ``chunk_sizes`` pieces, pulling
    after every push; returns all frames (flushed at the end when ``flush``)."""
    if motion is not None:
        for k, frame in enumerate(motion):
            engine.push_partner_motion(frame, k / FRAME_RATE)
    if agent is not None:
        engine.push_agent_audio(agent, 0)
    sizes = list(chunk_sizes) if chunk_sizes is not None else [partner.shape[0]]
    frames, pos = [], 0
    for size in sizes:
        if pos >= partner.shape[0]:
            break
        assert engine.push_partner_audio(partner[pos: pos + size], pos)
        pos += size
        frames += engine.pull()
    if flush:
        frames += engine.flush()
    return frames


def weights(frames: list) -> np.ndarray:
    return np.stack([f.weights for f in frames])
