"""Training the live (causal) model: items carry warm-up context and lookahead input, the log-mel
statistics are set once from the training audio, and the repo's recipe trains and resumes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dualtalk_core.data.dataset import ClipSide, WindowDataset
from dualtalk_core.model.checkpoint import load_checkpoint
from dualtalk_core.training.config import TrainConfig
from dualtalk_core.training.loop import lookahead_frames, train

from data_helpers import make_synth


def _side(frames: int = 30) -> ClipSide:
    spf = 640
    ramp = np.arange(frames * spf, dtype=np.float32)
    motion = np.repeat(np.arange(frames, dtype=np.float32)[:, None], 56, axis=1)
    return ClipSide(clip="c", speaker=1, self_audio=ramp, partner_audio=-ramp,
                    partner_motion=motion, target_motion=motion + 0.5)


def test_items_with_context_and_lookahead():
    ds = WindowDataset([_side(30)], window=10, stride=10, context=4, lookahead=2)
    starts = [ds.window_info(i)[1] for i in range(len(ds))]
    assert starts == [0, 10, 20]
    cold = ds[0]                       # clip start: cold, extended to the right, all scored
    assert cold["target_motion"].shape == (14, 56) and cold["mask"].all()
    assert cold["partner_motion"].shape == (16, 56) and cold["self_audio"].size == 16 * 640
    assert cold["target_motion"][0, 0] == 0.5
    warm = ds[1]                       # mid-conversation: 4 context frames, not scored
    assert warm["target_motion"][0, 0] == 6.5 and warm["mask"].tolist() == [False] * 4 + [True] * 10
    assert warm["self_audio"][0] == 6 * 640                  # audio from the first context frame
    last = ds[2]                       # past the clip's end: zeros, not scored, no lookahead data
    assert last["mask"].tolist() == [False] * 4 + [True] * 10
    assert last["partner_motion"][-2:].sum() == 0            # lookahead past the end: zeros
    with pytest.raises(ValueError, match="context"):
        WindowDataset([_side()], window=10, context=-1)


def test_released_items_unchanged():
    plain = WindowDataset([_side(30)], window=10, stride=10)[1]
    assert plain["target_motion"].shape == (10, 56) and plain["mask"].all()
    assert plain["self_audio"].size == 10 * 640 and plain["self_audio"][0] == 10 * 640


def test_lookahead_frames_of_presets():
    assert lookahead_frames(TrainConfig(model="cpu").model_config()) == 0
    assert lookahead_frames(TrainConfig(model="live").model_config()) == 4   # 0.16 s


@pytest.mark.slow
def test_live_recipe_trains_and_sets_feature_statistics(tmp_path, repo_root):
    data = tmp_path / "data"
    make_synth(data, pairs=3, seed=4, splits="train=0.67,test=0.33", max_seconds=7,
               max_rounds=1)   # the real face scale, as the recipe
    cfg = TrainConfig.from_yaml(repo_root / "config" / "train_live.yaml")
    small = cfg.to_dict() | {"window": 50, "stride": 25, "context_frames": 25, "batch_size": 4,
                             "max_steps": 3, "val_split": "test", "progress": False}
    result = train(TrainConfig.from_dict(small), data, tmp_path / "out")
    assert result.steps == 3 and np.isfinite(result.best_val)
    model, payload = load_checkpoint(tmp_path / "out" / "last.pt")
    assert type(model).__name__ == "LiveDualTalk"
    enc = model.joint_encoder.audio_encoder1
    assert not torch.allclose(enc.feature_std, torch.ones_like(enc.feature_std))
    assert payload.get("preset") == "live"
