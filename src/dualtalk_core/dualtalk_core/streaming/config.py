"""StreamingConfig: every setting of a live streaming session, validated once, in one place.

One configuration path: the defaults below, then the model preset's streaming values (the
registry in :mod:`dualtalk_core.model.presets`, or what a checkpoint recorded), then an optional
YAML file, then explicit overrides (e.g. ROS parameters) - merged by :func:`merge_streaming`
and validated once when the dataclass is built.  Each field carries its description, range and
whether it may change at run time (``dynamic``); the ROS node declares its parameters from them.

Window-only fields (``window_s``, ``lookahead_s``, ``hop_s``, ``crossfade_s``, ``norm_mode``,
``norm_context_s``, ``max_overdue_s``) shape the sliding-window engine; the live runner
(:mod:`dualtalk_core.streaming.live_runner`) ignores them: its horizons come from the checkpoint
(``self_lookahead_s`` / ``partner_lookahead_s`` here only assert them).

Cross-fade rule: ``crossfade_s`` unset (null, the default) means ``min(hop_s, lookahead_s -
0.04)``, the longest blend the geometry allows, so setting only ``hop_s: 0.2`` works; a value set
explicitly must fit (at most ``hop_s`` and ``lookahead_s - 0.04``) or the config is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.layout import FRAME_RATE, SAMPLE_RATE
from dualtalk_core.streaming.fields import check_fields, setting
from dualtalk_core.vad import VadConfig

NORM_MODES = ("running", "window", "none")
AGENT_CLOCKS = ("index", "stamp")
FRAME_S = 1.0 / FRAME_RATE


def seconds_to_frames(seconds: float, name: str) -> int:
    """Seconds -> whole 25 fps frames; raises naming ``name`` when not a multiple of 40 ms."""
    f = seconds * FRAME_RATE
    if abs(f - round(f)) > 1e-6:
        raise ValueError(f"StreamingConfig.{name}: expected a multiple of {FRAME_S:g} s "
                         f"(one 25 fps frame), got {seconds!r}")
    return int(round(f))


@dataclass
class StreamingConfig(YamlConfigMixin):
    """Window geometry, normalisation, fault limits, clocks and conversation rules."""

    # --- window geometry (sliding-window engine) ------------------------------------------
    window_s: float = setting(2.0, "left context W fed to the model before each hop (s, "
                              "multiple of 0.04, >= hop_s)", low=0.04, high=60.0)
    lookahead_s: float = setting(0.4, "lookahead L: future audio the model sees beyond the "
                                 "newest emitted frame (s, multiple of 0.04); the latency floor",
                                 low=0.04, high=10.0)
    hop_s: float = setting(0.2, "hop H: the model re-runs every H and frames leave in batches of "
                           "H (s, multiple of 0.04)", low=0.04, high=10.0)
    crossfade_s: float | None = setting(None, "blend from the previous hop's prediction at the "
                                        "start of each hop (s, multiple of 0.04, <= hop_s and "
                                        "<= lookahead_s - 0.04); unset = min(hop_s, lookahead_s "
                                        "- 0.04)", low=0.0, high=10.0)
    # --- normalisation ----------------------------------------------------------------------
    norm_mode: str = setting("running", "audio normalisation: running (statistics of the last "
                             "norm_context_s), window (each window alone) or none",
                             choices=NORM_MODES)
    norm_context_s: float = setting(30.0, "seconds of audio behind the running statistics",
                                    low=0.04, high=3600.0)
    # --- fault limits -------------------------------------------------------------------------
    face_tolerance_s: float = setting(0.04, "a partner face frame further than this from every "
                                      "received one counts as filled", low=0.0, high=10.0)
    max_gap_s: float = setting(5.0, "partner audio gaps up to this are zero-filled; longer ones "
                               "re-synchronise", low=0.0, high=3600.0)
    max_ahead_s: float = setting(30.0, "how far ahead of the partner clock agent audio and face "
                                 "frames may be pushed", low=0.0, high=3600.0)
    max_backlog_s: float = setting(120.0, "most audio one stream buffer may hold (bounds memory "
                                   "for any sample index); a chunk that would need more "
                                   "re-synchronises both streams", low=1.0, high=3600.0)
    max_overdue_s: float | None = setting(None, "when compute falls this far behind, skip whole "
                                          "hops to the newest one (frames_skipped); unset = "
                                          "never skip (deterministic)", low=0.04, high=3600.0)
    # --- clocks and conversations (the session) ---------------------------------------------
    agent_clock: str = setting("index", "place agent audio by its sample index on the "
                               "conversation clock or by its header stamp", choices=AGENT_CLOCKS)
    playout_delay_s: float = setting(0.0, "0 = release each hop's frames as soon as computed; "
                                     "> 0 = release each frame at its stamp + this delay (an "
                                     "even 25 Hz stream; use > lookahead + hop + compute time)",
                                     low=0.0, high=10.0)
    end_of_stream_s: float = setting(1.0, "no partner audio for this long ends the conversation: "
                                     "the last lookahead frames are flushed and the next partner "
                                     "audio starts a new one (new clock origin); 0 = never",
                                     low=0.0, high=3600.0, dynamic=True)
    restart_after_rewind_s: float = setting(5.0, "partner sample index jumping back this far "
                                            "starts a new conversation (player restarted)",
                                            low=0.1, high=3600.0, dynamic=True)
    # --- live (causal) model horizons: checked against the checkpoint, never changed -------
    self_lookahead_s: float | None = setting(None, "live runner only: the agent-audio horizon "
                                             "the model must have been trained with (s); unset "
                                             "= the checkpoint's; a different value refuses the "
                                             "checkpoint at load", low=0.0, high=0.32)
    partner_lookahead_s: float | None = setting(None, "live runner only: the partner horizon "
                                                "the model must have been trained with (s, may "
                                                "be negative); unset = the checkpoint's; a "
                                                "different value refuses the checkpoint at load",
                                                low=-1.0, high=0.32)
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        if isinstance(self.vad, Mapping):
            self.vad = VadConfig.from_dict(self.vad)
        self.validate()

    def validate(self) -> None:
        """Per-field type/range checks, then the geometry rules (messages name the field)."""
        check_fields(self)
        if not isinstance(self.vad, VadConfig):
            raise ValueError(f"StreamingConfig.vad: expected VadConfig or a dict, got {self.vad!r}")
        w, la, h = self.window_frames, self.lookahead_frames, self.hop_frames
        if w < h:
            raise ValueError(f"StreamingConfig.window_s: expected >= hop_s ({self.hop_s:g}), "
                             f"got {self.window_s:g}")
        if self.crossfade_s is not None:
            cf = seconds_to_frames(self.crossfade_s, "crossfade_s")
            if cf > h or cf > la - 1:
                raise ValueError(
                    f"StreamingConfig.crossfade_s: expected a multiple of 0.04 in [0, "
                    f"{min(self.hop_s, self.lookahead_s - FRAME_S):g}] (<= hop_s and <= "
                    f"lookahead_s - 0.04), got {self.crossfade_s:g}")
        need = self.window_s + self.lookahead_s + 2 * self.hop_s + max(self.max_gap_s,
                                                                         self.max_ahead_s)
        if self.max_backlog_s < need:
            raise ValueError(f"StreamingConfig.max_backlog_s: expected >= window_s + lookahead_s "
                             f"+ 2 hop_s + max(max_gap_s, max_ahead_s) = {need:g}, got "
                             f"{self.max_backlog_s:g}")

    # frames -------------------------------------------------------------------------------
    @property
    def window_frames(self) -> int:
        return seconds_to_frames(self.window_s, "window_s")

    @property
    def lookahead_frames(self) -> int:
        return seconds_to_frames(self.lookahead_s, "lookahead_s")

    @property
    def hop_frames(self) -> int:
        return seconds_to_frames(self.hop_s, "hop_s")

    @property
    def crossfade_frames(self) -> int:
        """The cross-fade in frames, the unset rule applied."""
        if self.crossfade_s is None:
            return min(self.hop_frames, self.lookahead_frames - 1)
        return seconds_to_frames(self.crossfade_s, "crossfade_s")

    @property
    def max_backlog_samples(self) -> int:
        return int(round(self.max_backlog_s * SAMPLE_RATE))

    @property
    def is_live(self) -> bool:
        """Whether this config carries a live model's horizons (the live runner fills them in)."""
        return self.self_lookahead_s is not None or self.partner_lookahead_s is not None

    @property
    def latency_s(self) -> float:
        """Worst-case algorithmic latency of a frame behind its media time: L + H for the
        sliding window; for a live model max(self lookahead, partner lookahead, 0) (a frame
        waits for the furthest input it may look at; a negative horizon costs nothing)."""
        if self.is_live:
            return max(self.self_lookahead_s or 0.0, self.partner_lookahead_s or 0.0, 0.0)
        return self.lookahead_s + self.hop_s

    # (de)serialisation: to_dict / from_dict / to_yaml / from_yaml come from YamlConfigMixin ----
    _YAML_WHAT = "streaming config file"
    _YAML_SECTION = "streaming"  # a file with a ``streaming:`` section is accepted too

    def replace(self, **changes: Any) -> "StreamingConfig":
        """A validated copy with some fields changed (unknown names raise ``ValueError``)."""
        return merge_streaming(self.to_dict(), changes)

    @classmethod
    def dynamic_fields(cls) -> tuple[str, ...]:
        """Names of the fields that may change while a session runs."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("dynamic"))


def read_streaming_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a streaming YAML file (its ``streaming:`` section when it has one),
    so it can be layered over a preset instead of replacing it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"streaming config file not found: {path}")
    try:
        data = StreamingConfig._unwrap_yaml(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of StreamingConfig keys, got "
                         f"{type(data).__name__}")
    return dict(data)


def merge_streaming(*layers: Mapping[str, Any] | None) -> StreamingConfig:
    """Defaults <- each layer in order (preset, file, overrides); validated once at the end.

    Later layers win key by key (``vad`` merges key by key too); an unknown key in any layer
    raises ``ValueError`` naming it and the known keys."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key == "vad" and isinstance(value, Mapping) and isinstance(merged.get("vad"), Mapping):
                merged["vad"] = {**merged["vad"], **value}
            else:
                merged[key] = value
    return StreamingConfig.from_dict(merged)
