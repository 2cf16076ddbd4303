"""StreamingSession without ROS (real tiny DualTalk): clock origin, whole hops with stamps and
computable times, release rule, end of stream and restarts, latency figures, counters,
non-finite output, run-time settings, configuration from the checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.config import StreamingConfig
from dualtalk_core.streaming.engine import StreamingEngine
from dualtalk_core.streaming.session import NS, NS_PER_FRAME, StreamingSession
from streaming_helpers import make_signals, single_thread, tiny_model

CFG = dict(window_s=1.2, lookahead_s=0.32, hop_s=0.16)
ORIGIN = 100 * NS


class SteadyClock:
    """A steady clock the test moves by hand (end of stream, latency)."""

    def __init__(self) -> None:
        self.ns = 5 * NS

    def __call__(self) -> int:
        return self.ns


@pytest.fixture(scope="module")
def model():
    with single_thread():
        yield tiny_model(seed=0)


def make_session(model, clock=None, log=None, **changes):
    cfg = StreamingConfig(**{**CFG, **changes})
    return StreamingSession(StreamingEngine(model, cfg), steady_ns=clock or SteadyClock(),
                            log=log or (lambda *a, **k: None))


def feed(session, partner, clock, chunk=320, start=0, origin=ORIGIN):
    """Partner audio stamped on a clock whose sample 0 is ``origin``; steady time advances
    with the audio.  Returns the hops."""
    hops = []
    for pos in range(0, partner.shape[0], chunk):
        clock.ns += chunk * NS // SAMPLE_RATE
        i = start + pos
        session.push_partner_audio(partner[pos:pos + chunk], i, origin + i * NS // SAMPLE_RATE)
        hops += session.step()
    return hops


def test_whole_hops_with_stamps_computable_times_and_no_release_delay(model):
    partner, agent, motion = make_signals(3.0, seed=2)
    clock = SteadyClock()
    session = make_session(model, clock)
    arrivals = {}

    def push(pos):
        clock.ns += 20_000_000
        arrivals[pos + 320] = clock.ns
        session.push_partner_audio(partner[pos:pos + 320], 1600 + pos,
                                   ORIGIN + (1600 + pos) * NS // SAMPLE_RATE)

    hops = []
    for pos in range(0, partner.shape[0], 320):
        push(pos)
        hops += session.step()
    cfg = session.config
    assert session.origin_ns == ORIGIN
    assert hops and all(len(h.frames) == cfg.hop_frames for h in hops)
    first = 1600 // SAMPLES_PER_FRAME
    assert hops[0].frames[0].index == first
    for h in hops:
        assert h.stamps_ns == [ORIGIN + f.index * NS_PER_FRAME for f in h.frames]
        assert h.release_ns is None and not h.flushed
        # computable when the partner chunk covering the last frame + lookahead arrived
        need = (h.frames[-1].index + cfg.lookahead_frames) * SAMPLES_PER_FRAME - 1600
        covering = min(end for end in arrivals if end >= need)
        assert h.computable_ns == arrivals[covering]
    indices = [f.index for h in hops for f in h.frames]
    assert indices == list(range(first, first + len(indices)))


def test_release_rule_with_a_playout_delay(model):
    clock = SteadyClock()
    session = make_session(model, clock, playout_delay_s=0.9)
    hops = feed(session, make_signals(2.0, seed=3)[0], clock)
    assert hops
    for h in hops:
        assert h.release_ns == [s + 900_000_000 for s in h.stamps_ns]


def test_end_of_stream_flushes_and_the_next_audio_starts_a_new_conversation(model):
    partner = make_signals(2.0, seed=4)[0]
    clock = SteadyClock()
    session = make_session(model, clock, end_of_stream_s=0.5)
    hops = feed(session, partner, clock)
    assert session.step() == []                          # not yet silent for 0.5 s
    clock.ns += 600_000_000
    tail = session.step()
    assert tail and all(h.flushed and h.computable_ns is None for h in tail)
    frames = [f.index for h in hops + tail for f in h.frames]
    assert frames == list(range(-(-partner.shape[0] // SAMPLES_PER_FRAME)))   # each once
    assert session.counters["conversations_ended"] == 1
    assert session.counters["frames_flushed"] == sum(len(h.frames) for h in tail)
    clock.ns += 10 * NS
    assert session.step() == []                          # ended: nothing more
    # the same stream again, on a new clock: a new conversation with a new origin
    again = feed(session, partner[:16000], clock, origin=ORIGIN + 50 * NS)
    assert session.counters["conversation_restarts"] == 1
    assert session.origin_ns == ORIGIN + 50 * NS
    assert again[0].frames[0].index == 0 and again[0].stamps_ns[0] == ORIGIN + 50 * NS


def test_rewind_restarts_and_faces_wait_for_the_origin(model):
    clock = SteadyClock()
    session = make_session(model, clock)
    face = np.full(56, 0.1, np.float32)
    assert session.push_partner_face(face, ORIGIN + 80_000_000)       # before any audio: held
    assert session.runner.counters["partner_motion_frames"] == 0
    session.push_partner_audio(np.zeros(320, np.float32), 1600, ORIGIN + NS // 10)
    assert session.origin_ns == ORIGIN
    assert session.runner.counters["partner_motion_frames"] == 1
    assert not session.push_partner_face(face, ORIGIN - NS)           # before the origin
    assert session.counters["face_before_origin_dropped"] == 1
    session.push_partner_audio(np.zeros(320, np.float32), 160_000, ORIGIN + 10 * NS)
    session.push_partner_audio(np.zeros(320, np.float32), 0, ORIGIN + 200 * NS)   # player restart
    assert session.counters["conversation_restarts"] == 1
    assert session.origin_ns == ORIGIN + 200 * NS


def test_agent_audio_by_stamp(model):
    session = make_session(model, agent_clock="stamp")
    tone = np.full(320, 0.1, np.float32)
    assert not session.push_agent_audio(tone, 0, ORIGIN)              # no origin yet
    assert session.counters["agent_before_origin_dropped"] == 1
    session.push_partner_audio(np.zeros(320, np.float32), 0, ORIGIN)
    assert session.push_agent_audio(tone, 999_999, ORIGIN + NS)       # index ignored
    assert session.runner._agent.written_count(16000, 16320) == 320


def test_latency_figures_and_counters(model):
    clock = SteadyClock()
    session = make_session(model, clock)
    hops = feed(session, make_signals(2.0, seed=5)[0], clock)
    clock.ns += 30_000_000                      # published 30 ms after becoming computable
    for h in hops:
        for i in range(len(h.frames)):
            session.published(h, i, h.stamps_ns[i] + 700_000_000)
    values = session.diagnostics()
    assert values["processing_latency_ms_n"] == sum(len(h.frames) for h in hops)
    assert values["processing_latency_ms_p50"] >= 30.0
    assert values["end_to_end_latency_ms_p50"] == pytest.approx(700.0)
    assert values["frames_published"] == values["processing_latency_ms_n"]
    assert values["engine_hops"] == len(hops) and values["real_time_factor"] > 0
    assert values["algorithmic_latency_s"] == pytest.approx(0.48)
    session.published(hops[0], 0, 0)            # stamps not on the publishing clock
    assert session.diagnostics()["end_to_end_latency_ms_p50"] == "unavailable"
    assert session.counters["end_to_end_latency_implausible"] == 1


class NanHop:
    """The tiny model, whose output holds NaN in every third call (a broken checkpoint)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self.calls += 1
        if self.calls % 3 == 0:
            out = out.clone()
            out[:, -20:, 5] = float("nan")
        return out


def test_nonfinite_output_is_counted_and_replaced_by_the_last_good_pose(model):
    clock = SteadyClock()
    logged = []
    session = make_session(NanHop(model), clock, log=lambda lvl, text, **k: logged.append(text))
    hops = feed(session, make_signals(3.0, seed=6)[0], clock)
    frames = [f for h in hops for f in h.frames]
    assert all(np.isfinite(f.weights).all() for f in frames)
    bad = session.counters["nonfinite_frames"]
    assert bad > 0
    held = [i for i in range(1, len(frames)) if np.array_equal(frames[i].weights, frames[i - 1].weights)]
    assert len(held) >= bad - 1                 # each bad frame repeats the pose before it
    assert sum("NaN" in text for text in logged) == 1          # logged once


def test_run_time_settings(model):
    session = make_session(model)
    session.update(end_of_stream_s=2.5, restart_after_rewind_s=1.0)
    assert session.config.end_of_stream_s == 2.5 and session.runner.config.restart_after_rewind_s == 1.0
    with pytest.raises(ValueError, match=r"\['hop_s'\] cannot change while running"):
        session.check_update(hop_s=0.2)
    with pytest.raises(ValueError, match=r"end_of_stream_s: expected a number in \[0, 3600\], got -1"):
        session.update(end_of_stream_s=-1)
    assert session.config.end_of_stream_s == 2.5


def test_session_from_checkpoint_follows_what_it_records(tiny_checkpoint, tmp_path):
    session = StreamingSession.from_checkpoint(tiny_checkpoint, overrides={"hop_s": 0.2})
    cfg = session.config
    assert session.payload["preset"] == "tiny" and isinstance(session.runner, StreamingEngine)
    assert (cfg.window_s, cfg.lookahead_s, cfg.hop_s, cfg.crossfade_frames) == (4.0, 0.4, 0.2, 5)
    paper = StreamingSession.from_checkpoint(tiny_checkpoint, preset="paper")
    assert paper.config.window_s == 2.0
    partner = make_signals(1.0, seed=7)[0]
    session.push_partner_audio(partner, 0)
    hops = session.step() + session.finish()
    assert sum(len(h.frames) for h in hops) == SAMPLE_RATE // SAMPLES_PER_FRAME
    assert hops[0].stamps_ns[0] == 0                      # no stamps given: media time
