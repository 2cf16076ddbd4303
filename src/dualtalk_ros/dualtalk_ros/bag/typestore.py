"""One rosbags typestore with the standard ROS 2 types plus ``dualtalk_msgs``, and rclpy classes.

rosbags serialises with its own pure-Python type system, so our custom messages have to be
registered from their ``.msg`` sources; the same store then writes the full message definitions
(and RIHS01 hashes) into each bag, which is what lets other tools (Foxglove, ``ros2 bag``) decode
it. ``rclpy_message_class`` maps a type name from a bag to the generated rclpy class, which the
replayer needs to create a publisher.
"""
from __future__ import annotations

import importlib
import os
import struct
import sys
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSG_PACKAGE = "dualtalk_msgs"
AUDIO_CHUNK = "dualtalk_msgs/msg/AudioChunk"
BLENDSHAPES = "dualtalk_msgs/msg/Blendshapes"
BLENDSHAPE_SEQUENCE = "dualtalk_msgs/msg/BlendshapeSequence"
CONVERSATION_STATE = "dualtalk_msgs/msg/ConversationState"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
JOINT_STATE = "sensor_msgs/msg/JointState"
CLOCK = "rosgraph_msgs/msg/Clock"


class UnknownMessageType(KeyError):
    """A bag names a message type that neither rosbags nor rclpy can resolve."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown message type"


def msg_source_dirs() -> list[Path]:
    """Where ``dualtalk_msgs/msg/*.msg`` may live: ament prefixes, the venv, the source tree."""
    candidates = [Path(p) / "share" / MSG_PACKAGE / "msg"
                  for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates.append(Path(sys.prefix) / "share" / MSG_PACKAGE / "msg")
    candidates.append(Path(__file__).resolve().parents[3] / MSG_PACKAGE / "msg")
    return [c for c in candidates if c.is_dir() and any(c.glob("*.msg"))]


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The ROS 2 Kilted store plus every ``dualtalk_msgs`` message (cached; do not mutate)."""
    store = get_typestore(Stores.ROS2_KILTED)
    dirs = msg_source_dirs()
    if not dirs:
        raise FileNotFoundError(
            f"cannot find {MSG_PACKAGE}/msg/*.msg (looked in AMENT_PREFIX_PATH, "
            f"{sys.prefix}/share and the source tree)")
    types: dict = {}
    for path in sorted(dirs[0].glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MSG_PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def check_known(msgtype: str) -> None:
    """Raise :class:`UnknownMessageType` when rosbags cannot (de)serialise ``msgtype``."""
    if msgtype not in typestore().fielddefs:
        raise UnknownMessageType(
            f"message type {msgtype!r} is unknown to the bag typestore (known custom types: "
            f"{sorted(t for t in typestore().fielddefs if t.startswith(MSG_PACKAGE))})")


def has_header(msgtype: str) -> bool:
    """The message starts with a ``std_msgs/Header`` (so its stamp sits at a fixed place)."""
    defs = typestore().fielddefs.get(msgtype)
    if not defs or not defs[1]:
        return False
    _, (_, ref) = defs[1][0]
    return ref == "std_msgs/msg/Header"


def shift_header_stamp(data: bytes, offset_ns: int) -> bytes:
    """CDR bytes of a message that starts with a Header (:func:`has_header`), its
    ``header.stamp`` moved by ``offset_ns``; the rest untouched.

    Why bytes: a replay must not re-encode what it publishes. In CDR the 4-byte encapsulation
    (byte 1: 1 = little, 0 = big endian) is followed by the first field, so the stamp is
    ``int32 sec`` at 4 and ``uint32 nanosec`` at 8. A stamp that would fall before 0 becomes 0."""
    fmt = "<iI" if data[1] & 1 else ">iI"
    sec, nsec = struct.unpack_from(fmt, data, 4)
    total = max(0, sec * 1_000_000_000 + nsec + int(offset_ns))
    out = bytearray(data)
    struct.pack_into(fmt, out, 4, *divmod(total, 1_000_000_000))
    return bytes(out)


def rclpy_message_class(msgtype: str):
    """``'pkg/msg/Name'`` -> the generated rclpy class ``pkg.msg.Name``.

    Raises :class:`UnknownMessageType` naming the type when the Python package is not installed.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:  # ROS 1 style 'pkg/Name'
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        raise UnknownMessageType(f"malformed message type {msgtype!r} (expected 'pkg/msg/Name')")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError):
        raise UnknownMessageType(
            f"message type {msgtype!r} has no installed rclpy class ({pkg}.{kind}.{name}); "
            f"install the interface package or filter the topic out with --topics") from None
