"""The ``live`` runner: a causal model through the StreamingSession equals its offline output for
any chunking, refuses and counts the same bad input as the sliding window, stays bounded, is
picked from the checkpoint, refuses horizons the checkpoint does not have, and
``dualtalk infer --streaming`` writes the offline ``.npy``.

Models are real (random weights): a small causal config for the properties (fast on 2 cores) and
the ``live`` preset for the real-clip infer check.  Everything runs in float32 (what ships).
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from dualtalk_core.cli import main as dualtalk
from dualtalk_core.layout import DIM, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.media.audio_io import write_wav_float32
from dualtalk_core.model.checkpoint import read_payload, save_checkpoint
from dualtalk_core.model.config import DualTalkConfig, get_preset
from dualtalk_core.model.dualtalk import DualTalk
from dualtalk_core.model.inference import predict_clip
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.engine import StreamingEngine
from dualtalk_core.streaming.live_runner import LiveRunner
from dualtalk_core.streaming.runners import make_runner, runner_kind
from dualtalk_core.streaming.session import NS_PER_FRAME, StreamingSession
from metrics_helpers import synth_root  # noqa: F401  (fixture)
from streaming_helpers import single_thread, tiny_model

SMALL = dict(audio_frontend="logmel", wav2vec2={}, n_mels=16, frontend_hidden=24,
             frontend_layers=2, d_model=16, enhancer_heads=2, lstm_layers=2,
             interaction_layers=2, interaction_heads=2, interaction_ffn=32, decoder_layers=1,
             decoder_heads=2, decoder_ffn=32, normalize_audio=False, causal=True,
             attention_context_s=0.8, self_lookahead_s=0.16, partner_lookahead_s=-0.12)
QUIET = dict(end_of_stream_s=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def small_live(seed: int = 0, **changes) -> DualTalk:
    torch.manual_seed(seed)
    return DualTalk(DualTalkConfig(**{**SMALL, **changes})).eval()


@pytest.fixture(scope="module")
def live():
    return small_live()


def clip(seconds: float, seed: int = 1):
    """Speech-like bursts for both speakers and a moving partner face at k / 25 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    env = np.repeat(rng.random((2, n // 1600 + 1)) > 0.4, 1600, axis=1)[:, :n]
    audio = (0.1 * rng.standard_normal((2, n)) * env).astype(np.float32)
    frames = -(-n // SAMPLES_PER_FRAME)
    motion = (0.1 * rng.standard_normal((frames, DIM)).cumsum(0) / 5).astype(np.float32)
    return audio[0], audio[1], motion


def session_for(model, **changes) -> StreamingSession:
    return StreamingSession(LiveRunner(model, StreamingConfig(**{**QUIET, **changes})),
                            log=lambda *a, **k: None)


def frames_of(hops) -> dict[int, np.ndarray]:
    return {f.index: f.weights for h in hops for f in h.frames}


def random_feed(session, agent, partner, motion, rng: random.Random, lead: int) -> dict:
    """Each stream chunked independently at random (1 sample to 2 s), pushed in rounds; the
    agent's speech stays ``lead`` samples ahead of the partner (a TTS), face frames are pushed
    once their time is near; the session steps after some rounds only."""
    def size():
        return max(1, int(math.exp(rng.uniform(0, math.log(2 * SAMPLE_RATE)))))

    out, p, a, face = {}, 0, 0, 0
    while p < partner.shape[0]:
        q = min(partner.shape[0], p + size())
        session.push_partner_audio(partner[p:q], p)
        p = q
        while a < min(agent.shape[0], p + lead):
            b = min(agent.shape[0], max(a + size(), p + lead))
            session.push_agent_audio(agent[a:b], a)
            a = b
        while face < motion.shape[0] and face * SAMPLES_PER_FRAME < p + rng.randint(0, 4000):
            session.push_partner_face(motion[face], face * NS_PER_FRAME)
            face += 1
        if rng.random() < 0.7:
            out.update(frames_of(session.step()))
    out.update(frames_of(session.finish()))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_session_equals_offline_for_random_chunkings(live, seed):
    agent, partner, motion = clip(4.0, seed=seed)          # 4 s > the 0.8 s attention context
    ref = predict_clip(live, agent, partner, motion)
    session = session_for(live)
    lead = 7 * SAMPLES_PER_FRAME                          # self - partner lookahead: 0.28 s
    out = random_feed(session, agent, partner, motion, random.Random(seed), lead)
    got = np.stack([out[k] for k in range(ref.shape[0])])
    assert np.abs(got - ref).max() <= 1e-5
    counters = session.runner.counters
    assert counters["partner_face_filled_frames"] == 0 and counters["agent_late_chunks"] == 0
    assert session.config.latency_s == pytest.approx(0.16)       # max(Ls, Lp, 0)


def test_frames_leave_before_their_time_with_negative_partner_lookahead(live):
    agent, partner, motion = clip(1.0)
    session = session_for(live)
    session.push_agent_audio(agent, 0)                    # TTS: all speech known ahead
    for k in range(10):
        session.push_partner_face(motion[k], k * NS_PER_FRAME)
    session.push_partner_audio(partner[:10 * SAMPLES_PER_FRAME], 0)
    out = frames_of(session.step())
    # partner covers frames 0..9; Lp = -3: frames up to 12 are due already
    assert max(out) == 12 and sorted(out) == list(range(13))


def feed_bad(runner) -> None:
    """The same sequence of good and malformed pushes for any runner."""
    rng = np.random.default_rng(3)
    good = (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    face = np.zeros(DIM, np.float32)
    runner.push_partner_audio(good[:3200], 0)
    runner.push_agent_audio(good[:3200], 0)
    runner.push_partner_motion(face, 0.0)
    bad = [
        lambda: runner.push_partner_audio(np.full(320, np.nan, np.float32), 3200),
        lambda: runner.push_partner_audio(np.zeros((2, 320), np.float32), 3200),
        lambda: runner.push_partner_audio(np.zeros(0, np.float32), 3200),        # zero samples
        lambda: runner.push_partner_audio(np.zeros(320, np.int16), 3200),
        lambda: runner.push_partner_audio(good[:320], -5),
        lambda: runner.push_partner_audio(good[:320], 1.5),
        lambda: runner.push_partner_audio(good[:3200], 0),                       # duplicate
        lambda: runner.push_partner_audio(good[:320], 640),                      # out of order
        lambda: runner.push_agent_audio(np.full(320, np.inf, np.float32), 6400),
        lambda: runner.push_agent_audio(good[:320], 10 ** 9),                    # too far ahead
        lambda: runner.push_partner_motion(np.zeros(55, np.float32), 0.04),
        lambda: runner.push_partner_motion(np.full(DIM, np.nan, np.float32), 0.04),
        lambda: runner.push_partner_motion(face, float("nan")),
        lambda: runner.push_partner_motion(face, 0.0),                           # duplicate
        lambda: runner.push_partner_motion(face, 1e6),                           # too far ahead
        lambda: runner.push_partner_motion("face", 0.08),
    ]
    for push in bad:
        assert push() is False
    runner.push_partner_motion(face, 0.2)
    assert runner.push_partner_motion(face, 0.1) is False                      # older
    assert runner.push_partner_audio(good[:640], 4000) is True                 # gap, zero-filled


REFUSALS = ("rejected_nonfinite", "rejected_bad_shape", "rejected_bad_input", "duplicates",
            "dropped_out_of_order", "rejected_too_far_ahead", "gaps", "gaps_zero_filled_samples",
            "partner_chunks", "agent_chunks", "partner_motion_frames")


def test_malformed_input_counted_like_the_window_engine_never_raised(live):
    live_runner = LiveRunner(live, StreamingConfig())
    window = StreamingEngine(tiny_model(), StreamingConfig())
    for runner in (live_runner, window):
        feed_bad(runner)
        runner.pull_batches()
    got = {k: live_runner.counters[k] for k in REFUSALS}
    assert got == {k: window.counters[k] for k in REFUSALS}
    assert got["rejected_bad_shape"] == 3 and got["rejected_bad_input"] == 5
    assert got["duplicates"] == 2 and got["dropped_out_of_order"] == 2
    assert got["rejected_nonfinite"] == 3 and got["rejected_too_far_ahead"] == 2
    assert got["gaps"] == 1 and got["gaps_zero_filled_samples"] == 800
    assert live_runner.counters["frames_emitted"] > 0      # and it kept computing


def test_late_agent_audio_is_counted_and_the_rest_used(live):
    runner = LiveRunner(live, StreamingConfig())
    agent, partner, _ = clip(1.0)
    runner.push_partner_audio(partner[:8000], 0)
    runner.pull_batches()                                 # agent up to frame 12+7 is now final
    assert runner.push_agent_audio(agent[:3200], 0) is False
    assert runner.push_agent_audio(agent[:16000], 0) is True                   # partly late
    assert runner.counters["agent_late_chunks"] == 2
    assert runner.counters["agent_chunks"] == 1
    # the frames that went without that speech: every frame whose own 40 ms or self lookahead
    # lay in the range already taken as silence (frames 0..18), each counted once
    assert runner.counters["agent_audio_late_frames"] == 19
    runner.push_agent_audio(np.zeros(3200, np.float32), 3200)    # a barge-in's silence: free
    assert runner.counters["agent_audio_late_frames"] == 19


def test_gap_resync_and_far_jump_keep_buffers_bounded(live):
    """A gap over max_gap_s restarts the model's state at the new index (the frames after it
    equal a fresh offline run of that segment); a jump to 2**40 restarts the conversation in
    the session; no buffer ever holds more than max_backlog_s."""
    cfg = dict(max_gap_s=1.0, max_ahead_s=1.0, max_backlog_s=10.0)
    session = session_for(live, **cfg)
    _, partner, _ = clip(2.0)
    session.push_partner_audio(partner[:8000], 0)
    session.step()
    start = 3 * SAMPLE_RATE                               # 2.5 s gap > max_gap_s
    session.push_partner_audio(partner, start)
    out = frames_of(session.step())
    runner = session.runner
    assert runner.counters["resyncs"] == 1
    ref = live(torch.zeros(1, partner.shape[0]), torch.from_numpy(partner)[None],
               torch.zeros(1, 50, DIM), num_frames=50)[0].detach().numpy()
    first = start // SAMPLES_PER_FRAME
    got = np.stack([out[first + k] for k in range(50)])
    assert np.abs(got - ref).max() <= 1e-5
    session.push_partner_audio(partner[:3200], 2 ** 40)
    session.step()
    assert session.counters["index_jumps"] == 1
    assert runner.buffered_samples <= runner.config.max_backlog_samples
    assert runner.push_partner_audio(np.zeros(11 * SAMPLE_RATE, np.float32), 2 ** 40 + 3200) is False
    assert runner.counters["rejected_bad_shape"] == 1     # longer than the buffer bound


def test_big_push_processed_in_pieces_equals_offline(live):
    agent, partner, motion = clip(25.0, seed=4)
    ref = predict_clip(live, agent, partner, motion)
    runner = LiveRunner(live, StreamingConfig(max_ahead_s=30.0, max_backlog_s=60.0))
    runner.push_agent_audio(agent, 0)
    for k in range(motion.shape[0]):
        runner.push_partner_motion(motion[k], k / 25)
    assert runner.push_partner_audio(partner, 0) is True   # 25 s in one push
    batches = runner.pull_batches() + runner.flush_batches()
    assert len(batches) >= 3                               # 10 s pieces
    got = {f.index: f.weights for b in batches for f in b.frames}
    assert np.abs(np.stack([got[k] for k in range(ref.shape[0])]) - ref).max() <= 1e-5
    assert runner.buffered_samples <= runner.config.max_backlog_samples


def test_session_picks_the_runner_from_the_checkpoint(tmp_path, live):
    path = save_checkpoint(tmp_path / "live.pt", live)    # records no preset by hand
    payload = read_payload(path)
    assert payload["preset"] == "live" and runner_kind(payload) == "live"
    old = dict(payload)
    del old["preset"], old["streaming"]                   # a file from before the typed fields
    assert runner_kind(old) == "live"
    session = StreamingSession.from_checkpoint(path)
    assert isinstance(session.runner, LiveRunner)
    assert session.config.partner_lookahead_s == -0.12 and session.config.latency_s == 0.16
    torch.manual_seed(0)
    cpu = save_checkpoint(tmp_path / "cpu.pt", DualTalk(get_preset("cpu")).eval())
    assert isinstance(StreamingSession.from_checkpoint(cpu).runner, StreamingEngine)


def test_horizon_mismatch_refused_at_load_naming_both_values(tmp_path, live, tiny_checkpoint):
    path = save_checkpoint(tmp_path / "live.pt", live)
    with pytest.raises(ValueError, match=r"live\.pt: .*partner_lookahead_s = 0 s was requested.*"
                                         r"trained with partner_lookahead_s = -0\.12 s"):
        StreamingSession.from_checkpoint(path, overrides={"partner_lookahead_s": 0.0})
    with pytest.raises(ValueError, match=r"self_lookahead_s = 0\.32 s .* 0\.16 s"):
        make_runner("live", live, StreamingConfig(self_lookahead_s=0.32))
    same = StreamingSession.from_checkpoint(path, overrides={"self_lookahead_s": 0.16})
    assert same.config.self_lookahead_s == 0.16
    with pytest.raises(ValueError, match="no live horizons"):
        StreamingSession.from_checkpoint(tiny_checkpoint, overrides={"self_lookahead_s": 0.0})


def write_clip(root, agent, partner, motion):
    write_wav_float32(root / "self.wav", agent)
    write_wav_float32(root / "partner.wav", partner)
    np.save(root / "motion.npy", motion)
    return ["--self-audio", str(root / "self.wav"), "--partner-audio",
            str(root / "partner.wav"), "--partner-motion", str(root / "motion.npy")]


def infer_both(tmp_path, checkpoint, inputs, chunk_ms="20", extra=()):
    common = ["infer", "--checkpoint", str(checkpoint), *inputs, *extra]
    assert dualtalk([*common, "-o", str(tmp_path / "offline.npy")]) == 0
    assert dualtalk([*common, "--streaming", "--chunk-ms", chunk_ms,
                     "-o", str(tmp_path / "streamed.npy")]) == 0
    return np.load(tmp_path / "offline.npy"), np.load(tmp_path / "streamed.npy")


def test_infer_streaming_equals_offline_on_a_synthetic_clip(tmp_path, live, tiny_checkpoint):
    agent, partner, motion = clip(3.0, seed=5)
    inputs = write_clip(tmp_path, agent[:47000], partner, motion[:70])   # lengths differ
    path = save_checkpoint(tmp_path / "live.pt", live)
    for length_from, chunk in (("motion", "20"), ("audio", "33")):
        off, streamed = infer_both(tmp_path, path, inputs, chunk, ["--length-from", length_from])
        assert off.shape == streamed.shape and np.abs(off - streamed).max() <= 1e-5
    off, streamed = infer_both(tmp_path, tiny_checkpoint, inputs)       # window: runs, differs
    assert off.shape == streamed.shape and np.isfinite(streamed).all()


def test_infer_streaming_equals_offline_on_the_sample_clip(tmp_path, sample_dir, repo_root):
    """Issue 16's "done when": the bundled live demo model, 20 ms chunks, a real clip."""
    clip_name = "xkHwlcDSOjc_sub_video_109_000"
    path = repo_root / "models" / "dualtalk_live_demo.pt"
    inputs = ["--self-audio", str(sample_dir / f"{clip_name}_speaker2.wav"),
              "--partner-audio", str(sample_dir / f"{clip_name}_speaker1.wav"),
              "--partner-motion", str(sample_dir / f"{clip_name}_speaker1.npz")]
    off, streamed = infer_both(tmp_path, path, inputs)
    assert off.shape == streamed.shape and np.abs(off - streamed).max() <= 1e-5


def test_evaluate_streaming_equals_offline_for_a_live_model(tmp_path, live, synth_root):
    """``dualtalk evaluate --streaming`` scores what a robot would get; for a live model that
    is the offline output, so every metric agrees."""
    import json

    ck = save_checkpoint(tmp_path / "live.pt", live, preset="live")
    out = {}
    for mode in ("offline", "streaming"):
        args = ["evaluate", "--checkpoint", str(ck), "--data", str(synth_root),
                "--baselines", "none", "--max-clips", "2", "--json", str(tmp_path / f"{mode}.json")]
        assert dualtalk(args + (["--streaming", "--chunk-ms", "40"] if mode == "streaming"
                                else [])) == 0
        out[mode] = json.loads((tmp_path / f"{mode}.json").read_text())
    fa, fb = dict(_leaves(out["offline"])), dict(_leaves(out["streaming"]))
    assert fa.keys() == fb.keys() and fa
    for k in fa:
        assert fa[k] == pytest.approx(fb[k], rel=1e-4, abs=1e-6), k


def _leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}/{k}")
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        yield prefix, float(d)
