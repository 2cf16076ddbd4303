"""Declaring node parameters from one spec, and reading ROS parameter YAML files.

Every node lists its parameters once as :class:`Param` entries (name, default, description,
range/choices); :func:`declare_params` declares them all with a ``ParameterDescriptor`` (so
``ros2 param describe`` shows the text and ranges) and returns the validated values as a dict.
Settings kept in a dataclass (``dualtalk_core.streaming.fields.setting``) become ``Param``
entries with :func:`params_from_dataclass`: names, types, ranges, descriptions and read-only
flags come from the field metadata, so the YAML, the parameters and the code cannot drift.
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

    @property
    def is_float(self) -> bool:
        return self.type == Parameter.Type.DOUBLE or (
            isinstance(self.default, float) and self.type is None)

    def allowed(self) -> str:
        """What the parameter accepts, for error messages."""
        if self.choices:
            return f"one of {list(self.choices)}"
        if self.low is not None or self.high is not None:
            return f"a value in [{self.low}, {self.high}]"
        kind = self.type.name.lower() if self.type is not None else type(self.default).__name__
        return f"a {kind}"

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        desc = ParameterDescriptor(name=self.name, description=text, read_only=self.read_only)
        is_int = self.type == Parameter.Type.INTEGER or (
            isinstance(self.default, int) and self.type is None)
        if self.low is not None or self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif is_int and not isinstance(self.default, float):
                desc.integer_range = [IntegerRange(
                    from_value=int(self.low if self.low is not None else -(2 ** 62)),
                    to_value=int(self.high if self.high is not None else 2 ** 62), step=0)]
            elif self.is_float:
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
            raise ParamError(f"node {node.get_name()!r}: parameter {spec.name!r}: {exc} "
                             f"(expected {spec.allowed()})") from exc
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


def refuse_removed_params(node: Node, removed: Mapping[str, str],
                          extra: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ParamError` when a parameter file or override sets a removed parameter.

    ``removed`` maps each old parameter (``joint_states_topic``) to the topic it used to name
    (``agent/joint_states``).  rclpy ignores values for parameters a node never declares, so
    without this an old YAML line that renamed a topic would silently stop renaming it; the
    error says which remap does the same job, for ``ros2 run``/``ros2 launch`` and the bring-up.
    ``extra`` adds a sentence for one parameter (e.g. a flag that replaced "empty = off").
    """
    given = getattr(node, "_parameter_overrides", {}) or {}   # params files + overrides
    for name, topic in removed.items():
        if name not in given:
            continue
        value = given[name].value
        target = value if isinstance(value, str) and value else "NEW_NAME"
        raise ParamError(
            f"node {node.get_name()!r}: parameter {name!r} (= {value!r}) was removed: topic "
            f"names are fixed (dualtalk_ros.topics) and renamed by ROS remapping: "
            f"`--ros-args -r {topic}:={target}`, launch `remappings=[({topic!r}, "
            f"{target!r})]`, bring-up `--remap {node.get_name()}:{topic}:={target}`; delete "
            f"the parameter{(extra or {}).get(name, '')}")


_PARAM_TYPES = {float: Parameter.Type.DOUBLE, int: Parameter.Type.INTEGER,
                str: Parameter.Type.STRING, bool: Parameter.Type.BOOL}


def params_from_dataclass(cls: type, defaults: Mapping[str, Any] | None = None) -> tuple[Param, ...]:
    """One :class:`Param` per ``setting`` field of ``cls``: its description, range / choices
    and type; read-only unless the field is ``dynamic``.  ``defaults`` replaces field defaults
    (e.g. values resolved from a preset before declaration).  A ``None`` default declares the
    parameter typed but unset (an explicit "unset", read back as ``None``)."""
    from dualtalk_core.streaming.fields import settings_fields, value_type

    out = []
    for f in settings_fields(cls):
        m = f.metadata
        default = (defaults or {}).get(f.name, f.default)
        kind = value_type(f)
        if kind is float and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        text = m["description"] + ("" if m["dynamic"] else " [read-only: fixed at start-up]")
        out.append(Param(f.name, default, text, low=m["low"], high=m["high"],
                         choices=m["choices"], type=_PARAM_TYPES[kind],
                         read_only=not m["dynamic"]))
    return tuple(out)


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
    floats = {s.name for s in specs or () if s.is_float}
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
