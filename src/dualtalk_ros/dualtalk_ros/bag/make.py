"""``bag make``: DualTalk-layout clips -> rosbag2 bags with the graph's input topics + ground truth.

One bag per clip-side: the *agent* is speakerN (its audio goes on the agent audio topic and its
motion is the ground truth), the *partner* is the other speaker (partner audio + partner face).
This is exactly what the live graph sees on a robot (partner microphone, partner face tracker,
agent TTS audio), so replaying such a bag through the graph and scoring the output against the
ground-truth topic measures the deployed system end to end.

Timing: every header stamp is ``start_time + media_time`` where media time is
``first_sample_index / 16000`` for audio and ``k / 25`` for face frame k, and the bag timestamp
of each message equals its header stamp (what a recorder on a robot with synchronised clocks
would store). Custom data in the bag metadata records clip, speaker, start time and rates.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from rosbags.rosbag2 import StoragePlugin, Writer

from dualtalk_core import layout
from dualtalk_core.data.dataset import SIDE_NAME_RE, SPLITS

from .. import topics
from . import typestore as ts
from .bagio import qualified

LOG = logging.getLogger(__name__)

BAG_VERSION = 9
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
NS_PER_S = 1_000_000_000

# Keys of the bag's custom metadata (rosbag2 v9 ``custom_data``); read back by the evaluator.
META_CLIP = "dualtalk.clip"
META_SPEAKER = "dualtalk.agent_speaker"
META_START_NS = "dualtalk.start_time_ns"
META_SAMPLE_RATE = "dualtalk.sample_rate"
META_FRAME_RATE = "dualtalk.frame_rate"
META_AUDIO_SAMPLES = "dualtalk.audio_samples"
META_TOPICS = "dualtalk.topics"


@dataclass
class BagTopics:
    """Topic names of the input bags (defaults = the graph's names, :mod:`..topics`, so a bag
    replays onto the graph without remapping). Bags store them fully qualified
    (``/partner/audio``, as rosbag2 does); either spelling may be given (:mod:`.bagio`)."""

    partner_audio: str = topics.PARTNER_AUDIO
    agent_audio: str = topics.AGENT_AUDIO
    partner_face: str = topics.PARTNER_FACE
    agent_gt: str = topics.AGENT_BLENDSHAPES_GT

    def as_dict(self) -> dict[str, str]:
        return {"partner_audio": self.partner_audio, "agent_audio": self.agent_audio,
                "partner_face": self.partner_face, "agent_gt": self.agent_gt}

    def qualified(self) -> "BagTopics":
        """The same names as a bag stores them (:func:`.bagio.qualified`)."""
        return BagTopics(*(qualified(t) for t in self.as_dict().values()))


@dataclass
class MakeOptions:
    """How bags are written. ``chunk_ms`` is the AudioChunk length (20 ms = 320 samples)."""

    chunk_ms: float = 20.0
    start_time_s: float = 0.0
    storage: str = "mcap"
    topics: BagTopics = field(default_factory=BagTopics)
    rig: str = layout.FLAME56
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if not self.chunk_ms > 0:
            raise ValueError(f"chunk_ms must be > 0, got {self.chunk_ms}")
        if self.start_time_s < 0:
            raise ValueError(f"start_time_s must be >= 0, got {self.start_time_s}")

    @property
    def chunk_samples(self) -> int:
        return max(1, int(round(self.chunk_ms * layout.SAMPLE_RATE / 1000.0)))

    @property
    def start_ns(self) -> int:
        return int(round(self.start_time_s * NS_PER_S))


@dataclass
class ClipSource:
    """Files of one clip-side: agent = ``speaker``; the partner is the other speaker."""

    clip: str
    speaker: int
    self_wav: Path
    partner_wav: Path
    self_npz: Path | None
    partner_npz: Path | None

    @property
    def name(self) -> str:
        return f"{self.clip}_speaker{self.speaker}"


@dataclass
class MadeBag:
    """What ``make_bag`` wrote: path, per-topic message counts and the warnings it raised."""

    source: ClipSource
    path: Path
    counts: dict[str, int]
    warnings: list[str]
    has_ground_truth: bool


def _side_source(directory: Path, clip: str, speaker: int) -> ClipSource:
    other = 2 if speaker == 1 else 1
    base = directory / clip

    def opt(p: Path) -> Path | None:
        return p if p.exists() else None

    return ClipSource(
        clip=clip, speaker=speaker,
        self_wav=Path(f"{base}_speaker{speaker}.wav"),
        partner_wav=Path(f"{base}_speaker{other}.wav"),
        self_npz=opt(Path(f"{base}_speaker{speaker}.npz")),
        partner_npz=opt(Path(f"{base}_speaker{other}.npz")))


def find_clip_sources(root: str | Path, clips: list[str] | None = None,
                      split: str | None = None) -> list[ClipSource]:
    """Clip-sides to turn into bags.

    ``clips`` entries are ``<clip>`` (both sides) or ``<clip>_speakerN`` (that side); they are
    looked up in ``root`` (or ``root/split``) and then in ``root/{train,test,ood}``. Without
    ``clips`` every clip with a ``*_speakerN.wav`` in ``root/split`` (or ``root``) is used.
    Raises ``FileNotFoundError`` naming what is missing.
    """
    root = Path(root)
    base = root / split if split else root
    if not base.is_dir():
        raise FileNotFoundError(f"data directory {base} does not exist")
    sides: list[tuple[Path, str, int]] = []
    if clips:
        search = [base] + ([] if split else [root / s for s in SPLITS if (root / s).is_dir()])
        for entry in clips:
            m = SIDE_NAME_RE.match(entry)
            clip, speakers = (m["clip"], [int(m["spk"])]) if m else (entry, [1, 2])
            directory = next((d for d in search
                              if any((d / f"{clip}_speaker{s}.wav").exists() for s in (1, 2))),
                             None)
            if directory is None:
                raise FileNotFoundError(
                    f"clip {clip!r}: no {clip}_speaker1.wav or _speaker2.wav under "
                    f"{', '.join(str(d) for d in search)}")
            sides += [(directory, clip, s) for s in speakers]
    else:
        names = sorted({m["clip"] for p in base.glob("*_speaker[12].wav")
                        if (m := SIDE_NAME_RE.match(p.stem))})
        if not names:
            raise FileNotFoundError(f"no *_speaker1.wav / *_speaker2.wav clips in {base}")
        sides = [(base, c, s) for c in names for s in (1, 2)]
    return [_side_source(d, c, s) for d, c, s in sides]


def load_audio(path: Path) -> np.ndarray:
    """A 16 kHz mono float32 waveform (``dualtalk_core.media.audio_io.load_wav`` when present)."""
    if not path.exists():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        from dualtalk_core.media.audio_io import load_wav
    except ImportError:
        load_wav = None
    if load_wav is not None:
        return np.asarray(load_wav(path, target_sr=layout.SAMPLE_RATE), dtype=np.float32)
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != layout.SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {layout.SAMPLE_RATE} Hz")
    return data.mean(axis=1).astype(np.float32)


def load_motion(path: Path) -> np.ndarray:
    """A DualTalk npz -> float32 [T, 56] via ``layout.flame56_from_npz``."""
    with np.load(path) as npz:
        return layout.flame56_from_npz({k: npz[k] for k in ("exp", "pose") if k in npz.files},
                                       source=str(path))


def _time(ns: int):
    store = ts.typestore()
    return store.types["builtin_interfaces/msg/Time"](sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def _header(ns: int, frame_id: str):
    return ts.typestore().types["std_msgs/msg/Header"](stamp=_time(ns), frame_id=frame_id)


def audio_messages(samples: np.ndarray, start_ns: int, chunk: int, frame_id: str):
    """Yield ``(stamp_ns, AudioChunk)``: float32 chunks with a running first_sample_index."""
    cls = ts.typestore().types[ts.AUDIO_CHUNK]
    empty16 = np.zeros(0, dtype=np.int16)
    for first in range(0, len(samples), chunk):
        stamp = start_ns + first * NS_PER_S // layout.SAMPLE_RATE
        yield stamp, cls(header=_header(stamp, frame_id), sample_rate=layout.SAMPLE_RATE,
                         channels=1, first_sample_index=first, encoding="float32",
                         data_int16=empty16,
                         data_float32=np.ascontiguousarray(samples[first:first + chunk],
                                                           dtype=np.float32))


def blendshape_messages(motion: np.ndarray, start_ns: int, frame_id: str, rig: str):
    """Yield ``(stamp_ns, Blendshapes)``, frame k stamped at ``start + k / 25`` s."""
    cls = ts.typestore().types[ts.BLENDSHAPES]
    for k, row in enumerate(np.asarray(motion, dtype=np.float32)):
        stamp = start_ns + k * NS_PER_S // layout.FRAME_RATE
        yield stamp, cls(header=_header(stamp, frame_id), rig=rig, names=[],
                         weights=np.ascontiguousarray(row, dtype=np.float32))


def make_bag(source: ClipSource, out_path: str | Path,
             options: MakeOptions | None = None) -> MadeBag:
    """Write one clip-side to a rosbag2 bag at ``out_path`` (a directory; must not exist unless
    ``options.overwrite``). Missing partner motion -> no partner face topic; missing agent
    motion -> no ground truth topic (both with a warning). Missing audio is an error."""
    options = options or MakeOptions()
    out_path = Path(out_path)
    warnings: list[str] = []
    self_audio = load_audio(source.self_wav)
    partner_audio = load_audio(source.partner_wav)
    if len(self_audio) != len(partner_audio):
        warnings.append(f"{source.name}: agent audio has {len(self_audio)} samples, partner "
                        f"audio {len(partner_audio)}; both written as they are")
    partner_motion = load_motion(source.partner_npz) if source.partner_npz else None
    if partner_motion is None:
        warnings.append(f"{source.name}: partner motion {source.clip}_speaker"
                        f"{3 - source.speaker}.npz missing; no {options.topics.partner_face} topic")
    gt = load_motion(source.self_npz) if source.self_npz else None
    if gt is None:
        warnings.append(f"{source.name}: agent motion {source.name}.npz missing; "
                        f"no ground truth topic {options.topics.agent_gt}")
    for w in warnings:
        LOG.warning(w)

    if out_path.exists():
        if not options.overwrite:
            raise FileExistsError(f"bag {out_path} already exists (use --overwrite)")
        shutil.rmtree(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    topics = options.topics
    streams = [  # (priority, topic, msgtype, iterator): priority orders equal timestamps
        (0, topics.partner_audio, ts.AUDIO_CHUNK,
         audio_messages(partner_audio, options.start_ns, options.chunk_samples, "partner_mic")),
        (1, topics.agent_audio, ts.AUDIO_CHUNK,
         audio_messages(self_audio, options.start_ns, options.chunk_samples, "agent_tts")),
    ]
    if partner_motion is not None:
        streams.append((2, topics.partner_face, ts.BLENDSHAPES,
                        blendshape_messages(partner_motion, options.start_ns, "partner_face",
                                            options.rig)))
    if gt is not None:
        streams.append((3, topics.agent_gt, ts.BLENDSHAPES,
                        blendshape_messages(gt, options.start_ns, "agent_face", options.rig)))

    store = ts.typestore()
    counts: dict[str, int] = {}
    writer = Writer(out_path, version=BAG_VERSION, storage_plugin=STORAGES[options.storage])
    for key, value in {META_CLIP: source.clip, META_SPEAKER: str(source.speaker),
                       META_START_NS: str(options.start_ns),
                       META_SAMPLE_RATE: str(layout.SAMPLE_RATE),
                       META_FRAME_RATE: str(layout.FRAME_RATE),
                       META_AUDIO_SAMPLES: str(len(partner_audio)),
                       META_TOPICS: ",".join(f"{k}={v}" for k, v in topics.as_dict().items())
                       }.items():
        writer.set_custom_data(key, value)
    with writer:
        records = []
        for prio, topic, msgtype, it in streams:
            topic = qualified(topic)        # rosbag2's spelling (bagio.qualified)
            conn = writer.add_connection(topic, msgtype, typestore=store)
            counts[topic] = 0
            for stamp, msg in it:
                records.append((stamp, prio, counts[topic], conn,
                                store.serialize_cdr(msg, msgtype)))
                counts[topic] += 1
        records.sort(key=lambda r: r[:3])
        for stamp, _, _, conn, data in records:
            writer.write(conn, stamp, data)
    LOG.info("wrote %s: %s", out_path, ", ".join(f"{t}={n}" for t, n in counts.items()))
    return MadeBag(source=source, path=out_path, counts=counts, warnings=warnings,
                   has_ground_truth=gt is not None)


def make_bags(sources: list[ClipSource], out_dir: str | Path,
              options: MakeOptions | None = None) -> tuple[list[MadeBag], list[str]]:
    """One bag per source under ``out_dir/<clip>_speakerN``; errors are collected, not raised."""
    made, errors = [], []
    for source in sources:
        try:
            made.append(make_bag(source, Path(out_dir) / source.name, options))
        except (OSError, ValueError) as exc:
            errors.append(f"{source.name}: {exc}")
            LOG.error("%s: %s", source.name, exc)
    return made, errors
