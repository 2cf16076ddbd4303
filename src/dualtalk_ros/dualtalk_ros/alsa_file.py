"""A loudspeaker that writes to a file: ALSA's ``file`` PCM as the default playback device.

Why: ``bag evaluate`` (and ``make demo``) run the whole graph, ``voice_player`` included, so the
lip offset is measured against the agent's voice as the graph plays it - also on a machine
without a sound card (CI, the development machine). ALSA's ``file`` plugin in front of a
``null`` slave accepts whatever PortAudio writes and copies every sample into a raw S16_LE file,
in the order played; a ``plug`` in front converts to the format PortAudio asks for. The device
is not paced (the null slave takes samples as fast as they come): ``voice_player`` paces itself
by the clock, so the file holds the played stream and ``agent/audio_played`` says when each
block was due.

ALSA reads its configuration from the files in ``ALSA_CONFIG_PATH`` (``:``-separated) instead
of its built-in ``alsa.conf`` when that is set, so :func:`environment` lists the system's
``alsa.conf`` first (it defines the standard PCMs) and then the file written here, whose
``pcm.!default`` overrides the default device for the processes started with it - nothing
outside them changes (no ``~/.asoundrc`` is touched).
"""
from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIGS = ("/usr/share/alsa/alsa.conf", "/usr/local/share/alsa/alsa.conf",
                  "/etc/alsa/alsa.conf")


def system_config() -> str:
    """The ALSA configuration a process would load anyway (``FileNotFoundError`` naming the
    places looked at when there is none: no ALSA library configuration installed)."""
    current = os.environ.get("ALSA_CONFIG_PATH")
    if current:
        return current
    for path in SYSTEM_CONFIGS:
        if Path(path).is_file():
            return path
    raise FileNotFoundError(f"no ALSA configuration (alsa.conf) in {list(SYSTEM_CONFIGS)}: "
                            "cannot define a file playback device (install libasound2-data)")


def write_file_playback(conf: str | Path, outfile: str | Path, rate: int = 16000,
                        channels: int = 1) -> Path:
    """Write an ALSA configuration whose default playback PCM writes raw S16_LE mono (by
    default) samples to ``outfile``; returns the configuration's path."""
    conf, outfile = Path(conf), Path(outfile).resolve()
    conf.parent.mkdir(parents=True, exist_ok=True)
    outfile.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"""# dualtalk_ros.alsa_file: the default playback device writes to a file
pcm.!default {{
  type plug
  slave {{ pcm "dualtalk_file"; format S16_LE; rate {int(rate)}; channels {int(channels)} }}
}}
pcm.dualtalk_file {{
  type file
  slave.pcm "null"
  file "{outfile}"
  format "raw"
}}
""")
    return conf


def environment(conf: str | Path) -> dict[str, str]:
    """Environment variables that make ``conf`` (from :func:`write_file_playback`) the
    default sound device of a child process."""
    return {"ALSA_CONFIG_PATH": f"{system_config()}:{Path(conf).resolve()}"}
