"""``face_input_adapter``: partner face tracking in common forms -> flame56 on ``partner/face``.

Face trackers (MediaPipe, ARKit / Live Link bridges) publish ARKit-named ``Blendshapes`` or a
``JointState`` whose names are blendshape names. This node maps them by name through a linear
map file (``config/maps/arkit_to_flame56.yaml``) into the 56-layout DualTalk reads; flame56 input
passes through (reordered by name). Optionally a separate head-pose ``JointState`` (HeadYaw,
HeadPitch, HeadRoll) is joined to the blendshapes with an approximate-time synchronizer
(``message_filters`` semantics), since trackers often publish face and head on two topics.
Headers are copied; bad messages are dropped and counted. Topics are :mod:`dualtalk_ros.topics`'
(``partner/face_tracking``, ``partner/head`` with ``join_head``, ``partner/face``); rename them by
remapping (``--ros-args -r partner/face_tracking:=/tracker/blendshapes``).

A message this node cannot read is *refused*, never turned into a face: an unknown rig, or
names none of which the map (or flame56) knows, would otherwise map to the map's bias, an
all-zero "neutral" partner face that the model takes for a real, motionless listener. Each
refusal counts in ``invalid`` and in ``invalid_<kind>`` (``unknown_rig``, ``unknown_names``,
``non_finite``, ``duplicate_names``, ``malformed``), the last reason is on ``/diagnostics``,
and each kind is logged as a warning once (a tracker that is misconfigured sends the same bad
message 30 times a second). Names the map does not know next to ones it does (e.g. a tracker's
extra ``_neutral``) are ignored and counted in ``ignored_names``.
"""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import Blendshapes
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import FLAME56, FLAME56_NAMES, RIGS

from .conversions import MessageError, blendshapes_to_numpy, numpy_to_blendshapes
from . import topics
from .params import Param, declare_params, refuse_removed_params, resolve_config_path
from .qos import reliable_qos, sensor_qos
from .rig_mapping import LinearMap, load_linear_map
from .runtime import Counters, StartupError, diagnostic_array, run_node
from .sync import make_approximate_sync

PARAMS = (
    Param("input_type", "blendshapes", "message type of partner/face_tracking",
          choices=("blendshapes", "joint_state")),
    Param("join_head", False, "join a JointState head pose (HeadYaw/HeadPitch/HeadRoll) from "
          "partner/head to the face by stamp (approximate time)"),
    Param("sync_slop_s", 0.02, "max stamp difference when joining partner/head", low=0.0,
          high=1.0),
    Param("sync_queue_size", 10, "per-input queue of the synchronizer", low=1, high=1000),
    Param("map_file", "maps/arkit_to_flame56.yaml",
          "linear map YAML from the tracker's names to flame56"),
    Param("frame_id", "", "frame_id of outputs; empty copies the input's"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics counters", low=0.0, high=60.0),
)

REMOVED_PARAMS = {"input_topic": topics.PARTNER_FACE_TRACKING, "head_topic": topics.PARTNER_HEAD,
                  "output_topic": topics.PARTNER_FACE}
REMOVED_HINTS = {"head_topic": " and set join_head: true"}

REFUSALS = ("unknown_rig", "unknown_names", "non_finite", "duplicate_names", "malformed")


class Refused(MessageError):
    """A face message refused for a reason of one ``kind`` (one of :data:`REFUSALS`)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


class FaceInputAdapterNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "face_input_adapter", cli_args=None) -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides,
                         cli_args=cli_args)   # e.g. ["--ros-args", "-r", "a:=b"]
        refuse_removed_params(self, REMOVED_PARAMS, REMOVED_HINTS)
        p = self.params = declare_params(self, PARAMS)
        self.counters = Counters("received", "invalid", *(f"invalid_{k}" for k in REFUSALS),
                                 "ignored_names", "passthrough", "mapped",
                                 "missing_source_names")
        self.last_invalid = ""
        self._warned: set[str] = set()
        try:
            self.map: LinearMap = load_linear_map(resolve_config_path(p["map_file"]))
        except (FileNotFoundError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        if self.map.target_rig != FLAME56:
            raise StartupError(f"{self.map.origin}: target_rig should be {FLAME56!r}, "
                               f"got {self.map.target_rig!r}")
        self.identity = LinearMap.identity(FLAME56)
        self.known_names = frozenset(self.map.source_names) | frozenset(FLAME56_NAMES)
        self.pub = self.create_publisher(Blendshapes, topics.PARTNER_FACE, reliable_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS,
                                              reliable_qos(10))
        msg_type = Blendshapes if p["input_type"] == "blendshapes" else JointState
        self.input_topic = self.resolve_topic_name(topics.PARTNER_FACE_TRACKING)  # for messages
        self.sync = None
        if p["join_head"]:
            self.sync, self._subs = make_approximate_sync(
                self, [(msg_type, topics.PARTNER_FACE_TRACKING, sensor_qos()),
                       (JointState, topics.PARTNER_HEAD, sensor_qos())],
                p["sync_queue_size"], p["sync_slop_s"], self.on_pair)
        else:
            self.create_subscription(msg_type, topics.PARTNER_FACE_TRACKING, self.on_input,
                                     sensor_qos())
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)

    # ------------------------------------------------------------------ parsing
    def _read(self, msg) -> tuple[np.ndarray, tuple[str, ...], str]:
        if isinstance(msg, JointState):
            w = np.asarray(msg.position, dtype=np.float32)
            if len(msg.name) != w.size:
                raise MessageError(f"JointState: {w.size} positions but {len(msg.name)} names")
            return w, tuple(msg.name), ""
        if msg.rig and msg.rig not in RIGS:
            raise Refused("unknown_rig", f"{self.input_topic}: rig {msg.rig!r} is not "
                          f"known; expected one of {sorted(RIGS)} (or empty)")
        w, names = blendshapes_to_numpy(msg)
        return w, names, msg.rig

    def _reject(self, exc: Exception) -> None:
        kind = exc.kind if isinstance(exc, Refused) else "malformed"
        self.counters.inc("invalid")
        self.counters.inc(f"invalid_{kind}")
        self.last_invalid = f"{kind}: {exc}"
        if kind not in self._warned:
            self._warned.add(kind)
            self.get_logger().warning(f"refused face input ({kind}): {exc}; further "
                                      f"'{kind}' refusals are only counted on /diagnostics")

    def _check_names(self, names: tuple[str, ...]) -> None:
        """Refuse a message none of whose names is known; count unknown ones beside known."""
        unknown = [n for n in names if n not in self.known_names]
        if unknown and len(unknown) == len(names):
            raise Refused("unknown_names", f"{self.input_topic}: none of the "
                          f"{len(names)} names is known to {self.map.origin} or flame56, e.g. "
                          f"{unknown[:3]}")
        if unknown:
            self.counters.inc("ignored_names", len(unknown))
            if "ignored_names" not in self._warned:
                self._warned.add("ignored_names")
                self.get_logger().warning(f"ignoring {len(unknown)} face names the map does not "
                                          f"know, e.g. {unknown[:3]}")

    def convert(self, parts) -> np.ndarray:
        """Messages -> flame56 weights [56]; raises MessageError/ValueError on bad input."""
        weights, names, rigs = [], [], []
        for msg in parts:
            w, n, rig = self._read(msg)
            if not np.isfinite(w).all():
                raise Refused("non_finite", "non-finite weights")
            self._check_names(n)
            weights.append(w)
            names.extend(n)
            rigs.append(rig)
        w = np.concatenate(weights)
        if len(set(names)) != len(names):
            raise Refused("duplicate_names", "duplicate names in the input")
        if rigs[0] == FLAME56 or set(FLAME56_NAMES) <= set(names):
            out, missing = self.identity.apply_named(w, names)
            self.counters.inc("passthrough")
        else:
            out, missing = self.map.apply_named(w, names)
            self.counters.inc("mapped")
            if missing:
                self.counters.inc("missing_source_names")
                self.get_logger().info(f"input lacks {len(missing)} names the map uses "
                                       f"(read as 0), e.g. {missing[:3]}",
                                       throttle_duration_sec=30.0)
        return out

    def _publish(self, weights: np.ndarray, header) -> None:
        self.pub.publish(numpy_to_blendshapes(
            weights, rig=FLAME56, stamp=header.stamp,
            frame_id=self.params["frame_id"] or header.frame_id))

    def on_input(self, msg) -> None:
        self.counters.inc("received")
        try:
            out = self.convert([msg])
        except (MessageError, ValueError) as exc:
            return self._reject(exc)
        self._publish(out, msg.header)

    def on_pair(self, face, head) -> None:
        self.counters.inc("received")
        try:
            out = self.convert([face, head])
        except (MessageError, ValueError) as exc:
            return self._reject(exc)
        self._publish(out, face.header)

    def publish_diagnostics(self) -> None:
        values: dict = self.counters.as_dict()
        values["last_invalid"] = self.last_invalid
        level = 1 if self.counters["invalid"] else 0
        self.diag_pub.publish(diagnostic_array(
            self, "counters", values, level=level,
            message=f"{self.counters['invalid']} face inputs refused" if level else "ok"))


def main(args=None) -> int:
    return run_node(FaceInputAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
