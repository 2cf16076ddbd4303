"""Reading bags: open with a clear error, list topics, read custom metadata, decode messages.

Shared by replay and evaluate so that a truncated or missing bag always yields the same
``BagReadError`` naming the file instead of a library traceback.

Topic names: rosbag2 stores fully qualified names (``/agent/blendshapes``) and so does every bag
we write (:func:`qualified`); bags written before issue 17 store relative ones
(``agent/blendshapes``). This module is the one place names are normalised: everything it
hands out (:func:`topics`, :func:`iter_messages`, :func:`connections`) uses the qualified
spelling, and topic names given to it may use either.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml
from rosbags.rosbag2 import Reader

from . import typestore as ts


class BagReadError(ValueError):
    """A bag cannot be opened or read (missing, truncated, corrupt); the message names it."""


def qualified(topic: str) -> str:
    """The fully qualified spelling of a bag topic name (``/`` in front of a relative one, as
    a node in the root namespace resolves it); the only spelling bags and readers use."""
    return topic if topic.startswith("/") else "/" + topic


@dataclass
class TopicSummary:
    topic: str
    msgtype: str
    count: int


def is_bag_dir(path: Path) -> bool:
    """A rosbag2 bag is a directory with metadata.yaml (or an .mcap/.db3 storage file)."""
    return path.is_dir() and ((path / "metadata.yaml").exists()
                              or any(path.glob("*.mcap")) or any(path.glob("*.db3")))


def find_bags(path: str | Path) -> list[Path]:
    """``path`` itself if it is a bag, else the bags directly inside it (sorted)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag path {path} does not exist")
    if is_bag_dir(path):
        return [path]
    bags = sorted(p for p in path.iterdir() if is_bag_dir(p))
    if not bags:
        raise FileNotFoundError(f"{path} is neither a rosbag2 bag nor a directory of bags")
    return bags


def open_reader(path: str | Path) -> Reader:
    """An opened ``rosbags`` Reader, or ``BagReadError`` naming the bag and the cause."""
    path = Path(path)
    if not path.exists():
        raise BagReadError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for corrupt/truncated files
        hint = ("; if the recording was cut off, `dualtalk-ros bag repair` recovers its "
                "readable part" if path.is_dir() and any(path.glob("*.mcap")) else "")
        raise BagReadError(f"cannot open bag {path}: {type(exc).__name__}: {exc}{hint}") \
            from exc
    return reader


def custom_data(path: str | Path) -> dict[str, str]:
    """The ``custom_data`` map of a bag's metadata.yaml ({} when absent or unreadable)."""
    meta = Path(path) / "metadata.yaml"
    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        return dict(info.get("custom_data") or {})
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}


def connections(reader: Reader, topic_names: list[str] | None = None) -> list:
    """The reader's connections (all, or those of ``topic_names`` in either spelling)."""
    wanted = None if topic_names is None else {qualified(t) for t in topic_names}
    return [c for c in reader.connections if wanted is None or qualified(c.topic) in wanted]


def topics(reader: Reader) -> dict[str, TopicSummary]:
    """Qualified topic name -> type and message count (from the bag's index)."""
    out: dict[str, TopicSummary] = {}
    for conn in reader.connections:
        name = qualified(conn.topic)
        prev = out.get(name)
        out[name] = TopicSummary(name, conn.msgtype, (prev.count if prev else 0) + conn.msgcount)
    return out


def iter_messages(path: str | Path, topic_names: list[str] | None = None,
                  decode: bool = True) -> Iterator[tuple[str, int, object]]:
    """Yield ``(qualified topic, bag_timestamp_ns, message_or_bytes)`` in timestamp order.

    A read error part-way through (a truncated file) raises ``BagReadError`` after the
    messages read so far were yielded, so callers keep what they got.
    """
    reader = open_reader(path)
    try:
        conns = connections(reader, topic_names)
        store = ts.typestore()
        gen = reader.messages(connections=conns) if conns else iter(())
        while True:
            try:
                conn, stamp, data = next(gen)
            except StopIteration:
                return
            except Exception as exc:
                raise BagReadError(
                    f"bag {path}: read error after some messages "
                    f"({type(exc).__name__}: {exc}); the file is probably truncated") from exc
            if decode:
                ts.check_known(conn.msgtype)
                yield qualified(conn.topic), stamp, store.deserialize_cdr(bytes(data),
                                                                          conn.msgtype)
            else:
                yield qualified(conn.topic), stamp, bytes(data)
    finally:
        reader.close()
