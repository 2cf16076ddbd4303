"""YamlConfigMixin: the dict/YAML plumbing shared by the project's config dataclasses.

``DualTalkConfig``, ``TrainConfig``, ``StreamingConfig`` and ``VadConfig`` all load from plain
dicts and YAML files written by people, so they all need the same guard: an unknown key (a typo)
must fail at load time with a message naming it and the known keys, rather than be silently
ignored. Keeping that in one place keeps the error wording and the file handling consistent.

A class mixes this in next to ``@dataclass`` and tunes it with class attributes / hooks:

- ``_KEY_NOUN``: the word used in the unknown-key message (``"key"``; ``DualTalkConfig`` says
  ``"field"``) -> ``"<Class>: unknown key(s) [...]; known keys: [...]"``.
- ``_YAML_WHAT``: what a missing file is called in ``FileNotFoundError`` messages.
- ``_coerce_values(data)``: convert raw values before the constructor runs (e.g. to float).
- ``_YAML_SECTION``: ``from_yaml`` also accepts a document holding this config under that key
  (``_unwrap_yaml(data)`` is the hook behind it).
- ``_read_yaml_source(source)``: how ``from_yaml`` turns its argument into YAML text.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml


class YamlConfigMixin:
    """``to_dict`` / ``from_dict`` / ``to_yaml`` / ``from_yaml`` for a validating dataclass."""

    _KEY_NOUN: ClassVar[str] = "key"
    _YAML_WHAT: ClassVar[str] = "config file"
    _YAML_SECTION: ClassVar[str | None] = None

    # ------------------------------------------------------------------ dict
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (nested dataclasses become dicts); safe to mutate."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def _coerce_values(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: convert raw values before construction (default: unchanged)."""
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Build from a mapping; unknown keys raise ``ValueError`` naming them + the known."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            noun = cls._KEY_NOUN
            raise ValueError(f"{cls.__name__}: unknown {noun}(s) {unknown}; known {noun}s: "
                             f"{sorted(known)}")
        return cls(**cls._coerce_values(copy.deepcopy(dict(data))))

    # ------------------------------------------------------------------ YAML
    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of the config (field order kept); also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def _read_yaml_source(cls, source: str | Path) -> tuple[str, Path | None]:
        """Hook: ``(yaml_text, file_path_or_None)`` for ``from_yaml``'s argument (a file path)."""
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{cls._YAML_WHAT} not found: {path}")
        return path.read_text(), path

    @classmethod
    def _unwrap_yaml(cls, data: Any) -> Any:
        """Hook: this config's part of the parsed YAML document: its ``_YAML_SECTION`` mapping
        when the class names one and the document has it, else the whole document."""
        section = cls._YAML_SECTION
        if section and isinstance(data, Mapping) and isinstance(data.get(section), Mapping):
            return data[section]
        return data

    @classmethod
    def from_yaml(cls, source: str | Path):
        """Load from a YAML file (``_read_yaml_source`` may accept more, e.g. YAML text); a
        ``ValueError`` from validation is prefixed with the file it came from."""
        text, path = cls._read_yaml_source(source)
        data = cls._unwrap_yaml(yaml.safe_load(text) or {})
        if path is None:
            return cls.from_dict(data)
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
