"""Validate incoming partner ``Blendshapes`` and bring them to flame56 for the model.

Why a class (like :mod:`.audio_input`): the node accepts flame56 (any name order) or any rig a
``partner_face_map_file`` maps to flame56; everything else raises
:class:`~dualtalk_ros.conversions.MessageError` so the node can count and drop it.
"""
from __future__ import annotations

import numpy as np

from dualtalk_core.layout import DIM, FLAME56, FLAME56_NAMES

from .conversions import MessageError, blendshapes_to_numpy
from .params import resolve_config_path
from .rig_mapping import LinearMap, load_linear_map


class FaceInput:
    """The partner face stream; ``map_file`` ("" = flame56 only) maps another rig to flame56."""

    def __init__(self, map_file: str = "") -> None:
        self.face_map = (load_linear_map(resolve_config_path(map_file)) if map_file
                         else LinearMap.identity(FLAME56))
        if self.face_map.target_rig != FLAME56:
            raise ValueError(f"{self.face_map.origin}: target_rig should be flame56")

    def convert(self, msg) -> np.ndarray:
        """``Blendshapes`` -> 56 flame56 weights in FLAME56_NAMES order."""
        try:
            weights, names = blendshapes_to_numpy(msg)
            if not np.isfinite(weights).all():
                raise MessageError("non-finite weights")
            if msg.rig == FLAME56 or self.face_map.source_rig == FLAME56:
                if weights.size != DIM:
                    raise MessageError(f"flame56 face: expected {DIM} weights, got {weights.size}")
                if tuple(names) != FLAME56_NAMES:
                    weights, _ = LinearMap.identity(FLAME56).apply_named(weights, names)
                return weights
            return self.face_map.apply_named(weights, names)[0]
        except ValueError as exc:
            raise MessageError(str(exc)) from exc
