"""Bounded memory for any sample index (issue 20 item 1).

Random index sequences - far jumps (2**40, 2**62), rewinds, duplicates, gaps, partner and agent
interleaved in any order, pulls skipped so compute falls behind - pushed into the engine and the
session: no exception, and no audio buffer ever holds more than ``max_backlog_s``.  The model is
a stand-in that returns zeros of the right shape: what is tested is the buffering, and this
keeps hundreds of hops fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from dualtalk_core.layout import DIM, SAMPLE_RATE
from dualtalk_core.streaming.buffers import AudioTimeline, BacklogOverflow
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.engine import StreamingEngine
from dualtalk_core.streaming.session import StreamingSession

# the smallest bound the validation allows for this geometry: 0.4 + 0.12 + 2*0.12 + 1 = 1.76 s
CFG = dict(window_s=0.4, lookahead_s=0.12, hop_s=0.12, max_gap_s=1.0, max_ahead_s=1.0,
           max_backlog_s=2.0)
FAR = (2 ** 40, 2 ** 62, 2 ** 62 + 12345, 2 ** 33)


def zeros_model(self_audio, partner_audio, partner_motion, num_frames, normalize_audio):
    import torch

    return torch.zeros(1, num_frames, DIM)


def random_index(rng, last: int) -> int:
    """Mostly continuous, sometimes a gap, a rewind, a duplicate or a far jump."""
    r = rng.random()
    if r < 0.55:
        return last
    if r < 0.65:
        return last + int(rng.integers(1, 3 * SAMPLE_RATE))      # gap (some beyond max_gap_s)
    if r < 0.75:
        return max(0, last - int(rng.integers(1, 10 * SAMPLE_RATE)))   # rewind / duplicate
    if r < 0.85:
        return int(rng.choice(FAR)) + int(rng.integers(0, 4000))
    return int(rng.integers(0, 2 ** 20))


def drive(target, rng, steps: int, bound: int, runner) -> None:
    partner_next = agent_next = 0
    for _ in range(steps):
        n = int(rng.integers(1, 4000))
        x = (0.1 * rng.standard_normal(n)).astype(np.float32)
        kind = rng.random()
        if kind < 0.5:
            partner_next = random_index(rng, partner_next)
            target.push_partner_audio(x, partner_next)
            partner_next += n
        elif kind < 0.85:
            agent_next = random_index(rng, agent_next)
            target.push_agent_audio(x, agent_next)
            agent_next += n
        else:
            t = float(rng.choice([rng.uniform(0, 5), 2 ** 40 / SAMPLE_RATE, rng.uniform(0, 1e6)]))
            face = np.zeros(DIM, np.float32)
            if hasattr(target, "push_partner_face"):
                target.push_partner_face(face, int(t * 1e9))
            else:
                target.push_partner_motion(face, t)
        if rng.random() < 0.5:          # sometimes compute falls behind (no pull)
            target.step() if hasattr(target, "step") else target.pull()
        assert runner.buffered_samples <= bound, runner.buffered_samples


@pytest.mark.parametrize("seed", range(6))
def test_engine_memory_is_bounded_for_any_index(seed):
    engine = StreamingEngine(zeros_model, StreamingConfig(**CFG))
    rng = np.random.default_rng(seed)
    drive(engine, rng, 400, engine.config.max_backlog_samples, engine)
    engine.flush()
    assert engine.counters["resyncs"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_session_memory_is_bounded_for_any_index(seed):
    session = StreamingSession(StreamingEngine(zeros_model, StreamingConfig(**CFG)),
                               log=lambda *a, **k: None)
    rng = np.random.default_rng(100 + seed)
    drive(session, rng, 400, session.config.max_backlog_samples, session.runner)
    session.finish()
    assert session.counters["index_jumps"] + session.counters["conversation_restarts"] > 0


def test_far_agent_then_partner_in_either_order_resynchronises():
    for order in ("agent first", "partner first"):
        engine = StreamingEngine(zeros_model, StreamingConfig(**CFG))
        x = np.zeros(320, np.float32)
        engine.push_partner_audio(x, 0)
        pushes = [("agent", 2 ** 40), ("partner", 2 ** 40)]
        for who, index in (pushes if order == "agent first" else pushes[::-1]):
            getattr(engine, f"push_{who}_audio")(x, index)
        engine.push_agent_audio(x, 2 ** 40 + 320)
        engine.push_partner_audio(np.zeros(16000, np.float32), 2 ** 40 + 320)
        frames = engine.pull()
        assert frames and frames[0].index >= 2 ** 40 // 640, order
        assert engine.counters["resyncs"] == 1
        assert engine.buffered_samples <= engine.config.max_backlog_samples


def test_backlog_beyond_the_bound_resynchronises_instead_of_growing():
    """Compute stalled (no pulls) while 3 s of audio arrive: the buffer stays within 2 s."""
    engine = StreamingEngine(zeros_model, StreamingConfig(**CFG))
    for i in range(0, 3 * SAMPLE_RATE, 320):
        engine.push_partner_audio(np.zeros(320, np.float32), i)
    assert engine.counters["backlog_resyncs"] == 1
    assert engine.buffered_samples <= engine.config.max_backlog_samples
    assert engine.pull()                                   # and it carries on
    assert not engine.push_partner_audio(np.zeros(40000, np.float32), 3 * SAMPLE_RATE)
    assert engine.counters["rejected_bad_shape"] == 1      # a chunk longer than the bound


def test_timeline_refuses_to_allocate_beyond_its_bound():
    tl = AudioTimeline(0, max_samples=1000)
    tl.write(0, np.ones(10, np.float32))
    with pytest.raises(BacklogOverflow):
        tl.write(2 ** 62, np.ones(10, np.float32))
    with pytest.raises(BacklogOverflow):
        tl.extend_start(-5000)
    assert tl.allocated == 10
    tl.trim_before(2 ** 40)                 # beyond the end: empty, starting there
    assert tl.start == 2 ** 40 and tl.allocated == 0
    tl.write(2 ** 40 + 5, np.ones(10, np.float32))
    assert tl.allocated == 15
