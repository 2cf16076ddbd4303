"""Writing frames to files: looping GIF (Pillow) and H.264 MP4 with audio (ffmpeg).

ffmpeg is the system one or the static build of ``imageio-ffmpeg``, so MP4 needs no apt package.
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from dualtalk_core.layout import FRAME_RATE, SAMPLE_RATE
from dualtalk_core.media.audio_io import write_wav16

WRITERS = (".gif", ".mp4", ".png")


def output_kind(path: Path) -> str:
    """``.gif``/``.mp4``/``.png`` from the file name; ``ValueError`` naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise ValueError(f"{path}: unknown output type {suffix or '(none)'!r}; "
                         f"use one of {', '.join(WRITERS)}")
    return suffix


def find_ffmpeg() -> str | None:
    """An ffmpeg binary: the system one, else the static one shipped by ``imageio-ffmpeg``."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def require_ffmpeg(path: Path) -> str:
    """:func:`find_ffmpeg` or a ``FileNotFoundError`` that says what to do instead."""
    exe = find_ffmpeg()
    if exe is None:
        raise FileNotFoundError(f"{path}: writing .mp4 needs ffmpeg and none was found (no "
                                "`ffmpeg` on PATH, no imageio-ffmpeg package); write a .gif "
                                "instead, or `pip install imageio-ffmpeg`")
    return exe


def write_gif(frames: Iterable[np.ndarray], path: Path, fps: float = FRAME_RATE) -> Path:
    """Looping GIF. GIF delays are whole 10 ms, so 25 fps (40 ms) and 12.5 fps are exact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = (Image.fromarray(f).quantize(colors=128, method=Image.Quantize.FASTOCTREE,
                                          dither=Image.Dither.NONE) for f in frames)
    first = next(images, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    first.save(path, save_all=True, append_images=images, duration=round(1000 / fps), loop=0,
               optimize=False, disposal=1)
    return path


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: float = FRAME_RATE,
              audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
              ffmpeg: str | None = None) -> Path:
    """H.264/yuv420p MP4 by piping raw RGB frames into ffmpeg; ``audio`` (mono float) as AAC.

    The audio is muxed as given: fit it to the video first (:func:`dualtalk_core.media.audio_io.fit_audio`;
    :func:`render_to_file` does) so that picture and sound end together.
    """
    path = Path(path)
    ffmpeg = ffmpeg or require_ffmpeg(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    h, w = first.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: frame size {w}x{h} must be even for yuv420p")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
        if audio is not None:
            wav = Path(tmp) / "audio.wav"
            write_wav16(wav, audio, sample_rate)
            cmd += ["-i", str(wav), "-c:a", "aac", "-b:a", "128k"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", str(path)]
        with open(Path(tmp) / "ffmpeg.log", "w+b") as errlog:   # a file: no pipe to deadlock
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errlog)
            try:
                for frame in itertools.chain([first], frames):
                    proc.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
                proc.stdin.close()
            except BrokenPipeError:   # ffmpeg stopped early: its log says why
                pass
            if proc.wait() != 0:
                errlog.seek(0)
                err = errlog.read().decode(errors="replace").strip()
                raise RuntimeError(f"{path}: ffmpeg ({ffmpeg}) failed: {err[-800:]}")
    return path
