"""StreamingEngine with the real DualTalk (tiny preset): determinism, timing, faults, reset."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from dualtalk_core.layout import DIM, FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.model.presets import PRESETS, preset
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.engine import StreamingEngine
from dualtalk_core.streaming.frames import COUNTER_NAMES, OutputFrame
from streaming_helpers import feed, make_signals, single_thread, tiny_model, weights

SECONDS = 4.0


@pytest.fixture(scope="module")
def model():
    with single_thread():
        yield tiny_model(seed=0)


@pytest.fixture(scope="module")
def signals():
    return make_signals(SECONDS, seed=1)


@pytest.fixture(scope="module")
def reference(model, signals):
    """Frames from feeding the whole clip in one go (the baseline every variant must match)."""
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    return feed(engine, partner, agent=agent, motion=motion)


def assert_25fps(frames: list[OutputFrame], first: int = 0) -> None:
    idx = np.array([f.index for f in frames])
    assert idx[0] == first
    assert np.all(np.diff(idx) == 1), "frame indices must be consecutive"
    times = np.array([f.media_time_s for f in frames])
    np.testing.assert_allclose(times, idx * SAMPLES_PER_FRAME / SAMPLE_RATE, rtol=0, atol=1e-12)
    for f in frames:
        assert f.weights.shape == (DIM,) and f.weights.dtype == np.float32
        assert np.all(np.isfinite(f.weights))


def test_one_go_covers_the_clip_at_25fps(reference, signals):
    partner = signals[0]
    assert len(reference) == -(-partner.shape[0] // SAMPLES_PER_FRAME)
    assert_25fps(reference)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_chunk_sizes_give_the_same_frames(model, signals, reference, seed):
    partner, agent, motion = signals
    rng = np.random.default_rng(seed)
    sizes = rng.integers(16, 8001, size=2000)          # 1 ms .. 500 ms
    engine = StreamingEngine(model, StreamingConfig())
    frames = feed(engine, partner, sizes, agent=agent, motion=motion)
    assert [f.index for f in frames] == [f.index for f in reference]
    np.testing.assert_allclose(weights(frames), weights(reference), rtol=0, atol=1e-6)
    assert engine.counters["partner_chunks"] > 10


def test_frames_come_out_once_lookahead_is_covered(model, signals):
    """Frame k is emitted once partner audio covers k*640 + L*16000, in hops of H."""
    partner, agent, motion = signals
    cfg = StreamingConfig(window_s=1.2, lookahead_s=0.32, hop_s=0.16, crossfade_s=0.16)
    engine = StreamingEngine(model, cfg)
    emitted: list[OutputFrame] = []
    lookahead = cfg.lookahead_frames * SAMPLES_PER_FRAME
    for pos in range(0, partner.shape[0], 1000):
        engine.push_partner_audio(partner[pos: pos + 1000], pos)
        emitted += engine.pull()
        clock = min(pos + 1000, partner.shape[0])
        for f in emitted:
            assert f.index * SAMPLES_PER_FRAME + lookahead <= clock
        due = (clock - lookahead) // SAMPLES_PER_FRAME + 1        # frames whose lookahead is covered
        assert due - len(emitted) < cfg.hop_frames                 # at most one hop behind
    assert_25fps(emitted)
    stats = engine.stats
    assert stats["hops"] == engine.counters["hops"] > 0
    assert stats["hop_ms_p95"] > 0 and stats["rtf"] > 0
    assert stats["latency_s"] == pytest.approx(0.48)


def test_threaded_push_and_pull_match_one_go(model, signals, reference):
    """The ROS node pushes from callbacks while a timer pulls; results must not depend on it."""
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    for k, frame in enumerate(motion):
        engine.push_partner_motion(frame, k / FRAME_RATE)
    engine.push_agent_audio(agent, 0)
    done = threading.Event()

    def producer():
        for pos in range(0, partner.shape[0], 800):
            engine.push_partner_audio(partner[pos: pos + 800], pos)
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    frames = []
    while not done.is_set():
        frames += engine.pull()
    thread.join()
    frames += engine.pull() + engine.flush()
    np.testing.assert_allclose(weights(frames), weights(reference), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------- faults
def test_audio_gap_is_zero_filled_and_counted(model, signals):
    partner, agent, motion = signals
    gap_a, gap_b = 16000, 16000 + 4000
    engine = StreamingEngine(model, StreamingConfig())
    assert engine.push_partner_audio(partner[:gap_a], 0)
    assert engine.push_partner_audio(partner[gap_b:], gap_b)     # 250 ms missing
    frames = engine.pull() + engine.flush()
    assert engine.counters["gaps"] == 1
    assert engine.counters["gaps_zero_filled_samples"] == gap_b - gap_a
    assert_25fps(frames)
    # identical to feeding explicit zeros in the gap
    patched = partner.copy()
    patched[gap_a:gap_b] = 0.0
    clean = feed(StreamingEngine(model, StreamingConfig()), patched)
    np.testing.assert_allclose(weights(frames), weights(clean), rtol=0, atol=1e-6)


def test_duplicates_out_of_order_and_overlaps(model, signals, reference):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    for k, frame in enumerate(motion):
        engine.push_partner_motion(frame, k / FRAME_RATE)
    engine.push_agent_audio(agent, 0)
    frames, step = [], 3200
    for pos in range(0, partner.shape[0], step):
        assert engine.push_partner_audio(partner[pos: pos + step], pos)
        if pos >= step:
            assert not engine.push_partner_audio(partner[pos: pos + step], pos)          # duplicate
            assert not engine.push_partner_audio(partner[pos - 1000: pos], pos - 1000)  # late
        frames += engine.pull()
    # a chunk overlapping the end is trimmed, not dropped
    end = partner.shape[0]
    assert engine.push_partner_audio(np.concatenate([partner[end - 100:], np.zeros(540, np.float32)]),
                                     end - 100)
    assert engine.counters["overlap_trimmed_samples"] == 100
    assert not engine.push_agent_audio(agent[-1000:], agent.shape[0] - 1000)          # agent dup
    assert not engine.push_partner_motion(motion[3], 3 / FRAME_RATE)                  # face late
    last_t = (motion.shape[0] - 1) / FRAME_RATE
    assert not engine.push_partner_motion(motion[-1], last_t)                          # face dup
    frames += engine.pull() + engine.flush()
    n_chunks = len(range(step, partner.shape[0], step))
    assert engine.counters["duplicates"] == n_chunks + 2
    assert engine.counters["dropped_out_of_order"] == n_chunks + 1
    assert_25fps(frames)
    # dropped chunks changed nothing before the appended tail
    n = len(reference)
    np.testing.assert_allclose(weights(frames)[: n - 20], weights(reference)[: n - 20], atol=1e-6)


def test_nonfinite_chunks_are_rejected_and_the_hole_zero_filled(model, signals):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    bad = partner[8000:16000].copy()
    bad[123] = np.nan
    assert engine.push_partner_audio(partner[:8000], 0)
    assert not engine.push_partner_audio(bad, 8000)
    assert "NaN" in engine.last_rejection
    inf_agent = agent[:4000].copy()
    inf_agent[5] = np.inf
    assert not engine.push_agent_audio(inf_agent, 0)
    nan_face = motion[0].copy()
    nan_face[7] = np.nan
    assert not engine.push_partner_motion(nan_face, 0.0)
    assert engine.push_partner_audio(partner[16000:], 16000)
    frames = engine.pull() + engine.flush()
    assert engine.counters["rejected_nonfinite"] == 3
    assert engine.counters["gaps_zero_filled_samples"] == 8000
    assert_25fps(frames)


@pytest.mark.parametrize("samples, index, counter", [
    (np.zeros((100, 2), np.float32), 0, "rejected_bad_shape"),
    (np.zeros(0, np.float32), 0, "rejected_bad_shape"),
    (np.zeros(100, np.int16), 0, "rejected_bad_input"),
    (np.zeros(100, np.float32), -5, "rejected_bad_input"),
    (np.zeros(100, np.float32), 1.5, "rejected_bad_input"),
    (np.zeros(100, np.float32), True, "rejected_bad_input"),
    (None, 0, "rejected_bad_input"),
    ("not audio", 0, "rejected_bad_input"),
])
def test_malformed_audio_is_rejected_not_raised(model, samples, index, counter):
    engine = StreamingEngine(model, StreamingConfig())
    assert engine.push_partner_audio(samples, index) is False
    assert engine.push_agent_audio(samples, index) is False
    assert engine.counters[counter] == 2
    assert engine.last_rejection
    assert engine.pull() == []


@pytest.mark.parametrize("frame, t, counter", [
    (np.zeros(55, np.float32), 0.0, "rejected_bad_shape"),
    (np.zeros((1, 56), np.float32), 0.0, "rejected_bad_shape"),
    (np.zeros(56, np.float32), float("nan"), "rejected_bad_input"),
    (np.zeros(56, np.float32), -1.0, "rejected_bad_input"),
    (np.zeros(56, np.float32), "soon", "rejected_bad_input"),
    (["a"] * 56, 0.0, "rejected_bad_input"),
])
def test_malformed_face_is_rejected_not_raised(model, frame, t, counter):
    engine = StreamingEngine(model, StreamingConfig())
    assert engine.push_partner_motion(frame, t) is False
    assert engine.counters[counter] == 1


def test_too_far_ahead_is_rejected(model, signals):
    partner = signals[0]
    engine = StreamingEngine(model, StreamingConfig(max_ahead_s=2.0))
    assert engine.push_partner_audio(partner[:1600], 0)
    assert not engine.push_agent_audio(np.zeros(100, np.float32), 1600 + 3 * SAMPLE_RATE)
    assert not engine.push_partner_motion(np.zeros(56, np.float32), 5.0)
    assert engine.counters["rejected_too_far_ahead"] == 2


def test_missing_face_frames_are_filled_flagged_and_counted(model, signals):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    missing = set(range(30, 50)) | {70}
    for k, frame in enumerate(motion):
        if k not in missing:
            engine.push_partner_motion(frame, k / FRAME_RATE)
    frames = feed(engine, partner, agent=agent)
    flagged = {f.index for f in frames if f.partner_face_filled}
    # a frame next to a received one is within tolerance (one frame), so only the inner ones count
    assert flagged == set(range(31, 49))
    assert engine.counters["partner_face_filled_frames"] == len(flagged)


def test_irregular_camera_rate_is_resampled_without_filling(model, signals):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    t30 = np.arange(0, SECONDS + 0.2, 1 / 30)               # a 30 fps camera
    jitter = np.random.default_rng(3).uniform(-0.004, 0.004, t30.shape)
    for t in np.sort(t30 + jitter).clip(0):
        k = min(int(round(t * FRAME_RATE)), motion.shape[0] - 1)
        assert engine.push_partner_motion(motion[k], float(t))
    frames = feed(engine, partner, agent=agent)
    assert not any(f.partner_face_filled for f in frames)
    assert engine.counters["partner_face_filled_frames"] == 0


def test_no_face_at_all_flags_every_frame(model, signals):
    partner = signals[0]
    engine = StreamingEngine(model, StreamingConfig())
    frames = feed(engine, partner)
    assert all(f.partner_face_filled for f in frames)
    assert engine.counters["partner_face_filled_frames"] == len(frames)


def test_long_gap_resynchronises(model, signals):
    partner = signals[0]
    engine = StreamingEngine(model, StreamingConfig(max_gap_s=1.0))
    assert engine.push_partner_audio(partner[:32000], 0)
    before = engine.pull()
    jump = 32000 + 10 * SAMPLE_RATE + 100
    assert engine.push_partner_audio(partner[32000:], jump)
    after = engine.pull() + engine.flush()
    assert engine.counters["resyncs"] == 1
    assert engine.counters["frames_skipped"] > 0
    assert_25fps(before)
    assert_25fps(after, first=jump // SAMPLES_PER_FRAME)
    assert engine.counters["gaps"] == 0


def test_backlog_limit_skips_to_the_newest_hop(model, signals):
    """A consumer that fell behind (3 s of audio arrived at once) skips whole hops to stay live."""
    partner = signals[0]
    cfg = StreamingConfig(max_overdue_s=0.4)
    engine = StreamingEngine(model, cfg)
    engine.push_partner_audio(partner[: 3 * SAMPLE_RATE], 0)
    frames = engine.pull()
    skipped = engine.counters["frames_skipped"]
    assert skipped > 0 and skipped % cfg.hop_frames == 0
    assert [f.index for f in frames] == list(range(skipped, skipped + len(frames)))
    assert len(frames) == cfg.hop_frames                  # only the newest hop was computed
    assert engine.stats["backlog_s"] < cfg.hop_s
    more = []
    for pos in range(3 * SAMPLE_RATE, partner.shape[0], 320):   # now it keeps up: 20 ms pushes
        engine.push_partner_audio(partner[pos: pos + 320], pos)
        more += engine.pull()
    assert more[0].index == frames[-1].index + 1          # live again: no further skipping
    assert_25fps(frames + more, first=skipped)


# ---------------------------------------------------------------------------------------- lookahead
def test_agent_audio_pushed_300ms_ahead_is_used(model, signals, reference):
    """TTS contract: agent audio pushed 300 ms before it plays is in every window that needs it."""
    partner, agent, motion = signals
    ahead = int(0.3 * SAMPLE_RATE)
    engine = StreamingEngine(model, StreamingConfig())
    for k, frame in enumerate(motion):
        engine.push_partner_motion(frame, k / FRAME_RATE)
    frames, step = [], 320
    assert engine.push_agent_audio(agent[:ahead], 0)
    for pos in range(0, partner.shape[0], step):
        assert engine.push_agent_audio(agent[pos + ahead: pos + ahead + step], pos + ahead) or \
            pos + ahead >= agent.shape[0]
        engine.push_partner_audio(partner[pos: pos + step], pos)
        frames += engine.pull()
    frames += engine.flush()
    assert_25fps(frames)
    assert engine.counters["agent_late_chunks"] == 0
    np.testing.assert_allclose(weights(frames), weights(reference), rtol=0, atol=1e-6)
    # and it matters: without agent audio the frames differ
    silent = feed(StreamingEngine(model, StreamingConfig()), partner, motion=motion)
    assert np.abs(weights(silent) - weights(reference)).max() > 1e-3
    # the agent VAD lines up with where the agent audio actually is on the clock
    env = np.abs(agent[: len(frames) * SAMPLES_PER_FRAME]).reshape(-1, SAMPLES_PER_FRAME).max(1) > 0
    vad = np.array([f.agent_vad > 0.5 for f in frames])
    assert (vad == env).mean() > 0.95


def test_late_agent_audio_is_accepted_and_counted(model, signals):
    partner = signals[0]
    engine = StreamingEngine(model, StreamingConfig())
    engine.push_partner_audio(partner[:32000], 0)
    engine.pull()
    assert engine.push_agent_audio(np.full(3200, 0.1, np.float32), 16000)   # already used
    assert engine.counters["agent_late_chunks"] == 1
    # frames 25..29 (its own 40 ms) and the lookahead frames before them had been computed
    la = engine.config.lookahead_frames
    assert engine.counters["agent_audio_late_frames"] == 5 + la


def test_agent_audio_before_partner_starts_is_kept(model, signals, reference):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    assert engine.push_agent_audio(agent[8000:], 8000)        # TTS speaks before the mic opens
    assert engine.push_agent_audio(agent[:8000], 0)
    frames = feed(engine, partner, motion=motion)
    np.testing.assert_allclose(weights(frames), weights(reference), atol=1e-6)


# ---------------------------------------------------------------------------------------- reset etc.
def test_reset_starts_a_new_conversation(model, signals, reference):
    partner, agent, motion = signals
    engine = StreamingEngine(model, StreamingConfig())
    feed(engine, partner[:20000], agent=agent, motion=motion, flush=False)
    engine.push_partner_audio(np.full(10, np.nan, np.float32), 20000)
    engine.reset()
    assert all(v == 0 for v in engine.counters.values())
    assert set(engine.counters) >= set(COUNTER_NAMES)
    assert engine.stats["hops"] == 0
    frames = feed(engine, partner, agent=agent, motion=motion)
    np.testing.assert_allclose(weights(frames), weights(reference), rtol=0, atol=1e-6)


def test_flush_then_reset(model, signals):
    partner = signals[0]
    engine = StreamingEngine(model, StreamingConfig())
    feed(engine, partner[:10000])
    engine.push_partner_audio(partner[10000:20000], 10000)
    assert engine.pull() == []                # flushed: nothing until reset
    engine.reset()
    assert len(feed(engine, partner[:10000])) == -(-10000 // SAMPLES_PER_FRAME)


def test_crossfade_smooths_hop_boundaries(model, signals):
    """With the cross-fade, the step across a hop boundary is like any other frame step;
    without it, each hop boundary shows a jump."""
    partner, agent, motion = signals
    ratio = {}
    for cf in (0.0, 0.2):
        cfg = StreamingConfig(window_s=1.0, lookahead_s=0.4, hop_s=0.2, crossfade_s=cf)
        w = weights(feed(StreamingEngine(model, cfg), partner, agent=agent, motion=motion, flush=False))
        step = np.abs(np.diff(w, axis=0)).mean(axis=1)
        h = cfg.hop_frames
        step = step[: (len(step) // h) * h].reshape(-1, h).mean(axis=0)   # by position in hop
        ratio[cf] = step[-1] / step[:-1].mean()                         # boundary / inside
    assert ratio[0.2] < 1.3
    assert ratio[0.0] > ratio[0.2] + 0.3


def test_config_validation_and_yaml(tmp_path):
    cfg = preset("cpu").streaming_config()
    path = tmp_path / "s.yaml"
    cfg.to_yaml(path)
    assert StreamingConfig.from_yaml(path) == cfg
    for name in PRESETS:
        assert preset(name).streaming_config().lookahead_s > 0
    with pytest.raises(ValueError, match="hop_s"):
        StreamingConfig(hop_s=0.05)
    with pytest.raises(ValueError, match="window_s"):
        StreamingConfig(window_s=0.08, hop_s=0.2)
    with pytest.raises(ValueError, match="crossfade_s"):
        StreamingConfig(crossfade_s=0.4, hop_s=0.2)
    with pytest.raises(ValueError, match="norm_mode"):
        StreamingConfig(norm_mode="global")
    with pytest.raises(ValueError, match="unknown key"):
        StreamingConfig.from_dict({"window": 2.0})
    with pytest.raises(ValueError, match="off_db"):
        StreamingConfig.from_dict({"vad": {"on_db": -50.0, "off_db": -40.0}})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("streaming:\n  hop_s: -1\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        StreamingConfig.from_yaml(bad)
