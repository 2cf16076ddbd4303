"""Energy VAD with hysteresis: silence, real (espeak-ng) speech, clicks, pauses, engine output."""
from __future__ import annotations

import numpy as np
import pytest

from dualtalk_core.layout import SAMPLE_RATE, SAMPLES_PER_FRAME
from dualtalk_core.streaming.engine import StreamingConfig, StreamingEngine
from dualtalk_core.vad import SILENCE_DB, EnergyVad, VadConfig, frame_levels_db
from streaming_helpers import espeak_speech, feed, single_thread, tiny_model


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return espeak_speech("hello there, how are you doing today")


def test_levels_of_silence_and_full_scale():
    levels = frame_levels_db(np.concatenate([np.zeros(640), np.ones(640), 0.1 * np.ones(640)]))
    np.testing.assert_allclose(levels, [SILENCE_DB, 0.0, -20.0], atol=1e-9)
    assert frame_levels_db(np.zeros(100)).shape == (0,)     # incomplete frame: no level


def test_silence_and_low_noise_never_speak():
    vad = EnergyVad()
    rng = np.random.default_rng(0)
    quiet = np.concatenate([np.zeros(SAMPLE_RATE), 1e-3 * rng.standard_normal(SAMPLE_RATE)])
    scores, speaking = vad.process(quiet)
    assert not speaking.any()
    assert scores.max() == 0.0


def test_real_speech_is_detected(speech):
    pad = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([pad, speech, pad])
    scores, speaking = EnergyVad().process(audio)
    lead = SAMPLE_RATE // SAMPLES_PER_FRAME
    speech_frames = len(speech) // SAMPLES_PER_FRAME
    assert not speaking[:lead].any()                              # silence before
    inside = speaking[lead: lead + speech_frames]
    assert inside.mean() > 0.8                                    # pauses bridged by the hangover
    onset = int(np.argmax(speaking))
    assert lead <= onset <= lead + 6                              # within ~240 ms of the first word
    assert not speaking[-lead // 2:].any()                        # switched off after the hangover
    assert scores[lead: lead + speech_frames].mean() > 0.6


def test_hysteresis_ignores_clicks_and_bridges_short_pauses():
    cfg = VadConfig(on_db=-30, off_db=-40, onset_s=0.08, hangover_s=0.2)
    loud, quiet = -10.0, -60.0
    vad = EnergyVad(cfg)
    # one loud frame (a click) does not switch on
    assert [vad.update(x)[1] for x in (quiet, loud, quiet, quiet)] == [False] * 4
    # two in a row do
    assert [vad.update(x)[1] for x in (loud, loud)] == [False, True]
    # a 3-frame pause (120 ms < 200 ms hangover) keeps it on; a level between off and on too
    assert all(vad.update(x)[1] for x in (quiet, quiet, quiet, -35.0, -35.0, quiet))
    # a long pause switches off after more than hangover_frames quiet frames
    assert vad.update(loud)[1]
    states = [vad.update(quiet)[1] for _ in range(8)]
    assert states.index(False) == cfg.hangover_frames
    vad.reset()
    assert vad.speaking is False


def test_config_validation():
    with pytest.raises(ValueError, match="off_db"):
        VadConfig(on_db=-50, off_db=-40)
    with pytest.raises(ValueError, match="hangover_s"):
        VadConfig(hangover_s=-1)
    with pytest.raises(ValueError, match=r"VadConfig: unknown key\(s\) \[.on.\]"):
        VadConfig.from_dict({"on": -3})
    assert VadConfig.from_dict(VadConfig().to_dict()) == VadConfig()


def test_engine_reports_vad_per_speaker_per_frame(speech):
    """Partner talks first, then the agent (pushed ahead as TTS): each frame says who talks."""
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    n = len(speech)
    partner = np.concatenate([gap, speech, np.zeros(n, np.float32), gap])
    agent = np.concatenate([gap, np.zeros(n, np.float32), speech, gap])
    with single_thread():
        engine = StreamingEngine(tiny_model(), StreamingConfig())
        frames = feed(engine, partner, chunk_sizes=[1600] * 1000, agent=agent)
    p = np.array([f.partner_speaking for f in frames])
    a = np.array([f.agent_speaking for f in frames])
    first_turn = slice(len(gap) // SAMPLES_PER_FRAME + 10, (len(gap) + n) // SAMPLES_PER_FRAME - 10)
    second_turn = slice((len(gap) + n) // SAMPLES_PER_FRAME + 10, (len(gap) + 2 * n) // SAMPLES_PER_FRAME - 10)
    assert p[first_turn].mean() > 0.8 and not a[first_turn].any()
    assert a[second_turn].mean() > 0.8 and not p[second_turn].any()
    assert not p[:10].any() and not a[:10].any()
    assert all(0.0 <= f.partner_vad <= 1.0 and 0.0 <= f.agent_vad <= 1.0 for f in frames)
