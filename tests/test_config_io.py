"""YamlConfigMixin: the dict/YAML plumbing every config dataclass shares behaves the same way."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from dualtalk_core.model.config import DualTalkConfig, get_preset
from dualtalk_core.config_io import YamlConfigMixin
from dualtalk_core.streaming.engine import StreamingConfig
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.vad import VadConfig


@dataclass
class _Small(YamlConfigMixin):
    rate: float = 1.0
    name: str = "x"

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"_Small.rate: expected > 0, got {self.rate!r}")


@pytest.mark.parametrize("cls,noun", [(DualTalkConfig, "field"), (StreamingConfig, "key"),
                                      (TrainConfig, "key"), (VadConfig, "key"), (_Small, "key")])
def test_unknown_keys_and_non_mappings_are_named(cls, noun):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: unknown {noun}\(s\) \['zz_typo'\]; "
                                         rf"known {noun}s: \[.+\]$"):
        cls.from_dict({"zz_typo": 1})
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: expected a mapping, got list$"):
        cls.from_dict([1, 2])


def test_round_trip_and_copies(tmp_path):
    cfg = _Small(rate=2.5, name="y")
    d = cfg.to_dict()
    assert d == {"rate": 2.5, "name": "y"} and _Small.from_dict(d) == cfg
    assert cfg.to_yaml().splitlines() == ["rate: 2.5", "name: y"]  # field order kept
    cfg.to_yaml(tmp_path / "s.yaml")
    assert _Small.from_yaml(tmp_path / "s.yaml") == cfg
    vad = VadConfig(on_db=-30.0)
    vad.to_yaml(tmp_path / "v.yaml")
    assert VadConfig.from_yaml(tmp_path / "v.yaml") == vad
    nested = {"vad": {"on_db": -30}}
    StreamingConfig.from_dict(nested)
    assert nested == {"vad": {"on_db": -30}}  # the caller's dict is not consumed or changed


def test_from_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.yaml"):
        _Small.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="training config not found"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rate: -1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: _Small.rate: expected > 0"):
        _Small.from_yaml(bad)


def test_sections_and_yaml_text(tmp_path):
    p = tmp_path / "node.yaml"
    p.write_text("streaming:\n  hop_s: 0.4\n  crossfade_s: 0.2\nother: 1\n")
    assert StreamingConfig.from_yaml(p).hop_s == 0.4
    tiny = get_preset("tiny")
    assert DualTalkConfig.from_yaml(tiny.to_yaml()) == tiny            # YAML text
    (tmp_path / "run.yaml").write_text("model:\n  d_model: 64\nlr: 1\n")
    assert DualTalkConfig.from_yaml(tmp_path / "run.yaml").d_model == 64  # `model:` section
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['model'\]"):
        DualTalkConfig.from_yaml("d_model: 64\nmodel: {d_model: 32}\n")  # a config is not unwrapped
