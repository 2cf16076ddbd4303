"""Linear maps between face rigs (``y = M x + b``), loaded from YAML map files.

Used three ways: the face input adapter brings ARKit-named partner tracking into the 56-layout,
the head driver re-publishes the agent's flame56 motion in an avatar rig, and the dualtalk
node accepts partner faces in any rig a map file covers. A map file looks like::

    source_rig: flame56          # names default to the rig's canonical names
    target_rig: arkit52
    # source_names: [...]        # optional, for rigs not in dualtalk_core.layout
    # target_names: [...]
    clamp: [0.0, 1.0]            # optional output range
    # dense form ...
    # matrix: [[...], ...]       # [num_targets x num_sources]
    # bias: [...]                # [num_targets]
    # ... or sparse form (targets not listed map to their bias, default 0):
    targets:
      JawOpen: {terms: {jaw_rx: 3.0}, bias: 0.0}

Inputs are matched by *name*, so a message whose names are a subset or a permutation of the
source names works; names the map needs but the input lacks read as 0 and are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from dualtalk_core.layout import RIGS


class MapFileError(ValueError):
    """A map file that does not describe a valid linear map (text names file and field)."""


@dataclass
class LinearMap:
    """``target = clip(matrix @ source + bias)`` with named sources and targets."""

    source_rig: str
    target_rig: str
    source_names: tuple[str, ...]
    target_names: tuple[str, ...]
    matrix: np.ndarray
    bias: np.ndarray
    clamp: tuple[float, float] | None = None
    origin: str = "<memory>"
    _index_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32).reshape(-1)
        want = (len(self.target_names), len(self.source_names))
        if self.matrix.shape != want:
            raise MapFileError(f"{self.origin}: matrix should be {list(want)} "
                               f"(targets x sources), got {list(self.matrix.shape)}")
        if self.bias.shape != (want[0],):
            raise MapFileError(f"{self.origin}: bias should have {want[0]} values, "
                               f"got {self.bias.shape[0]}")
        if not (np.isfinite(self.matrix).all() and np.isfinite(self.bias).all()):
            raise MapFileError(f"{self.origin}: matrix/bias contain non-finite values")

    @classmethod
    def identity(cls, rig: str) -> "LinearMap":
        names = RIGS[rig]
        n = len(names)
        return cls(rig, rig, names, names, np.eye(n, dtype=np.float32),
                   np.zeros(n, np.float32), origin=f"identity({rig})")

    def apply(self, weights: np.ndarray) -> np.ndarray:
        """Map weights in canonical source order ([S] or [T, S]) to target order."""
        x = np.asarray(weights, dtype=np.float32)
        if x.shape[-1] != len(self.source_names):
            raise ValueError(f"map {self.origin}: expected {len(self.source_names)} source "
                             f"weights ({self.source_rig}), got {x.shape[-1]}")
        y = x @ self.matrix.T + self.bias
        if self.clamp is not None:
            y = np.clip(y, self.clamp[0], self.clamp[1])
        return y.astype(np.float32)

    def source_index(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """For input ``names``: (input positions, source positions, source names missing)."""
        key = tuple(names)
        hit = self._index_cache.get(key)
        if hit is None:
            pos = {n: i for i, n in enumerate(key)}
            src, dst, missing = [], [], []
            for j, name in enumerate(self.source_names):
                if name in pos:
                    src.append(pos[name])
                    dst.append(j)
                elif self.matrix[:, j].any():
                    missing.append(name)
            hit = (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), tuple(missing))
            self._index_cache[key] = hit
        return hit

    def apply_named(self, weights: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
        """Map weights given with their ``names``; returns (target weights, missing sources)."""
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if len(names) != w.size:
            raise ValueError(f"map {self.origin}: {w.size} weights but {len(names)} names")
        src, dst, missing = self.source_index(names)
        x = np.zeros(len(self.source_names), dtype=np.float32)
        x[dst] = w[src]
        return self.apply(x), missing


def _names(doc: Mapping[str, Any], key: str, rig: str, origin: str) -> tuple[str, ...]:
    if key in doc:
        names = doc[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MapFileError(f"{origin}: {key} should be a list of strings")
        return tuple(names)
    if rig not in RIGS:
        raise MapFileError(f"{origin}: rig {rig!r} is not known {sorted(RIGS)}; give {key}")
    return RIGS[rig]


def linear_map_from_dict(doc: Mapping[str, Any], origin: str = "<dict>") -> LinearMap:
    """Build a :class:`LinearMap` from a parsed map document (see module docstring)."""
    if not isinstance(doc, Mapping):
        raise MapFileError(f"{origin}: expected a mapping, got {type(doc).__name__}")
    for key in ("source_rig", "target_rig"):
        if not isinstance(doc.get(key), str):
            raise MapFileError(f"{origin}: field {key!r} missing or not a string")
    src = _names(doc, "source_names", doc["source_rig"], origin)
    dst = _names(doc, "target_names", doc["target_rig"], origin)
    clamp = doc.get("clamp")
    if clamp is not None:
        if not (isinstance(clamp, list) and len(clamp) == 2 and clamp[0] <= clamp[1]):
            raise MapFileError(f"{origin}: clamp should be [low, high], got {clamp!r}")
        clamp = (float(clamp[0]), float(clamp[1]))
    if "matrix" in doc:
        matrix = np.asarray(doc["matrix"], dtype=np.float32)
        bias = np.asarray(doc.get("bias", [0.0] * len(dst)), dtype=np.float32)
    elif "targets" in doc:
        matrix = np.zeros((len(dst), len(src)), dtype=np.float32)
        bias = np.zeros(len(dst), dtype=np.float32)
        t_pos = {n: i for i, n in enumerate(dst)}
        s_pos = {n: i for i, n in enumerate(src)}
        for target, spec in (doc["targets"] or {}).items():
            if target not in t_pos:
                raise MapFileError(f"{origin}: targets.{target}: not a target name of "
                                   f"{doc['target_rig']!r}")
            spec = spec or {}
            if not isinstance(spec, Mapping):
                raise MapFileError(f"{origin}: targets.{target}: expected {{terms:, bias:}}")
            bias[t_pos[target]] = float(spec.get("bias", 0.0))
            for source, gain in (spec.get("terms") or {}).items():
                if source not in s_pos:
                    raise MapFileError(f"{origin}: targets.{target}.terms.{source}: not a source "
                                       f"name of {doc['source_rig']!r}")
                matrix[t_pos[target], s_pos[source]] = float(gain)
    else:
        raise MapFileError(f"{origin}: needs either 'matrix' (+ 'bias') or 'targets'")
    return LinearMap(doc["source_rig"], doc["target_rig"], src, dst, matrix, bias,
                     clamp=clamp, origin=origin)


def read_map_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML document of a map file (rig map, head joint map).

    ``FileNotFoundError`` (``"<what> not found: <path>"``) when it is missing and
    :class:`MapFileError` naming the file when it is not valid YAML; checking the document's
    contents is left to the caller's ``*_from_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MapFileError(f"{path}: not valid YAML: {exc}") from None


def load_linear_map(path: str | Path) -> LinearMap:
    """Read a map file; raises ``FileNotFoundError``/:class:`MapFileError` naming the file."""
    return linear_map_from_dict(read_map_yaml(path, "rig map file"), origin=str(Path(path)))
