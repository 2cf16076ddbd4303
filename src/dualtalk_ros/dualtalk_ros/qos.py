"""The two QoS profiles of the node suite, so every node picks them the same way.

Audio and face *inputs* are sensor streams: best effort with a small queue (a late chunk is
worth less than the next one and must never stall the producer). *Outputs* (agent motion,
state, joint commands) are reliable so a controller or recorder sees every frame.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

SENSOR_DEPTH = 10
RELIABLE_DEPTH = 50


def sensor_qos(depth: int = SENSOR_DEPTH) -> QoSProfile:
    """Best effort, keep last ``depth``, volatile: like ``qos_profile_sensor_data``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = RELIABLE_DEPTH) -> QoSProfile:
    """Reliable, keep last ``depth``, volatile: for the nodes' outputs."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
