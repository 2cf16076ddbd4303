"""Declaring node parameters from one spec, and reading ROS parameter YAML files.

Every node lists its parameters once as :class:`Param` entries (name, default, description,
range/choices); :func:`declare_params` declares them all with a ``ParameterDescriptor`` (so
``ros2 param describe`` shows the text and ranges) and returns the validated values as a dict.
:func:`load_params_file` reads the standard ``node_name: ros__parameters: {...}`` file that
both ``ros2 launch`` and ``dualtalk-ros bringup`` use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter


class ParamError(ValueError):
    """A parameter value that is out of its range or choices (text names node, param, value)."""


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``default`` fixes the type; an empty list needs ``type`` (a ``Parameter.Type``) since
    its element type cannot be inferred. ``low``/``high`` give an inclusive range for int and
    float parameters; ``choices`` restricts strings.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    type: Parameter.Type | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        desc = ParameterDescriptor(name=self.name, description=text, read_only=self.read_only)
        if self.low is not None or self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                desc.integer_range = [IntegerRange(
                    from_value=int(self.low if self.low is not None else -(2 ** 62)),
                    to_value=int(self.high if self.high is not None else 2 ** 62), step=0)]
            elif isinstance(self.default, float):
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low if self.low is not None else -1e300),
                    to_value=float(self.high if self.high is not None else 1e300), step=0.0)]
        return desc


def declare_params(node: Node, specs: Iterable[Param]) -> dict[str, Any]:
    """Declare every spec on ``node`` and return ``{name: value}`` after range/choice checks.

    Raises :class:`ParamError` naming the node, the parameter, the allowed values and the value
    given, so a bad YAML entry is a clear start-up error instead of odd behaviour later.
    """
    values: dict[str, Any] = {}
    for spec in specs:
        initial = spec.type if (spec.type is not None and spec.default in ([], None)) else spec.default
        try:
            node.declare_parameter(spec.name, initial, spec.descriptor())
        except Exception as exc:  # rclpy raises several types for bad overrides
            raise ParamError(f"node {node.get_name()!r}: parameter {spec.name!r}: {exc}") from exc
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = spec.default
        if value is None:
            value = spec.default
        if spec.choices and value not in spec.choices:
            raise ParamError(f"node {node.get_name()!r}: parameter {spec.name!r}: expected one "
                             f"of {list(spec.choices)}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (spec.low is not None and value < spec.low) or (
                    spec.high is not None and value > spec.high):
                raise ParamError(f"node {node.get_name()!r}: parameter {spec.name!r}: expected "
                                 f"[{spec.low}, {spec.high}], got {value!r}")
        if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
            value = list(value)
        values[spec.name] = value
    return values


def _flatten(prefix: str, tree: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            _flatten(name, value, out)
        else:
            out[name] = value


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a ROS 2 parameter file -> ``{node_name: {param.dotted.name: value}}``.

    Accepts ``node:``, ``/node:``, ``/ns/node:`` and the ``/**`` wildcard as keys (the wildcard
    entry is returned under ``"/**"``). Raises ``ValueError`` naming the file and the key when the
    structure is not ``node: {ros__parameters: {...}}``.
    """
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"parameter file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, Mapping):
        raise ValueError(f"{path}: expected a mapping of node names, got {type(tree).__name__}")
    result: dict[str, dict[str, Any]] = {}
    for key, body in tree.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ValueError(f"{path}: entry {key!r}: expected 'ros__parameters:' under the node "
                             f"name, got {sorted(body) if isinstance(body, Mapping) else body!r}")
        name = str(key) if str(key) == "/**" else str(key).rstrip("/").split("/")[-1]
        flat: dict[str, Any] = {}
        _flatten("", body["ros__parameters"] or {}, flat)
        result.setdefault(name, {}).update(flat)
    return result


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["node.param=value", ...]`` -> ``{node: {param: value}}``; values parse as YAML.

    The first dot separates the node name, so ``dualtalk_node.streaming.hop_s=0.32`` sets
    ``streaming.hop_s`` of ``dualtalk_node``.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r}: expected NODE.PARAM=VALUE")
        key, raw = item.split("=", 1)
        node, param = key.split(".", 1)
        out.setdefault(node, {})[param] = yaml.safe_load(raw) if raw != "" else ""
    return out


def to_parameters(values: Mapping[str, Any],
                  specs: Iterable[Param] | None = None) -> list[Parameter]:
    """``{name: value}`` -> ``rclpy.Parameter`` list for ``Node(parameter_overrides=...)``.

    With ``specs``, an integer given for a float parameter (``hop_s: 1`` in YAML) becomes a
    float, as a reader of the file would expect, instead of a type error at declaration.
    """
    floats = {s.name for s in specs or () if isinstance(s.default, float)}
    return [Parameter(name, value=float(value) if name in floats and isinstance(value, int)
                      and not isinstance(value, bool) else value)
            for name, value in values.items()]


def config_dirs() -> list[Path]:
    """Where relative config paths are looked up: the installed package share (``ros2 launch``
    installs) and the repository's ``config/`` (venv / editable installs)."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory("dualtalk_ros")) / "config")
    except Exception:  # not installed through colcon: no ament index entry
        pass
    repo_config = Path(__file__).resolve().parents[3] / "config"
    if repo_config.is_dir():
        dirs.append(repo_config)
    return dirs


def resolve_config_path(path: str | Path) -> Path:
    """An absolute path, a path relative to the working directory, or one relative to a
    :func:`config_dirs` entry (``maps/flame56_to_arkit52.yaml``); raises ``FileNotFoundError``
    listing every place tried."""
    p = Path(path).expanduser()
    if p.is_absolute():
        if p.exists():
            return p
        raise FileNotFoundError(f"file not found: {p}")
    tried: list[Path] = []
    for cand in [Path.cwd() / p] + [d / p for d in config_dirs()] + [
            d.parent / p for d in config_dirs()]:      # "config/maps/x.yaml" style
        if cand not in tried:
            tried.append(cand)
    for cand in tried:
        if cand.exists():
            return cand
    raise FileNotFoundError(f"file {str(path)!r} not found; tried: {', '.join(map(str, tried))}")
