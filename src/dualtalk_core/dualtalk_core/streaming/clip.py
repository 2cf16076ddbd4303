"""A whole clip from files through a :class:`StreamingSession`, chunked as a live stream arrives.

Why: ``dualtalk infer --streaming`` (and the benchmarks) must exercise exactly what runs on a
robot - the session, its runner, validation and flushing - not a shortcut around them, and must
give the same ``.npy`` as offline inference when the model is causal.  So the clip is cut into
``chunk_ms`` pieces and pushed in time order: per piece the partner audio, the agent audio and
the partner face frames whose time falls in it, then a session step.  The agent's speech goes
``agent_lead_s`` ahead of the partner audio, as a TTS that knows its audio publishes it; the
default is what the runner needs to use every agent sample (for the live runner
``self_lookahead_s - partner_lookahead_s``, for the sliding window 0), so the stream loses
nothing a file holds.  At the end the session is finished (its runner flushed).
"""
from __future__ import annotations

import numpy as np

from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME, num_frames_for_samples
from dualtalk_core.streaming.session import NS_PER_FRAME, StreamingSession


def default_agent_lead_s(session: StreamingSession) -> float:
    """How far ahead the agent's audio must come for the runner to use all of it (s)."""
    c = session.config
    if not c.is_live:
        return 0.0
    return max(0.0, (c.self_lookahead_s or 0.0) - (c.partner_lookahead_s or 0.0))


def stream_clip(session: StreamingSession, self_audio: np.ndarray, partner_audio: np.ndarray,
                partner_motion: np.ndarray, chunk_ms: float = 20.0,
                agent_lead_s: float | None = None) -> np.ndarray:
    """Push a fitted clip (self audio [n], partner audio [n], motion [T, 56] at k / 25 s) and
    return the agent frames 0..T-1, float32 [T, 56] (``ValueError`` if any is missing)."""
    chunk = int(round(chunk_ms * SAMPLE_RATE / 1000))
    if chunk < 1:
        raise ValueError(f"chunk_ms: expected at least {1000 / SAMPLE_RATE:g} ms, got {chunk_ms!r}")
    lead_s = default_agent_lead_s(session) if agent_lead_s is None else agent_lead_s
    lead = int(round(lead_s * SAMPLE_RATE))
    n, frames = partner_audio.shape[0], num_frames_for_samples(partner_audio.shape[0])
    out: dict[int, np.ndarray] = {}

    def collect(hops) -> None:
        for hop in hops:
            for f in hop.frames:
                out[f.index] = f.weights

    agent_pos = face = 0
    for pos in range(0, n, chunk):
        end = min(pos + chunk, n)
        session.push_partner_audio(partner_audio[pos:end], pos)
        agent_end = min(end + lead, self_audio.shape[0])
        if agent_end > agent_pos:
            session.push_agent_audio(self_audio[agent_pos:agent_end], agent_pos)
            agent_pos = agent_end
        while face < partner_motion.shape[0] and face * SAMPLES_PER_FRAME < end:
            session.push_partner_face(partner_motion[face], face * NS_PER_FRAME)
            face += 1
        collect(session.step())
    collect(session.finish())
    missing = [k for k in range(frames) if k not in out]
    if missing:
        raise ValueError(f"streamed clip: {len(missing)} of {frames} frames never came out "
                         f"(first {missing[:5]}); counters: {session.diagnostics()}")
    return np.stack([out[k] for k in range(frames)]).astype(np.float32)


def predict_clip_streamed(model, payload, self_audio: np.ndarray, partner_audio: np.ndarray,
                          partner_motion: np.ndarray | None, chunk_ms: float = 20.0,
                          device: str = "cpu", length_from: str = "audio",
                          log=None) -> np.ndarray:
    """:func:`~dualtalk_core.model.inference.predict_clip`'s streamed twin: the same fitted
    inputs through a fresh session and the runner the checkpoint names (``dualtalk infer
    --streaming`` and ``dualtalk evaluate --streaming``: what a robot would have got)."""
    from dualtalk_core.model.inference import fit_clip
    from dualtalk_core.streaming.runners import make_runner, runner_kind, streaming_config_for

    kind = runner_kind(payload)
    # a file is pushed faster than real time: never end the conversation on a slow step
    config = streaming_config_for(payload, overrides={"end_of_stream_s": 0.0})
    session = StreamingSession(make_runner(kind, model, config, str(device)))
    self_audio, partner_audio, partner_motion, _ = fit_clip(self_audio, partner_audio,
                                                            partner_motion, length_from)
    pred = stream_clip(session, self_audio, partner_audio, partner_motion, chunk_ms)
    if log is not None:
        log.info("streamed with the %s runner in %g ms chunks; %d input(s) refused", kind,
                 chunk_ms, session.counters["engine_rejected"])
    return pred
