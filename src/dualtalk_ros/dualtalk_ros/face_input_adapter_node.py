"""``face_input_adapter``: partner face tracking in common forms -> flame56 on ``partner/face``.

Face trackers (MediaPipe, ARKit / Live Link bridges) publish ARKit-named ``Blendshapes`` or a
``JointState`` whose names are blendshape names. This node maps them by name through a linear
map file (``config/maps/arkit_to_flame56.yaml``) into the 56-layout DualTalk reads; flame56 input
passes through (reordered by name). Optionally a separate head-pose ``JointState`` (HeadYaw,
HeadPitch, HeadRoll) is joined to the blendshapes with an approximate-time synchronizer
(``message_filters`` semantics), since trackers often publish face and head on two topics.
Headers are copied; bad messages are dropped and counted.
"""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from dualtalk_msgs.msg import Blendshapes
from rclpy.node import Node
from sensor_msgs.msg import JointState

from dualtalk_core.layout import FLAME56, FLAME56_NAMES

from .conversions import MessageError, blendshapes_to_numpy, numpy_to_blendshapes
from .params import Param, declare_params, resolve_config_path
from .qos import reliable_qos, sensor_qos
from .rig_mapping import LinearMap, load_linear_map
from .runtime import Counters, StartupError, diagnostic_array, run_node
from .sync import make_approximate_sync

PARAMS = (
    Param("input_topic", "partner/face_tracking", "tracker output topic"),
    Param("input_type", "blendshapes", "message type of input_topic",
          choices=("blendshapes", "joint_state")),
    Param("head_topic", "", "optional JointState with head pose names joined to the input by "
          "stamp (approximate time); empty = off"),
    Param("sync_slop_s", 0.02, "max stamp difference when joining head_topic", low=0.0, high=1.0),
    Param("sync_queue_size", 10, "per-input queue of the synchronizer", low=1, high=1000),
    Param("output_topic", "partner/face", "flame56 Blendshapes output"),
    Param("map_file", "maps/arkit_to_flame56.yaml",
          "linear map YAML from the tracker's names to flame56"),
    Param("frame_id", "", "frame_id of outputs; empty copies the input's"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics counters", low=0.0, high=60.0),
)


class FaceInputAdapterNode(Node):
    """See module docstring."""

    def __init__(self, *, context=None, parameter_overrides=None,
                 name: str = "face_input_adapter") -> None:
        super().__init__(name, context=context, parameter_overrides=parameter_overrides)
        p = self.params = declare_params(self, PARAMS)
        self.counters = Counters("received", "invalid", "passthrough", "mapped",
                                 "missing_source_names")
        try:
            self.map: LinearMap = load_linear_map(resolve_config_path(p["map_file"]))
        except (FileNotFoundError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        if self.map.target_rig != FLAME56:
            raise StartupError(f"{self.map.origin}: target_rig should be {FLAME56!r}, "
                               f"got {self.map.target_rig!r}")
        self.identity = LinearMap.identity(FLAME56)
        self.pub = self.create_publisher(Blendshapes, p["output_topic"], reliable_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", reliable_qos(10))
        msg_type = Blendshapes if p["input_type"] == "blendshapes" else JointState
        self.sync = None
        if p["head_topic"]:
            self.sync, self._subs = make_approximate_sync(
                self, [(msg_type, p["input_topic"], sensor_qos()),
                       (JointState, p["head_topic"], sensor_qos())],
                p["sync_queue_size"], p["sync_slop_s"], self.on_pair)
        else:
            self.create_subscription(msg_type, p["input_topic"], self.on_input, sensor_qos())
        if p["diagnostics_period_s"] > 0:
            self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics)

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _read(msg) -> tuple[np.ndarray, tuple[str, ...], str]:
        if isinstance(msg, JointState):
            w = np.asarray(msg.position, dtype=np.float32)
            if len(msg.name) != w.size:
                raise MessageError(f"JointState: {w.size} positions but {len(msg.name)} names")
            return w, tuple(msg.name), ""
        w, names = blendshapes_to_numpy(msg)
        return w, names, msg.rig

    def _reject(self, why: str) -> None:
        self.counters.inc("invalid")
        self.get_logger().warning(f"dropped face input: {why}", throttle_duration_sec=2.0)

    def convert(self, parts) -> np.ndarray:
        """Messages -> flame56 weights [56]; raises MessageError/ValueError on bad input."""
        weights, names, rigs = [], [], []
        for msg in parts:
            w, n, rig = self._read(msg)
            if not np.isfinite(w).all():
                raise MessageError("non-finite weights")
            weights.append(w)
            names.extend(n)
            rigs.append(rig)
        w = np.concatenate(weights)
        if len(set(names)) != len(names):
            raise MessageError("duplicate names in the input")
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
            return self._reject(str(exc))
        self._publish(out, msg.header)

    def on_pair(self, face, head) -> None:
        self.counters.inc("received")
        try:
            out = self.convert([face, head])
        except (MessageError, ValueError) as exc:
            return self._reject(str(exc))
        self._publish(out, face.header)

    def publish_diagnostics(self) -> None:
        self.diag_pub.publish(diagnostic_array(self, "counters", self.counters.as_dict()))


def main(args=None) -> int:
    return run_node(FaceInputAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
