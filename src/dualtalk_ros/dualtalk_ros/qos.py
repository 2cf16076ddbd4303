"""The two QoS profiles of the node suite, so every node picks them the same way.

Audio and face *inputs* are sensor streams: best effort with a small queue (a late chunk is
worth less than the next one and must never stall the producer). *Outputs* (agent motion,
state, joint commands) are reliable so a controller or recorder sees every frame.

The reliable depth is sized for the worst burst, not the steady state: with KEEP_LAST a full
queue silently overwrites the oldest sample on both the writer and the reader side, and the
subscriber cannot tell. The engine can emit a whole backlog at once (a 10x input burst made
dualtalk_node publish ~2,900 frames in a few seconds; a consumer that is busy for a moment then
saw only the last 50). 1000 frames = 40 s of 25 Hz output, at ~300 bytes per Blendshapes message
about 0.3 MB per endpoint, so nothing between dualtalk_node and head_driver is lost to a burst.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

SENSOR_DEPTH = 10
RELIABLE_DEPTH = 1000     # frames; see the module docstring


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
