"""Checkpoints must produce finite output (issue 20, item 5): a checkpoint with a NaN weight,
or finite weights whose output overflows, is refused by every loader with a message naming the
file and the first bad tensor; ``infer`` writes nothing, the node does not start."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from dualtalk_core.cli import main as dualtalk
from dualtalk_core.model.checkpoint import load_checkpoint, save_checkpoint
from dualtalk_core.model.sanity import (NonFiniteModelError, check_finite_output,
                                        check_finite_weights, first_nonfinite_tensor)

from metrics_helpers import synth_root  # noqa: F401  (fixture)
from ros_helpers import entry_point, ros_env

BAD_TENSOR = "synthesis_module.blendshape_predictor.weight"


def _broken_checkpoint(tiny_checkpoint, path, how: str):
    model, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        w = dict(model.named_parameters())[BAD_TENSOR]
        if how == "nan":
            w[3, 1] = float("nan")
        else:   # finite weights whose output overflows float32
            w.fill_(3e38)
    return save_checkpoint(path, model)


@pytest.fixture(scope="module")
def nan_checkpoint(tiny_checkpoint, tmp_path_factory):
    return _broken_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("nan") / "nan.pt", "nan")


def test_first_nonfinite_tensor_names_it():
    ok = {"a": torch.zeros(3), "b": torch.arange(4)}
    assert first_nonfinite_tensor(ok) is None
    bad = {"a": torch.zeros(3), "b": torch.tensor([1.0, float("inf"), float("nan")])}
    assert first_nonfinite_tensor(bad) == ("b", 2, 3)


def test_load_refuses_nan_weights_naming_file_and_tensor(nan_checkpoint):
    with pytest.raises(NonFiniteModelError, match=f"nan.pt.*{BAD_TENSOR}.*1 of"):
        load_checkpoint(nan_checkpoint)


def test_load_refuses_finite_weights_with_nonfinite_output(tiny_checkpoint, tmp_path):
    path = _broken_checkpoint(tiny_checkpoint, tmp_path / "overflow.pt", "overflow")
    model, _ = load_checkpoint(path, check=False)     # opt-out exists for inspection tools
    check_finite_weights(model, str(path))            # every weight is finite ...
    with pytest.raises(NonFiniteModelError, match="overflow.pt.*warm-up forward"):
        check_finite_output(model, str(path))         # ... but the output is not
    with pytest.raises(NonFiniteModelError, match="overflow.pt"):
        load_checkpoint(path)


def test_infer_refuses_and_writes_nothing(nan_checkpoint, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    np.save(tmp_path / "m.npy", np.zeros((25, 56), np.float32))
    out = tmp_path / "pred.npy"
    rc = dualtalk(["infer", "--checkpoint", str(nan_checkpoint), "--self-audio", str(wav),
                   "--partner-audio", str(wav), "--partner-motion", str(tmp_path / "m.npy"),
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "nan.pt" in err and BAD_TENSOR in err
    assert not out.exists()


def test_evaluate_refuses(nan_checkpoint, synth_root, capsys):
    rc = dualtalk(["evaluate", "--checkpoint", str(nan_checkpoint), "--data", str(synth_root),
                   "--baselines", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and BAD_TENSOR in err


@pytest.mark.ros
def test_node_refuses_to_start(nan_checkpoint):
    proc = subprocess.run([entry_point("dualtalk_node"), "--ros-args", "-p",
                           f"checkpoint:={nan_checkpoint}"], env=ros_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert BAD_TENSOR in proc.stderr + proc.stdout and "nan.pt" in proc.stderr + proc.stdout
