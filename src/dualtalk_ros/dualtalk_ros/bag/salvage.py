"""Recover the readable part of a truncated MCAP bag (what ``ros2 bag reindex`` is for).

A robot that loses power mid-recording leaves an MCAP file without its summary and footer; the
``rosbags`` reader (rightly) refuses it. The MCAP record stream itself is self-delimiting
(opcode, u64 length, body), so every complete record before the cut can still be read: schemas
(message definitions), channels (topics) and messages, also inside an uncompressed chunk that
was cut part-way. :func:`repair_bag` writes what was recovered into a new, valid bag.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from . import typestore as ts
from .make import BAG_VERSION, STORAGES

LOG = logging.getLogger(__name__)

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x0F


@dataclass
class Salvage:
    """What could be read from an MCAP file: ``schemas`` id -> (type name, definition),
    ``channels`` id -> (topic, schema id), ``messages`` [(channel id, log time ns, bytes)]."""

    path: Path
    schemas: dict[int, tuple[str, str]] = field(default_factory=dict)
    channels: dict[int, tuple[str, int]] = field(default_factory=dict)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)
    stopped: str | None = None     # why reading stopped before the end (None = clean end)


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    return buf[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def _records(buf: bytes, pos: int, out: Salvage, depth: int = 0) -> None:
    """Parse records from ``buf[pos:]`` into ``out`` until the data ends or breaks off."""
    while pos < len(buf):
        if pos + 9 > len(buf):
            out.stopped = out.stopped or f"record header cut at byte {pos}"
            return
        op, length = buf[pos], struct.unpack_from("<Q", buf, pos + 1)[0]
        body_start, body_end = pos + 9, pos + 9 + length
        if op == OP_CHUNK and depth == 0:
            _chunk(buf, body_start, min(body_end, len(buf)), out)
            if body_end > len(buf):
                out.stopped = out.stopped or f"chunk at byte {pos} cut"
                return
        elif body_end > len(buf):
            out.stopped = out.stopped or f"record (op 0x{op:02x}) at byte {pos} cut"
            return
        elif op == OP_SCHEMA:
            (sid,) = struct.unpack_from("<H", buf, body_start)
            name, p = _string(buf, body_start + 2)
            _, p = _string(buf, p)                       # encoding (ros2msg)
            (n,) = struct.unpack_from("<I", buf, p)
            out.schemas[sid] = (name, buf[p + 4:p + 4 + n].decode())
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack_from("<HH", buf, body_start)
            topic, _ = _string(buf, body_start + 4)
            out.channels[cid] = (topic, sid)
        elif op == OP_MESSAGE:
            cid, _, log_time, _ = struct.unpack_from("<HIQQ", buf, body_start)
            out.messages.append((cid, log_time, bytes(buf[body_start + 22:body_end])))
        elif op == OP_DATA_END:
            return
        pos = body_end


def _chunk(buf: bytes, start: int, end: int, out: Salvage) -> None:
    """A chunk: header fields, then its records (uncompressed: also when cut part-way)."""
    try:
        p = start + 8 + 8 + 8 + 4                       # start/end time, size, crc
        compression, p = _string(buf, p)
        (size,) = struct.unpack_from("<Q", buf, p)
        data = buf[p + 8:min(p + 8 + size, end)]
    except (struct.error, UnicodeDecodeError):
        out.stopped = out.stopped or "chunk header cut"
        return
    if compression:
        if len(data) < size:
            out.stopped = out.stopped or f"{compression} chunk cut (cannot decompress a part)"
            return
        from rosbags.rosbag2.storage_mcap import decompress
        (usize,) = struct.unpack_from("<Q", buf, start + 16)
        data = decompress(data, compression, usize, 0)
    _records(data, 0, out, depth=1)


def salvage_mcap(path: str | Path) -> Salvage:
    """Read every complete record of an MCAP file, however it ends."""
    path = Path(path)
    buf = path.read_bytes()
    out = Salvage(path=path)
    if not buf.startswith(MAGIC):
        out.stopped = f"{path} does not start with the MCAP magic"
        return out
    _records(buf, len(MAGIC) + 0, out)
    return out


def _store_for(msgtype: str, definition: str):
    """Our typestore when it knows ``msgtype``, else one built from the stored definition."""
    if msgtype in ts.typestore().fielddefs:
        return ts.typestore()
    store = get_typestore(Stores.ROS2_KILTED)
    sections = definition.split("=" * 80 + "\n")
    types = dict(get_types_from_msg(sections[0], msgtype))
    for sec in sections[1:]:
        head, _, body = sec.partition("\n")
        name = head.replace("MSG:", "").strip()
        if name.count("/") == 1:
            name = name.replace("/", "/msg/")
        types.update(get_types_from_msg(body, name))
    store.register(types)
    return store


def repair_bag(src: str | Path, dst: str | Path, storage: str = "mcap") -> tuple[dict[str, int],
                                                                                  str | None]:
    """Write the recoverable messages of the bag ``src`` (a folder with one .mcap) to ``dst``.

    Returns (messages per topic, why reading stopped or None). Raises ``ValueError`` when
    nothing can be recovered.
    """
    src = Path(src)
    files = sorted(src.glob("*.mcap")) if src.is_dir() else [src]
    if not files:
        raise ValueError(f"{src}: no .mcap file to recover")
    sal = Salvage(path=files[0])
    for f in files:
        part = salvage_mcap(f)
        sal.schemas.update(part.schemas)
        sal.channels.update(part.channels)
        sal.messages += part.messages
        sal.stopped = sal.stopped or part.stopped
    usable = {cid for cid, (_, sid) in sal.channels.items() if sid in sal.schemas}
    msgs = [m for m in sal.messages if m[0] in usable]
    if not msgs:
        raise ValueError(f"{src}: nothing recoverable ({sal.stopped or 'no messages'})")
    counts: dict[str, int] = {}
    from .bagio import custom_data, qualified

    writer = Writer(Path(dst), version=BAG_VERSION, storage_plugin=STORAGES[storage])
    for key, value in (custom_data(src) if src.is_dir() else {}).items():
        writer.set_custom_data(key, str(value))     # clip name, start time, ... if readable
    with writer:
        conns = {}
        for cid in sorted(usable):
            topic, sid = sal.channels[cid]
            msgtype, definition = sal.schemas[sid]
            store = _store_for(msgtype, definition)
            conns[cid] = writer.add_connection(qualified(topic), msgtype, typestore=store)
            counts[qualified(topic)] = 0
        for cid, t, data in sorted(msgs, key=lambda m: m[1]):
            writer.write(conns[cid], t, data)
            counts[qualified(sal.channels[cid][0])] += 1
    LOG.info("recovered %s from %s (%s)", counts, src, sal.stopped or "complete")
    return counts, sal.stopped
