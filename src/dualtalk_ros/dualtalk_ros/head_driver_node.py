"""``head_driver``: agent blendshapes -> robot joint commands and/or an avatar rig.

Subscribes ``agent/blendshapes`` (flame56) and publishes

* ``agent/joint_states`` (``sensor_msgs/JointState``) through a joint map file
  (``config/head_6dof.yaml``): limits always enforced, exponential smoothing, velocity cap;
* ``agent/blendshapes_arkit`` (``Blendshapes`` in another rig) through a linear map file
  (``config/maps/flame56_to_arkit52.yaml``) for avatars.

Either output is switched off by an empty file parameter. Bad frames (wrong size, NaN, stamps
going backwards) are dropped and counted; the last command holds. Topic names are
:mod:`dualtalk_ros.topics`'; point the joints at a controller by remapping, e.g.
``--ros-args -r agent/joint_states:=/arm/cmd`` (there are no ``*_topic`` parameters).

No frame is lost without a count on ``/diagnostics``: ``dropped`` is the total of frames this
node received and did not use (``invalid`` + ``out_of_order``). A queue overflow upstream is
invisible to a subscriber, but it leaves a hole in the 25 Hz stamps, so ``missed_frames`` counts
the frames missing between consecutive stamps. A stamp that jumps back by more than
``restart_after_s`` is a restarted conversation (new media clock), not a late frame: it is
counted in ``restarts`` and followed, instead of dropping every frame of the new conversation
until its stamps pass the old ones.

Frames are released at their stamps (``release_at_stamp``, default true; issue 17): with the live
model ``dualtalk_node`` publishes a frame before its media time, stamped with the time its audio
is (or will be) played, so the joints and the avatar move *with* the voice only if this node
holds each frame until its stamp on the ROS clock (:mod:`dualtalk_ros.release_buffer`). The raw
early stream stays on ``agent/blendshapes`` for renderers with their own buffer. A frame that
arrives after its stamp is released at once and counted (``late_frames``); one stamped further
than ``max_ahead_s`` / ``max_late_s`` from the clock is on another clock (e.g. a bag's stamps
near 0 without ``use_sim_time``): counted (``stamp_too_far_ahead`` / ``stamp_too_far_late``, in
``dropped``), logged once per kind, and the face holds its last pose. ``release_at_stamp: false``
publishes on arrival, as before.
"""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import Blendshapes
from rclpy.node import Node
from sensor_msgs.msg import JointState

from .conversions import (MessageError, blendshapes_to_numpy, ns_to_stamp, numpy_to_blendshapes,
                          stamp_to_ns)
from .head_mapping import JointCommandFilter, load_head_joint_map
from . import topics
from .params import Param, declare_params, refuse_removed_params, resolve_config_path
from .qos import reliable_qos
from .release_buffer import LATE, TOO_FAR_AHEAD, TOO_FAR_LATE, ReleaseBuffer, ReleaseThread
from .rig_mapping import load_linear_map
from .runtime import Counters, StartupError, diagnostic_array, run_node

PARAMS = (
    Param("joint_map_file", "head_6dof.yaml",
          "joint map YAML (absolute, or relative to cwd/config); empty = no JointState output"),
    Param("rig_map_file", "",
          "linear map YAML flame56 -> avatar rig (e.g. maps/flame56_to_arkit52.yaml); empty = off"),
    Param("frame_id", "", "frame_id of outputs; empty copies the input header's frame_id"),
    Param("restart_after_s", 1.0, "a stamp this far before the previous one starts a new "
          "stream (counted in restarts) instead of being dropped as out of order",
          low=0.0, high=3600.0),
    Param("release_at_stamp", True, "publish each frame at its stamp on the ROS clock (a "
          "playout buffer); false = publish on arrival"),
    Param("max_ahead_s", 5.0, "a frame stamped further ahead of the clock is refused (counted)",
          low=0.0, high=3600.0),
    Param("max_late_s", 5.0, "a frame stamped further behind the clock is refused (counted); "
          "a later one is released at once (late_frames)", low=0.0, high=3600.0),
    Param("buffer_frames", 256, "most frames held; when full the oldest is released at once",
          low=1, high=100000),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics counters", low=0.0, high=60.0),
)

REMOVED_PARAMS = {"input_topic": topics.AGENT_BLENDSHAPES,
                  "joint_states_topic": topics.AGENT_JOINT_STATES,
                  "rig_topic": topics.AGENT_BLENDSHAPES_ARKIT}
FRAME_PERIOD_NS = 40_000_000     # 25 Hz output of dualtalk_node
MAX_GAP_COUNTED_NS = 60 * 1_000_000_000   # a longer silence is a pause, not lost frames


class HeadDriverNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "head_driver", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)   # e.g. ["--ros-args", "-r", "a:=b"]
        refuse_removed_params(self, REMOVED_PARAMS)
        p = self.params = declare_params(self, PARAMS)
        self.counters = Counters("received", "invalid", "out_of_order", "dropped",
                                 "missed_frames", "restarts", "joint_states", "rig_frames",
                                 "late_frames", "stamp_too_far_ahead", "stamp_too_far_late",
                                 "buffer_overflow", "superseded")
        self.filter = None
        self.rig_map = None
        try:
            if p["joint_map_file"]:
                self.filter = JointCommandFilter(
                    load_head_joint_map(resolve_config_path(p["joint_map_file"])))
            if p["rig_map_file"]:
                self.rig_map = load_linear_map(resolve_config_path(p["rig_map_file"]))
        except (FileNotFoundError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        if self.filter is None and self.rig_map is None:
            raise StartupError("head_driver: both joint_map_file and rig_map_file are empty; "
                               "nothing to publish")
        qos = reliable_qos()
        self.joint_pub = (self.create_publisher(JointState, topics.AGENT_JOINT_STATES, qos)
                          if self.filter else None)
        self.rig_pub = (self.create_publisher(Blendshapes, topics.AGENT_BLENDSHAPES_ARKIT, qos)
                        if self.rig_map else None)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS,
                                              reliable_qos(10))
        self.sub = self.create_subscription(Blendshapes, topics.AGENT_BLENDSHAPES, self.on_frame,
                                            qos)
        self.last_stamp_ns: int | None = None        # last frame accepted
        self.last_released_ns: int | None = None     # last frame published (filter's dt)
        self._logged_kinds: set[str] = set()
        self.releaser = None
        if p["release_at_stamp"]:
            self.releaser = ReleaseThread(
                ReleaseBuffer(int(p["max_ahead_s"] * 1e9), int(p["max_late_s"] * 1e9),
                              int(p["buffer_frames"])),
                lambda: self.get_clock().now().nanoseconds, self._release,
                alive=lambda: self.context.ok())
        self.newest_rx_stamp_ns: int | None = None   # newest stamp received (for missed_frames)
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)
        self.get_logger().info(
            f"head_driver: joints={self.filter.map.names if self.filter else 'off'} "
            f"rig={self.rig_map.target_rig if self.rig_map else 'off'}")

    def _reject(self, why: str) -> None:
        self.counters.inc("invalid")
        self.counters.inc("dropped")
        self.get_logger().warning(f"dropped agent frame: {why}", throttle_duration_sec=2.0)

    def _check_stamp(self, stamp: int) -> tuple[bool, float | None]:
        """(use this frame?, dt to the previous one in s) for a frame stamped ``stamp`` ns;
        counts out-of-order drops and restarts."""
        last = self.last_stamp_ns
        if last is None:
            return True, None
        if stamp <= last:
            if last - stamp > self.params["restart_after_s"] * 1e9:
                self.counters.inc("restarts")
                self.get_logger().info("agent frame stamps jumped back by "
                                       f"{(last - stamp) / 1e9:.2f} s: following a new stream")
                return True, None
            self.counters.inc("out_of_order")
            self.counters.inc("dropped")
            self.get_logger().warning("dropped agent frame: stamp not after the previous one",
                                      throttle_duration_sec=2.0)
            return False, None
        return True, (stamp - last) * 1e-9

    def _count_missed(self, stamp: int) -> None:
        """Holes in the 25 Hz stamp sequence of every frame received (valid or not), i.e.
        frames that never arrived (e.g. overwritten in a full queue upstream)."""
        last = self.newest_rx_stamp_ns
        if last is not None and last < stamp <= last + MAX_GAP_COUNTED_NS:
            self.counters.inc("missed_frames", max(0, round((stamp - last) / FRAME_PERIOD_NS) - 1))
        if last is None or stamp > last or last - stamp > self.params["restart_after_s"] * 1e9:
            self.newest_rx_stamp_ns = stamp

    def _log_once(self, kind: str, text: str) -> None:
        """Bad stamps come in runs (a whole stream on another clock): one line per kind."""
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            self.get_logger().warning(f"{text} (logged once; counted in {kind} on /diagnostics)")

    def on_frame(self, msg: Blendshapes) -> None:
        self.counters.inc("received")
        self._count_missed(stamp_to_ns(msg.header.stamp))
        try:
            weights, names = blendshapes_to_numpy(msg)
        except MessageError as exc:
            return self._reject(str(exc))
        if not np.isfinite(weights).all():
            return self._reject("non-finite weights")
        stamp = stamp_to_ns(msg.header.stamp)
        use, dt = self._check_stamp(stamp)
        if not use:
            return
        restart, prev = self.last_stamp_ns is not None and dt is None, self.last_stamp_ns
        self.last_stamp_ns = stamp
        item = (weights, names, self.params["frame_id"] or msg.header.frame_id, restart)
        if self.releaser is None:
            return self._release(stamp, item)
        if restart:      # the old stream's held frames would play over the new one
            self.counters.inc("superseded", self.releaser.clear())
        if not self._hold(stamp, item):
            self.last_stamp_ns = prev     # a refused stamp must not make later frames "old"

    def _hold(self, stamp: int, item) -> bool:
        """Queue a frame for its stamp; count and log frames that cannot be (returns False)."""
        verdict = self.releaser.push(stamp, item)
        if verdict == LATE:
            self.counters.inc("late_frames")
        elif verdict in (TOO_FAR_AHEAD, TOO_FAR_LATE):
            kind = "stamp_" + verdict
            self.counters.inc(kind)
            self.counters.inc("dropped")
            offset = (stamp - self.get_clock().now().nanoseconds) / 1e9
            self._log_once(kind, f"agent frame stamped {offset:+.3f} s from the ROS clock "
                           f"(bounds -{self.params['max_late_s']} / +{self.params['max_ahead_s']}"
                           " s): not released; the face holds its last pose")
            return False
        return True

    def _release(self, stamp: int, item) -> None:
        """Publish one frame (JointState and/or ARKit), in stamp order."""
        weights, names, frame_id, restart = item
        last = self.last_released_ns
        dt = None if restart or last is None or stamp <= last else (stamp - last) * 1e-9
        stamp_msg = ns_to_stamp(stamp)
        if self.filter is not None:
            try:
                positions = self.filter.step(weights, names, dt)
            except (KeyError, ValueError) as exc:
                return self._reject(str(exc))
            out = JointState()
            out.header.stamp = stamp_msg
            out.header.frame_id = frame_id
            out.name = self.filter.map.names
            out.position = [float(v) for v in positions]
            self.joint_pub.publish(out)
            self.counters.inc("joint_states")
        if self.rig_map is not None:
            try:
                mapped, _missing = self.rig_map.apply_named(weights, names)
            except ValueError as exc:
                return self._reject(str(exc))
            self.rig_pub.publish(numpy_to_blendshapes(
                mapped, rig=self.rig_map.target_rig, names=self.rig_map.target_names,
                stamp=stamp_msg, frame_id=frame_id))
            self.counters.inc("rig_frames")
        self.last_released_ns = stamp

    def destroy_node(self):
        if self.releaser is not None:
            self.releaser.stop()
        return super().destroy_node()

    def publish_diagnostics(self) -> None:
        self.diag_pub.publish(diagnostic_array(self, "counters", self.counters.as_dict()))


def main(args=None) -> int:
    return run_node(HeadDriverNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
