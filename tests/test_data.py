"""Data loader: real DualTalk files, synthetic data, every bad-input case, training windows."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from dualtalk_core import layout
from dualtalk_core.data.dataset import (
    BAD_MOTION, LENGTH_MISMATCH, MISSING_FIELD, MISSING_PARTNER, MISSING_PARTNER_MOTION,
    MISSING_TARGET, NON_FINITE, NOT_MONO, UNREADABLE_WAV, WRONG_SAMPLE_RATE, ClipSide,
    WindowDataset, load_split, split_by_clip,
)
from dualtalk_core.signals import speech_energy_per_frame

from data_helpers import copy_clip, make_synth, rewrite_npz, run_module_main

SAMPLE_CLIP = "xkHwlcDSOjc_sub_video_109_000"


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_synth(root, pairs=5, seed=11, splits="train=0.6,test=0.2,ood=0.2")
    return root


# ------------------------------------------------------------------------------ real sample
def test_sample_default_reports_missing_speaker2_motion(sample_dir):
    sides, report = load_split(sample_dir, None)
    assert sides == []
    assert report.skipped == 2 and report.loaded == 0
    counts = report.counts()
    assert counts == {MISSING_PARTNER_MOTION: 1, MISSING_TARGET: 1}
    for issue in report.issues:
        assert issue.path.endswith(f"{SAMPLE_CLIP}_speaker2.npz")
    text = report.format()
    assert "missing partner motion" in text and f"skipped {SAMPLE_CLIP}_speaker1" in text


def test_sample_inference_options_load_both_sides(sample_dir):
    sides, report = load_split(sample_dir, None, require_target=False,
                               allow_missing_partner_motion=True)
    by_name = {s.name: s for s in sides}
    assert set(by_name) == {f"{SAMPLE_CLIP}_speaker1", f"{SAMPLE_CLIP}_speaker2"}
    s1, s2 = by_name[f"{SAMPLE_CLIP}_speaker1"], by_name[f"{SAMPLE_CLIP}_speaker2"]
    # 479232 samples (29.952 s) -> 749 frames; the npz has 750: trimmed to the shorter
    assert s1.self_audio.shape == (479232,) and s1.self_audio.dtype == np.float32
    assert s1.num_frames == 749 == layout.num_frames_for_samples(s1.self_audio.size)
    assert s1.partner_motion_is_zeros and not s1.partner_motion.any()
    with np.load(sample_dir / f"{SAMPLE_CLIP}_speaker1.npz") as z:
        assert np.array_equal(s1.target_motion, layout.flame56_from_npz(z)[:749])
        # speaker2's partner motion is speaker1's real motion
        assert np.array_equal(s2.partner_motion, layout.flame56_from_npz(z)[:749])
    assert s2.target_motion is None
    audio2, _ = sf.read(sample_dir / f"{SAMPLE_CLIP}_speaker2.wav", dtype="float32")
    assert np.array_equal(s1.partner_audio, audio2) and np.array_equal(s2.self_audio, audio2)
    # substitutions are still reported
    assert all("filled with zeros" in i.action or "without target" in i.action
               for i in report.issues)


# ------------------------------------------------------------------------------ synthetic
def test_synthetic_split_loads_both_directions(synth_root):
    sides, report = load_split(synth_root, "train")
    assert report.issues == [] and report.loaded == len(sides) == 2 * report.clips == 6
    for s in sides:
        assert s.target_motion.shape == s.partner_motion.shape == (s.num_frames, layout.DIM)
        assert s.self_audio.size == s.partner_audio.size
        assert layout.num_frames_for_samples(s.self_audio.size) == s.num_frames
    pairs = {}
    for s in sides:
        pairs.setdefault(s.clip, {})[s.speaker] = s
    for both in pairs.values():  # one side's partner is the other side's self
        assert np.array_equal(both[1].partner_motion, both[2].target_motion)
        assert np.array_equal(both[1].partner_audio, both[2].self_audio)


def test_split_by_clip_keeps_pairs_together(synth_root):
    sides, _ = load_split(synth_root, "train")
    rest, held = split_by_clip(sides, 0.34, seed=1)
    assert held and rest
    assert not ({s.clip for s in rest} & {s.clip for s in held})
    assert len(rest) + len(held) == len(sides)


def _good_and_bad_folder(synth_root, tmp_path):
    """2 good clips, plus one broken copy per bad-input case; returns (folder, {case: clip})."""
    src = synth_root / "train"
    clips = sorted({p.name.rsplit("_speaker", 1)[0] for p in src.glob("*.wav")})
    d = tmp_path / "train"
    for c in clips[:2]:
        copy_clip(src, d, c)
    cases = {}

    def clone(case):
        name = f"bad_{case}"
        copy_clip(src, d, clips[2], name)
        cases[case] = name
        return name

    name = clone("partner")  # no speaker2 files at all
    (d / f"{name}_speaker2.wav").unlink()
    (d / f"{name}_speaker2.npz").unlink()
    name = clone("unreadable")
    (d / f"{name}_speaker1.wav").write_bytes(b"RIFF garbage, not a wav")
    name = clone("rate")
    audio, _ = sf.read(d / f"{name}_speaker2.wav", dtype="float32")
    sf.write(d / f"{name}_speaker2.wav", audio, 22050, subtype="FLOAT")
    name = clone("stereo")
    sf.write(d / f"{name}_speaker2.wav", np.stack([audio, audio], 1), 16000, subtype="FLOAT")
    name = clone("nan_wav")
    bad = audio.copy()
    bad[100] = np.nan
    sf.write(d / f"{name}_speaker1.wav", bad, 16000, subtype="FLOAT")
    name = clone("nan_npz")
    with np.load(d / f"{name}_speaker1.npz") as z:
        exp = z["exp"].copy()
    exp[3, 7] = np.nan
    rewrite_npz(d / f"{name}_speaker1.npz", exp=exp)
    name = clone("length")
    with np.load(d / f"{name}_speaker2.npz") as z:
        exp, pose = z["exp"], z["pose"]
    rewrite_npz(d / f"{name}_speaker2.npz", exp=np.concatenate([exp, exp[:5]]),
                pose=np.concatenate([pose, pose[:5]]))
    name = clone("wav_length")
    sf.write(d / f"{name}_speaker2.wav", audio[:-2000], 16000, subtype="FLOAT")
    name = clone("field")
    rewrite_npz(d / f"{name}_speaker1.npz", pose=None)
    return tmp_path, clips[:2], cases


def test_every_bad_input_is_reported_and_no_good_clip_is_lost(synth_root, tmp_path):
    root, good, cases = _good_and_bad_folder(synth_root, tmp_path)
    sides, report = load_split(root, "train")
    loaded = {s.name for s in sides}
    for clip in good:  # nothing good lost
        assert {f"{clip}_speaker1", f"{clip}_speaker2"} <= loaded
    assert not any(s.clip.startswith("bad_") for s in sides)
    by_path = {}
    for issue in report.issues:
        by_path.setdefault(issue.path.rsplit("/", 1)[-1], []).append(issue)

    def one(file, reason, *words):
        issues = by_path.get(file)
        assert issues, f"no issue for {file}; got {sorted(by_path)}"
        assert [i.reason for i in issues] == [reason], issues
        for w in words:
            assert w in issues[0].detail or w in issues[0].action, (w, issues[0])

    one(f"{cases['partner']}_speaker2.wav", MISSING_PARTNER, "file not found",
        f"skipped {cases['partner']}_speaker1")
    one(f"{cases['unreadable']}_speaker1.wav", UNREADABLE_WAV, "speaker1", "speaker2")
    one(f"{cases['rate']}_speaker2.wav", WRONG_SAMPLE_RATE, "expected 16000 Hz, got 22050 Hz")
    one(f"{cases['stereo']}_speaker2.wav", NOT_MONO, "expected 1 channel, got 2")
    one(f"{cases['nan_wav']}_speaker1.wav", NON_FINITE, "1 NaN/inf samples")
    one(f"{cases['nan_npz']}_speaker1.npz", NON_FINITE, "first at frame 3")
    one(f"{cases['length']}_speaker2.npz", LENGTH_MISMATCH, "one frame apart",
        f"{cases['length']}_speaker1", f"{cases['length']}_speaker2")
    one(f"{cases['wav_length']}_speaker2.wav", LENGTH_MISMATCH, "more than one frame apart")
    one(f"{cases['field']}_speaker1.npz", MISSING_FIELD, "'pose'")
    # a broken file used by both sides costs both, and is reported once
    assert report.skipped == 2 * len(cases) - 1  # the partner-less clip has one side only
    assert report.counts()[LENGTH_MISMATCH] == 2  # one per bad file, not per side
    summary = report.summary()
    assert f"loaded {len(sides)} clip-sides" in summary and f"skipped {report.skipped}" in summary


def test_data_check_command(synth_root, tmp_path):
    from dualtalk_core.commands import data as data_cmd

    code, out = run_module_main(data_cmd, ["check", str(synth_root)])
    assert code == 0
    assert "[train]" in out and "[test]" in out and "[ood]" in out and "0 issues" in out
    root, _, _ = _good_and_bad_folder(synth_root, tmp_path)
    code, out = run_module_main(data_cmd, ["check", str(root), "--split", "train"])
    assert code == 0 and "wrong sample rate" in out and "missing partner" in out
    only_bad = tmp_path / "only_bad" / "train"
    only_bad.mkdir(parents=True)
    (only_bad / "x_speaker1.wav").write_bytes(b"nope")
    (only_bad / "x_speaker2.wav").write_bytes(b"nope")
    code, out = run_module_main(data_cmd, ["check", str(tmp_path / "only_bad")])
    assert code != 0 and "unreadable wav" in out


def test_missing_folder_raises_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_split(tmp_path, "train")


def test_arkit61_rig(synth_root, tmp_path):
    src = synth_root / "train"
    clip = sorted(p.name.rsplit("_speaker", 1)[0] for p in src.glob("*_speaker1.wav"))[0]
    d = tmp_path / "test"
    copy_clip(src, d, clip, suffixes=(".wav",))
    copy_clip(src, d, clip, "wrongdim", suffixes=(".wav",))
    t = layout.num_frames_for_samples(sf.info(str(src / f"{clip}_speaker1.wav")).frames)
    rng = np.random.default_rng(0)
    arrays = {spk: rng.random((t, 61), dtype=np.float32) for spk in (1, 2)}
    for spk in (1, 2):
        np.save(d / f"{clip}_speaker{spk}.npy", arrays[spk])
        np.save(d / f"wrongdim_speaker{spk}.npy", arrays[spk][:, :52])
    sides, report = load_split(tmp_path, "test", rig="arkit61")
    assert {s.name for s in sides} == {f"{clip}_speaker1", f"{clip}_speaker2"}
    s1 = next(s for s in sides if s.speaker == 1)
    assert s1.rig == "arkit61" and s1.target_motion.shape == (t, 61)
    assert np.array_equal(s1.partner_motion, arrays[2])
    assert report.counts() == {BAD_MOTION: 2}
    assert "expected [T, 61]" in report.issues[0].detail
    windows = WindowDataset(sides, window=50)
    assert windows[0]["target_motion"].shape == (50, 61)


# ------------------------------------------------------------------------------ windows
def _ramp_side(frames: int, name: str = "ramp", dim: int = layout.DIM) -> ClipSide:
    n = frames * layout.SAMPLES_PER_FRAME - 100
    audio = np.arange(n, dtype=np.float32)
    motion = np.arange(frames * dim, dtype=np.float32).reshape(frames, dim)
    return ClipSide(name, 1, audio, -audio, motion + 0.5, motion)


def test_windows_are_independent_copies_not_the_last_window():
    """The released loader's bug: every window of a file was its LAST window. Not here."""
    side = _ramp_side(130)
    ds = WindowDataset([side], window=40, stride=20)
    starts = [ds.window_info(i)[1] for i in range(len(ds))]
    assert starts == [0, 20, 40, 60, 80, 90]  # plus a final window ending at the last frame
    items = [ds[i] for i in range(len(ds))]
    last = items[-1]["target_motion"]
    assert sum(np.array_equal(it["target_motion"], last) for it in items) == 1
    spf = layout.SAMPLES_PER_FRAME
    for it, s in zip(items, starts):
        assert np.array_equal(it["target_motion"], side.target_motion[s:s + 40])
        assert np.array_equal(it["partner_motion"], side.partner_motion[s:s + 40])
        seg = side.self_audio[s * spf:(s + 40) * spf]
        assert np.array_equal(it["self_audio"][:seg.size], seg)
        assert it["self_audio"].size == 40 * spf and it["mask"].all()
    # the last window's audio is zero-padded past the end of the clip's samples
    assert not items[-1]["self_audio"][-100:].any()
    # no shared memory: writing one window changes neither the others nor the clip
    before = side.target_motion.copy()
    items[0]["target_motion"][:] = -1
    again = ds[0]["target_motion"]
    assert np.array_equal(again, before[:40]) and np.array_equal(side.target_motion, before)
    assert not np.shares_memory(ds[0]["target_motion"], ds[0]["target_motion"])


def test_short_clip_is_padded_with_mask_and_default_window():
    ds = WindowDataset([_ramp_side(150), _ramp_side(450, "long")])
    assert ds.window == 200
    infos = [ds.window_info(i) for i in range(len(ds))]
    assert infos == [("ramp_speaker1", 0), ("long_speaker1", 0), ("long_speaker1", 200),
                     ("long_speaker1", 250)]
    short = ds[0]
    assert short["mask"].sum() == 150 and not short["mask"][150:].any()
    assert not short["target_motion"][150:].any()
    assert len(WindowDataset([_ramp_side(150)], pad_short=False)) == 0
    with pytest.raises(ValueError, match="stride"):
        WindowDataset([_ramp_side(150)], stride=0)


def test_windows_batch_through_a_torch_dataloader(synth_root):
    import torch
    from torch.utils.data import DataLoader

    sides, _ = load_split(synth_root, "train")
    ds = WindowDataset(sides, window=100, stride=50)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["self_audio"].shape == (4, 100 * layout.SAMPLES_PER_FRAME)
    assert batch["target_motion"].shape == (4, 100, layout.DIM)
    assert batch["mask"].dtype == torch.bool
    assert not torch.equal(batch["target_motion"][0], batch["target_motion"][1])


def test_speech_energy_per_frame():
    spf = layout.SAMPLES_PER_FRAME
    audio = np.zeros(10 * spf, np.float32)
    audio[3 * spf:5 * spf] = 0.5
    env = speech_energy_per_frame(audio, smooth_frames=0)
    assert env.shape == (10,)
    assert np.allclose(env[[3, 4]], 0.5) and not env[[0, 1, 2, 5, 9]].any()
    assert speech_energy_per_frame(audio[:-10]).shape == (10,)
