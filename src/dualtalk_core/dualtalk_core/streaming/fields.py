"""Settings as dataclass fields that carry their own description, range and run-time rule.

Why: the streaming settings reach the engine from three places (the preset registry, a YAML
file, ROS parameters).  When each place keeps its own copy of names, ranges and help texts they
drift.  Here every setting is declared once with :func:`setting`; validation
(:func:`check_fields`), the ROS parameter declarations (``dualtalk_ros.params``) and the README
tables all read the same metadata.

Metadata keys: ``description`` (text), ``low`` / ``high`` (inclusive range for numbers),
``choices`` (allowed strings), ``dynamic`` (may change while running; everything else is fixed
at start-up and declared read-only), ``optional`` (``None`` is a meaningful value: "unset",
whose meaning the description gives; never a magic number).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import Field, field
from typing import Any, Iterator

_TYPES = {"float": float, "int": int, "str": str, "bool": bool}


def setting(default: Any, description: str, *, low: float | None = None,
            high: float | None = None, choices: tuple[str, ...] | None = None,
            dynamic: bool = False) -> Any:
    """A dataclass field with its description, range / choices and run-time rule."""
    meta = {"description": description, "low": low, "high": high, "choices": choices,
            "dynamic": dynamic, "optional": default is None}
    return field(default=default, metadata=meta)


def value_type(f: Field) -> type:
    """The Python type of a :func:`setting` field (``float | None`` -> ``float``)."""
    name = str(f.type).replace(" ", "").split("|")[0]
    if name not in _TYPES:
        raise TypeError(f"field {f.name}: settings must be float, int, str or bool, got {f.type}")
    return _TYPES[name]


def settings_fields(cls_or_obj: Any) -> Iterator[Field]:
    """The fields declared with :func:`setting` (those with a description)."""
    for f in dataclasses.fields(cls_or_obj):
        if "description" in f.metadata:
            yield f


def allowed_text(f: Field) -> str:
    """Human text of what a field accepts, e.g. ``a number in [0.04, 10]``."""
    m, kind = f.metadata, value_type(f)
    if m.get("choices"):
        text = f"one of {list(m['choices'])}"
    elif kind in (int, float):
        noun = "an integer" if kind is int else "a number"
        low = "-inf" if m.get("low") is None else f"{m['low']:g}"
        high = "inf" if m.get("high") is None else f"{m['high']:g}"
        text = f"{noun} in [{low}, {high}]"
    else:
        text = f"a {kind.__name__}"
    return text + (" or unset (null)" if m.get("optional") else "")


def check_fields(obj: Any) -> None:
    """Type, range and choice checks of every :func:`setting` field of ``obj``.

    Raises ``ValueError("<Class>.<field>: expected <allowed>, got <value>")``; an int given for
    a float field becomes a float (YAML ``hop_s: 1``)."""
    cls = type(obj).__name__
    for f in settings_fields(obj):
        value, kind, m = getattr(obj, f.name), value_type(f), f.metadata
        if value is None and m.get("optional"):
            continue
        ok = _type_ok(value, kind)
        if ok and kind is float:
            value = float(value)
            ok = math.isfinite(value)
        if ok and kind in (int, float):
            ok = (m.get("low") is None or value >= m["low"]) and (
                m.get("high") is None or value <= m["high"])
        if ok and m.get("choices"):
            ok = value in m["choices"]
        if not ok:
            raise ValueError(f"{cls}.{f.name}: expected {allowed_text(f)}, got {value!r}")
        setattr(obj, f.name, value)


def _type_ok(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)
