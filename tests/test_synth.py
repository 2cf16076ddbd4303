"""Synthetic conversations: layout, determinism, turn-taking, and the learnable motion rules,
on the legacy scale (the bundled demo model's data, kept byte for byte) and on the calibrated
real scale (the default)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from dualtalk_core import layout
from dualtalk_core.data.dataset import load_split
from dualtalk_core.data.synth import (
    MIC_NOISE_STD, MOUTH_DIMS, SMILE_DIMS, Persona, make_motion, parse_splits, split_counts,
    synthesize_dataset,
)
from dualtalk_core.signals import (jaw_energy_correlation, pearson, speaking_mask,
                                   speech_energy_per_frame)

from data_helpers import files_bytes, make_synth, run_module_main, tree_digest

# make_synth(pairs=3, seed=7, face_stats="legacy") as written before the calibrated scale existed
LEGACY_DIGEST = "49ec16774e495f9391c217cdc7c792b293428b864c35c809bbc73b9861ae7d89"


@pytest.fixture(scope="module")
def synth6(tmp_path_factory):
    """The legacy scale: its rules' hand-set sizes are what these tests pin down."""
    root = tmp_path_factory.mktemp("synth6")
    summary = synthesize_dataset(root, 6, seed=5, splits="train=0.5,test=0.5", voice="procedural",
                                 min_rounds=2, max_rounds=6, max_seconds=20, face_stats="legacy")
    return root, summary


def test_layout_and_file_formats(synth6):
    root, summary = synth6
    assert summary.pairs == 6 and len(summary.clips["train"]) == 3 == len(summary.clips["test"])
    for split, clips in summary.clips.items():
        for clip in clips:
            for spk in (1, 2):
                info = sf.info(str(root / split / f"{clip}_speaker{spk}.wav"))
                assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "FLOAT")
                assert 6.0 <= info.duration <= 20.0
                with np.load(root / split / f"{clip}_speaker{spk}.npz") as z:
                    t = z["exp"].shape[0]
                    assert z["exp"].shape == (t, 50) and z["pose"].shape == (t, 6)
                    assert z["shape"].shape == (t, 100) and z["light"].shape == (t, 9, 3)
                    assert z["exp"].dtype == np.float32
                    assert t == layout.num_frames_for_samples(info.frames)
    sides, report = load_split(root, "test")
    assert report.issues == [] and len(sides) == 6


def test_legacy_scale_is_byte_identical_to_the_data_before_calibration(tmp_path):
    make_synth(tmp_path, pairs=3, seed=7, face_stats="legacy")
    assert tree_digest(tmp_path) == LEGACY_DIGEST
    assert "face_stats" not in json.loads((tmp_path / "synth.json").read_text())


def test_same_seed_gives_byte_identical_files_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_synth(a, pairs=3, seed=7)
    make_synth(b, pairs=3, seed=7)
    make_synth(c, pairs=3, seed=8)
    fa, fb, fc = files_bytes(a), files_bytes(b), files_bytes(c)
    assert fa == fb and len(fa) == 3 * 4 + 1
    wavs_a = [v for k, v in fa.items() if k.endswith(".wav")]
    wavs_c = [v for k, v in fc.items() if k.endswith(".wav")]
    assert not set(wavs_a) & set(wavs_c)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_voice_is_deterministic_on_one_machine(tmp_path):
    make_synth(tmp_path / "a", pairs=2, seed=3, voice="espeak", max_seconds=8)
    make_synth(tmp_path / "b", pairs=2, seed=3, voice="espeak", max_seconds=8)
    assert files_bytes(tmp_path / "a") == files_bytes(tmp_path / "b")
    meta = json.loads((tmp_path / "a" / "synth.json").read_text())
    assert meta["voice"] == "espeak"
    voices = {p["voice"] for c in meta["clips"].values() for p in c["personas"]}
    assert all(v.startswith("en") for v in voices)


def test_turn_taking_has_rounds_overlaps_and_pauses(synth6):
    root, _ = synth6
    meta = json.loads((root / "synth.json").read_text())
    overlaps = pauses = 0
    for clip in meta["clips"].values():
        turns = [p for p in clip["phrases"] if not p[4]]  # [speaker, start, end, text, backch.]
        speakers = [p[0] for p in turns]
        assert {1, 2} <= set(speakers)                     # both talk
        changes = sum(a != b for a, b in zip(speakers, speakers[1:]))
        assert changes >= 1
        for prev, nxt in zip(turns, turns[1:]):
            if prev[0] != nxt[0]:
                overlaps += nxt[1] < prev[2]
                pauses += nxt[1] > prev[2] + 1600             # > 0.1 s of silence
    assert overlaps >= 1 and pauses >= 1


def test_jaw_and_mouth_follow_own_speech(synth6):
    root, _ = synth6
    sides, _ = load_split(root, "train")
    for s in sides:
        jaw = s.target_motion[:, layout.JAW.start]
        assert jaw_energy_correlation(jaw, s.self_audio) > 0.9
        env = speech_energy_per_frame(s.self_audio, s.num_frames)
        assert pearson(s.target_motion[:, 0], env) > 0.8      # mouth-related expression dim
        # the jaw is NOT driven by the partner's speech
        assert jaw_energy_correlation(jaw, s.partner_audio) < 0.5


def test_a_speaker_who_says_nothing_keeps_the_mouth_closed():
    # Regression: the envelope is normalised per clip, so a track holding only the microphone
    # noise floor used to be scaled up to "speech" and the mouth flapped with the noise.
    rng = np.random.default_rng(3)
    t = 250
    noise = rng.normal(0.0, MIC_NOISE_STD, t * layout.SAMPLES_PER_FRAME).astype(np.float32)
    persona = Persona.draw(rng)
    motion = make_motion(noise, t, persona, np.zeros(t, bool), [], rng)
    jaw = motion[:, layout.JAW.start]
    assert np.allclose(jaw, 0.02, atol=0.01)                    # closed (the rest opening)
    mouth = motion[:, [layout.EXP.start + d for d in MOUTH_DIMS]]
    offsets = np.asarray(persona.exp_offset)[list(MOUTH_DIMS)]
    assert np.abs(mouth.mean(0) - offsets).max() < 0.05       # offset + drift only
    assert mouth.std(0).max() < 0.05                          # speech moves it by ~0.3
    assert not speaking_mask(noise, t).any()                  # and no frame counts as speech


def test_listener_nods_and_smiles_after_partner_phrase_ends(synth6):
    root, _ = synth6
    meta = json.loads((root / "synth.json").read_text())
    sides, _ = load_split(root, "train")
    after, other = [], []
    smile_after, smile_other = [], []
    for s in sides:
        ends = [p[2] // layout.SAMPLES_PER_FRAME for p in meta["clips"][s.clip]["phrases"]
                if p[0] == s.partner_speaker and not p[4]]
        pitch = s.target_motion[:, layout.POSE.start]
        smile = s.target_motion[:, layout.EXP.start + SMILE_DIMS[0]]
        near = np.zeros(s.num_frames, bool)
        for e in ends:
            near[e + 3:e + 18] = True
        speaking = speech_energy_per_frame(s.self_audio, s.num_frames) > 0.01
        listen = ~speaking
        after.append(pitch[near & listen])
        other.append(pitch[~near & listen])
        smile_after.append(smile[near & listen])
        smile_other.append(smile[~near & listen])
    assert np.concatenate(after).mean() > np.concatenate(other).mean() + 0.01
    assert np.concatenate(smile_after).mean() > np.concatenate(smile_other).mean() + 0.1


def test_split_parsing_and_counts():
    assert parse_splits("train=0.8,test=0.1,ood=0.1") == {"train": 0.8, "test": 0.1, "ood": 0.1}
    assert split_counts(200, parse_splits("train=0.8,test=0.1,ood=0.1")) == \
        {"train": 160, "test": 20, "ood": 20}
    assert sum(split_counts(7, {"train": 0.8, "test": 0.1, "ood": 0.1}).values()) == 7
    with pytest.raises(ValueError, match="sum to 1"):
        parse_splits("train=0.8,test=0.1")
    with pytest.raises(ValueError, match="NAME=FRACTION"):
        parse_splits("train")


def test_synth_command(tmp_path):
    from dualtalk_core.commands import data as data_cmd

    code, out = run_module_main(data_cmd, [
        "synth", "-o", str(tmp_path), "--pairs", "2", "--seed", "1", "--voice", "procedural",
        "--splits", "train=0.5,ood=0.5", "--max-rounds", "1", "--max-seconds", "8"])
    assert code == 0 and "wrote 2 pairs (train=1, ood=1)" in out
    assert len(list((tmp_path / "ood").glob("*.npz"))) == 2
    code, _ = run_module_main(data_cmd, ["synth", "-o", str(tmp_path / "x"), "--pairs", "1",
                                         "--splits", "train=2"])
    assert code == 2


# --------------------------------------------------------------------------------------------
# the calibrated real scale (default)

@pytest.fixture(scope="module")
def synth_real(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_real")
    synthesize_dataset(root, 6, seed=5, splits="train=1", voice="procedural", min_rounds=3,
                       max_rounds=6, min_seconds=20, max_seconds=30)
    return root


def test_default_scale_matches_the_real_statistics(synth_real):
    from dualtalk_core.data.face_stats import resolve_face_stats
    from dualtalk_core.data.stats_table import group_stats, load_motions

    stats = resolve_face_stats("real")
    assert json.loads((synth_real / "synth.json").read_text())["face_stats"] == "real"
    got = group_stats(load_motions([synth_real]))
    want_exp = float(np.median(stats.exp_std))
    assert 0.7 < got["exp_std_median"] / want_exp < 1.4, (got, want_exp)
    assert 0.5 < got["exp_std_max"] / max(stats.exp_std) < 1.5
    assert 0.5 < got["jaw_std"] / stats.jaw_std < 2.0
    assert 0.5 < got["jaw_vel_std"] / stats.jaw_vel_std < 2.0
    assert 0.5 < got["pose_std"] / float(np.mean(stats.head_std)) < 2.0
    legacy_like = 0.1   # the legacy scale's all-values exp std; real tracks are ~10x that
    assert got["exp_std_all"] > 5 * legacy_like


def test_real_scale_keeps_the_rules(synth_real):
    from dualtalk_core.data.face_stats import resolve_face_stats

    stats = resolve_face_stats("real")
    meta = json.loads((synth_real / "synth.json").read_text())
    sides, _ = load_split(synth_real, "train")
    rest, beta, smile_dir = stats.vec("exp_mean"), stats.vec("jaw_exp_beta"), \
        stats.vec("smile_direction")
    own, partner, mouth = [], [], []
    pitch_near, pitch_far, smile_near, smile_far = [], [], [], []
    for s in sides:
        m = s.target_motion.astype(np.float64)
        jaw = m[:, layout.JAW.start]
        own.append(jaw_energy_correlation(jaw, s.self_audio))
        partner.append(jaw_energy_correlation(jaw, s.partner_audio))
        env = speech_energy_per_frame(s.self_audio, s.num_frames)
        mouth.append(pearson((m[:, layout.EXP] - rest) @ beta, env))
        ends = [p[2] // layout.SAMPLES_PER_FRAME for p in meta["clips"][s.clip]["phrases"]
                if p[0] == s.partner_speaker and not p[4]]
        near = np.zeros(s.num_frames, bool)
        for e in ends:
            near[e + 3:e + 18] = True
        listen = ~(env > 0.01)
        smile = (m[:, layout.EXP] - rest) @ smile_dir / (smile_dir @ smile_dir)
        pitch = m[:, layout.POSE.start]
        pitch_near.append(pitch[near & listen])
        pitch_far.append(pitch[~near & listen])
        smile_near.append(smile[near & listen])
        smile_far.append(smile[~near & listen])
    assert np.median(own) > 0.5 and np.median(partner) < 0.3, (own, partner)
    assert np.median(mouth) > 0.4, mouth                       # jaw-coupled exp directions
    nod = np.concatenate(pitch_near).mean() - np.concatenate(pitch_far).mean()
    assert nod > 0.5 * stats.head_std[0], nod                  # a nod on the real pitch scale
    assert np.concatenate(smile_near).mean() > np.concatenate(smile_far).mean() + 0.1


def test_real_scale_silent_speaker_keeps_the_jaw_at_rest():
    from dualtalk_core.data.face_stats import resolve_face_stats
    from dualtalk_core.data.synth_face import draw_identity, make_calibrated_motion

    stats = resolve_face_stats("real")
    rng = np.random.default_rng(3)
    t = 500
    noise = rng.normal(0.0, MIC_NOISE_STD, t * layout.SAMPLES_PER_FRAME).astype(np.float32)
    persona = Persona.draw(rng, stats.vec("identity_std"))
    assert np.abs(persona.exp_offset).max() < 6 * max(stats.identity_std)
    motion = make_calibrated_motion(noise, t, persona, np.zeros(t, bool), [], rng, stats)
    jaw = motion[:, layout.JAW.start]
    assert abs(jaw.mean() - stats.jaw_silent_mean) < 2 * stats.jaw_silent_std
    assert jaw.std() < 1.5 * stats.jaw_silent_std                # jitter only, no speech drive
    assert draw_identity(rng, stats).shape == (50,)


def test_synth_command_face_stats_option(tmp_path):
    from dualtalk_core.commands import data as data_cmd

    args = ["synth", "--pairs", "1", "--seed", "1", "--voice", "procedural", "--splits",
            "train=1", "--max-rounds", "1", "--max-seconds", "6"]
    code, out = run_module_main(data_cmd, [*args, "-o", str(tmp_path / "l"), "--face-stats",
                                           "legacy"])
    assert code == 0 and "faces=legacy" in out
    code, _ = run_module_main(data_cmd, [*args, "-o", str(tmp_path / "m"), "--face-stats",
                                         str(tmp_path / "missing.json")])
    assert code == 2 and not (tmp_path / "m").exists()
