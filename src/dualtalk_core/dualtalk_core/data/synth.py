"""Synthetic two-person conversations in the exact DualTalk layout, deterministic per seed.

Why: the real data set is 50 h behind a licence; tests, the demo and benchmarks need data with
the same files and shapes, and with motion a model can *learn*, so that training and evaluation
can be checked end to end. The rules (all per 25 fps frame):

* speaking: the jaw opening (``pose[:, 3]``, 56-layout index 50) and a few mouth-related
  expression dims follow the speaker's OWN speech envelope (smoothed 40 ms RMS,
  :func:`dualtalk_core.signals.speech_energy_per_frame`, normalised per clip), during the
  speaker's own phrases only (a speaker who says nothing keeps the mouth closed);
* listening: after each of the partner's phrase ends the listener nods (head pitch,
  ``pose[:, 0]``, index 53) and smiles (smile-like expression dims), with a short delay;
* always: idle head sway, blinks, a slow expression drift and small noise.

Two scales (``face_stats``): by default the faces are drawn on the scale of real EMOCA tracks
from statistics measured by ``dualtalk data calibrate`` (:mod:`dualtalk_core.data.synth_face`:
same rules, real sizes and directions); ``"legacy"`` keeps the original hand-set sizes below
(expression ~0.1), byte for byte, because the bundled demo model was trained on them.

Speech comes from ``espeak-ng`` (varied voices, speeds, pitches, texts from a word list,
resampled to 16 kHz with soxr) when it is installed, otherwise from a procedural voice (glottal
pulse train through formant resonators with syllable envelopes). Each pair has 1..6 rounds of
turn-taking with pauses and overlaps and lasts 6..30 s. Each pair draws from its own
``default_rng([seed, pair])``; WAV and NPZ files are written without timestamps, so the same seed
gives byte-identical files (with espeak: on the same machine/espeak version).
"""
from __future__ import annotations

import io
import json
import logging
import math
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import lfilter

from dualtalk_core import layout
from dualtalk_core.data.face_stats import FaceStats, face_stats_label, resolve_face_stats
from dualtalk_core.data.motion_io import npz_arrays, write_npz_deterministic
from dualtalk_core.data.synth_face import kernel_response, make_calibrated_motion
from dualtalk_core.media.audio_io import write_wav_float32
from dualtalk_core.signals import speech_energy_per_frame

log = logging.getLogger(__name__)

SR = layout.SAMPLE_RATE
FPS = layout.FRAME_RATE
SPF = layout.SAMPLES_PER_FRAME

# Expression dims the rules drive (indices into exp[0:50]); weights are the per-unit direction.
MOUTH_DIMS = (0, 2, 3)
MOUTH_WEIGHTS = (1.6, -0.8, 0.6)
SMILE_DIMS = (5, 7)
SMILE_WEIGHTS = (1.0, 0.7)
BLINK_DIM = 9
# Legacy scale. Size of the parts a model CANNOT predict (per-speaker offset, slow drift, blinks, noise). They
# are kept small: FD compares distributions, so if they dominated, sampling random training
# frames would score as well as a model that has learned every rule. Measured on 20 test pairs
# (FD-EXP of the rules' conditional mean vs random frames): offset 0.05 / drift 0.3 / blink 1.2
# gave 0.270 vs 0.275 (a tie); these values give 0.044 vs 0.072. On the test split of
# `--pairs 200 --seed 0` (40 clip-sides): 0.054 vs 0.079, and 0.054 vs 0.059 without its one
# silent speaker (random frames make that face talk), so random frames stay a strong FD baseline.
EXP_OFFSET_STD = 0.02
DRIFT_SCALE = 0.1
BLINK_AMPLITUDE = 0.6
NOISE_STD = 0.01
MIC_NOISE_STD = 1e-3  # the audio tracks' microphone noise floor
# Frame RMS below which a frame is silence whatever the clip's level: the live VAD's switch-off
# level (VadConfig.off_db, -50 dBFS = 0.0032, 3x this noise floor), so scoring on recorded data and
# the running graph agree on what silence is. Without a floor, a speaker who never speaks has
# their noise scaled up to "speech" by the clip-relative threshold.
JAW_RX = 3        # npz pose column of jaw rotation x (= 56-layout index 50)
HEAD_PITCH = 0    # npz pose column of head pitch (= 56-layout index 53)

WORDS = (
    "the a and so well yes no really maybe think know like just time people good great right "
    "sure okay today weather morning yesterday tomorrow dinner music movie travel city house "
    "work friend family coffee garden story question answer idea plan weekend summer winter "
    "remember interesting funny strange important beautiful wonderful actually probably "
    "definitely never always sometimes often quite very much little more about after before "
    "went saw heard said told asked wanted liked loved tried started finished walked talked "
    "book paper phone computer robot machine river mountain ocean street train station market"
).split()
BACKCHANNELS = ("yeah", "mm hmm", "right", "okay", "oh really", "I see", "sure")
ESPEAK_VOICES = ("en+m1", "en+m2", "en+m3", "en+m4", "en+m5", "en+f1", "en+f2", "en+f3",
                 "en+f4", "en-us+m3", "en-us+f2", "en-gb+m2")
VOWEL_FORMANTS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410),
                  (440, 1020, 2240), (300, 870, 2240), (660, 1720, 2410))


@dataclass
class Persona:
    """One synthetic speaker: voice and motion style (all drawn from the pair's rng)."""

    voice: str
    speed: int
    pitch: int
    f0: float
    formant_scale: float
    loudness: float
    jaw_gain: float
    mouth_gain: float
    nod_gain: float
    smile_gain: float
    nod_delay_s: float
    sway_amp: float
    sway_freq: float
    blink_rate: float
    exp_offset: list[float] = field(default_factory=list)

    @classmethod
    def draw(cls, rng: np.random.Generator, identity_std: np.ndarray | None = None) -> "Persona":
        """Draw a persona; ``identity_std`` (per exp dim) sizes the identity offset on the
        calibrated scale, None keeps the legacy size (same rng draws either way)."""
        female = bool(rng.random() < 0.5)
        return cls(
            voice=str(rng.choice(ESPEAK_VOICES)),
            speed=int(rng.integers(140, 191)),
            pitch=int(rng.integers(30, 71)),
            f0=float(rng.uniform(180, 240) if female else rng.uniform(95, 140)),
            formant_scale=float(rng.uniform(1.05, 1.15) if female else rng.uniform(0.92, 1.02)),
            loudness=float(rng.uniform(0.3, 0.7)),
            jaw_gain=float(rng.uniform(0.8, 1.2)),
            mouth_gain=float(rng.uniform(0.8, 1.2)),
            nod_gain=float(rng.uniform(0.7, 1.3)),
            smile_gain=float(rng.uniform(0.6, 1.4)),
            nod_delay_s=float(rng.uniform(0.1, 0.3)),
            sway_amp=float(rng.uniform(0.02, 0.05)),
            sway_freq=float(rng.uniform(0.08, 0.25)),
            blink_rate=float(rng.uniform(0.15, 0.4)),
            exp_offset=[float(v) for v in (
                rng.normal(0.0, EXP_OFFSET_STD, 50) if identity_std is None
                else rng.normal(0.0, 1.0, 50) * np.asarray(identity_std, np.float64))],
        )


@dataclass
class Phrase:
    """One placed phrase: who, where (samples), and its text."""

    speaker: int  # 1 or 2
    start: int
    end: int
    text: str
    backchannel: bool = False


# --------------------------------------------------------------------------------------------
# voices

def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_phrase(text: str, persona: Persona) -> np.ndarray:
    """Speak ``text`` with espeak-ng (stdout WAV), resample to 16 kHz, trim silence."""
    import soundfile as sf
    import soxr

    cmd = ["espeak-ng", "--stdout", "-v", persona.voice, "-s", str(persona.speed),
           "-p", str(persona.pitch), text]
    proc = subprocess.run(cmd, capture_output=True, check=True, timeout=30)
    data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    audio = data[:, 0]
    if sr != SR:
        audio = soxr.resample(audio, sr, SR).astype(np.float32)
    return _trim_silence(audio)


def _trim_silence(audio: np.ndarray, thresh: float = 1e-3) -> np.ndarray:
    idx = np.nonzero(np.abs(audio) > thresh)[0]
    if idx.size == 0:
        return audio[:SPF]
    return audio[idx[0]:idx[-1] + 1]


def _resonator(x: np.ndarray, freq: float, bw: float) -> np.ndarray:
    r = math.exp(-math.pi * bw / SR)
    a = [1.0, -2.0 * r * math.cos(2 * math.pi * freq / SR), r * r]
    return lfilter([1.0 - r], a, x)


def procedural_phrase(text: str, persona: Persona, rng: np.random.Generator) -> np.ndarray:
    """A voiced signal with the rhythm of ``text``: pulse train -> formants, syllable envelopes."""
    pieces: list[np.ndarray] = []
    words = text.split()
    n_words = len(words)
    for wi, word in enumerate(words):
        n_syl = max(1, min(3, sum(ch in "aeiouy" for ch in word.lower())))
        for _ in range(n_syl):
            dur = rng.uniform(0.11, 0.24) * 160.0 / persona.speed
            n = int(dur * SR)
            t = np.arange(n) / SR
            progress = (wi + t / max(dur, 1e-3) / n_syl) / n_words
            f0 = persona.f0 * (1.08 - 0.2 * progress) * (1 + 0.02 * rng.standard_normal())
            phase = np.cumsum(np.full(n, f0 / SR))
            pulses = np.diff(np.floor(phase), prepend=0.0)
            glottal = lfilter([1.0], [1.0, -0.96], pulses)
            glottal -= glottal.mean()
            f1, f2, f3 = (f * persona.formant_scale for f in VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))])
            voiced = _resonator(glottal, f1, 80) + 0.6 * _resonator(glottal, f2, 100) \
                + 0.3 * _resonator(glottal, f3, 140)
            env = np.sin(np.pi * np.clip(t / dur, 0, 1)) ** 0.7
            burst_n = int(rng.uniform(0.015, 0.04) * SR)
            noise = np.zeros(n)
            noise[:burst_n] = np.diff(rng.standard_normal(burst_n + 1)) * 0.15
            pieces.append((voiced * env + noise).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.03, 0.08) * SR), np.float32))
    audio = np.concatenate(pieces)
    peak = np.max(np.abs(audio)) or 1.0
    return (audio / peak * 0.8).astype(np.float32)


# --------------------------------------------------------------------------------------------
# conversation timeline

def _text(rng: np.random.Generator, lo: int = 2, hi: int = 8) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi + 1))).tolist())


def make_conversation(rng: np.random.Generator, personas: Sequence[Persona], voice: str,
                      min_rounds: int, max_rounds: int, min_seconds: float, max_seconds: float,
                      ) -> tuple[list[np.ndarray], list[Phrase], int]:
    """Audio of both speakers (float32 [n] each), the placed phrases, and n."""
    max_n = int(max_seconds * SR)
    target_n = int(rng.uniform(min_seconds, max_seconds) * SR)  # varied clip lengths
    speak = (lambda text, p: espeak_phrase(text, p)) if voice == "espeak" else \
        (lambda text, p: procedural_phrase(text, p, rng))
    rounds = int(rng.integers(min_rounds, max_rounds + 1))
    speaker = int(rng.integers(1, 3))
    cursor = int(rng.uniform(0.2, 1.0) * SR)
    segments: list[tuple[Phrase, np.ndarray]] = []
    turn = 0
    while True:
        enough_turns = turn >= 2 * rounds
        if (enough_turns and cursor >= min_seconds * SR) or cursor >= target_n - SR // 2:
            break
        p = personas[speaker - 1]
        turn_start = cursor
        for k in range(int(rng.integers(1, 4))):
            text = _text(rng)
            audio = speak(text, p) * p.loudness
            start = cursor
            end = min(start + audio.size, max_n)
            if end - start < SPF:
                break
            segments.append((Phrase(speaker, start, end, text), audio[:end - start]))
            cursor = end + int(rng.uniform(0.12, 0.45) * SR)
        # listener backchannel somewhere inside the turn, now and then
        if rng.random() < 0.3 and cursor - turn_start > SR:
            other = 3 - speaker
            text = str(rng.choice(BACKCHANNELS))
            audio = speak(text, personas[other - 1]) * personas[other - 1].loudness * 0.7
            start = int(rng.integers(turn_start + SR // 2, cursor))
            end = min(start + audio.size, max_n)
            if end - start >= SPF:
                segments.append((Phrase(other, start, end, text, True), audio[:end - start]))
        # gap to the next turn: negative = overlap
        last_end = max(ph.end for ph, _ in segments) if segments else cursor
        gap = rng.uniform(-0.5, 1.2)
        cursor = max(turn_start + SPF, int(last_end + gap * SR))
        speaker = 3 - speaker
        turn += 1
    speech_end = max(ph.end for ph, _ in segments)
    n = int(np.clip(speech_end + rng.uniform(0.3, 1.0) * SR, min_seconds * SR, max_n))
    n -= int(rng.integers(0, SPF))  # like the release: audio ends inside the last frame
    tracks = [np.zeros(n, np.float64), np.zeros(n, np.float64)]
    phrases = []
    for ph, audio in segments:
        end = min(ph.end, n)
        if end - ph.start < SPF:
            continue
        tracks[ph.speaker - 1][ph.start:end] += audio[:end - ph.start]
        phrases.append(Phrase(ph.speaker, ph.start, end, ph.text, ph.backchannel))
    out = []
    for tr in tracks:
        tr += rng.normal(0.0, MIC_NOISE_STD, n)
        out.append(np.clip(tr, -1.0, 1.0).astype(np.float32))
    phrases.sort(key=lambda ph: (ph.start, ph.speaker))
    return out, phrases, n


# --------------------------------------------------------------------------------------------
# motion rules

def normalised_envelope(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """Speech envelope per frame scaled to ~[0, 1] by its 95th percentile over voiced frames."""
    env = speech_energy_per_frame(audio, num_frames, smooth_frames=1.0).astype(np.float64)
    floor = np.percentile(env, 10)
    env = np.maximum(env - floor, 0.0)
    voiced = env[env > 0.05 * env.max()] if env.max() > 0 else env
    ref = np.percentile(voiced, 95) if voiced.size else 1.0
    return np.clip(env / max(ref, 1e-8), 0.0, 1.3)


def make_motion(own_audio: np.ndarray, num_frames: int, persona: Persona, self_speaking: np.ndarray,
                partner_phrase_ends: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """The rule-based [T, 56] motion of one speaker (see the module docstring)."""
    t = num_frames
    time = np.arange(t) / FPS
    # the mouth moves only while this speaker speaks (their noise floor is not speech)
    env = normalised_envelope(own_audio, t) * np.asarray(self_speaking, np.float64)[:t]
    exp = np.tile(np.asarray(persona.exp_offset, np.float64), (t, 1))
    pose = np.zeros((t, 6))
    # speaking: jaw + mouth follow own envelope
    pose[:, JAW_RX] = 0.02 + 0.22 * persona.jaw_gain * env
    for d, w in zip(MOUTH_DIMS, MOUTH_WEIGHTS):
        exp[:, d] += w * persona.mouth_gain * env
    pose[:, HEAD_PITCH] += 0.015 * env
    # listening: nod + smile after partner phrase ends (when not speaking then)
    ends = [e + persona.nod_delay_s * FPS for e in partner_phrase_ends
            if not self_speaking[min(int(e), t - 1)]]
    nod_len = 14
    nod = np.sin(np.pi * np.arange(nod_len) / nod_len) ** 2
    pose[:, HEAD_PITCH] += 0.07 * persona.nod_gain * kernel_response(t, ends, nod)
    ks = np.arange(60)
    smile_k = (1 - np.exp(-ks / 5.0)) * np.exp(-ks / 25.0)
    smile = np.minimum(kernel_response(t, ends, smile_k), 1.0)
    for d, w in zip(SMILE_DIMS, SMILE_WEIGHTS):
        exp[:, d] += w * persona.smile_gain * 0.8 * smile
    # always: sway, blinks, slow drift, noise
    phases = rng.uniform(0, 2 * np.pi, 3)
    pose[:, 1] += persona.sway_amp * np.sin(2 * np.pi * persona.sway_freq * time + phases[0])
    pose[:, 2] += 0.5 * persona.sway_amp * np.sin(2 * np.pi * 0.7 * persona.sway_freq * time + phases[1])
    pose[:, 0] += 0.3 * persona.sway_amp * np.sin(2 * np.pi * 1.3 * persona.sway_freq * time + phases[2])
    n_blinks = rng.poisson(persona.blink_rate * t / FPS)
    blink_k = np.array([0.4, 1.0, 0.8, 0.3])
    exp[:, BLINK_DIM] += BLINK_AMPLITUDE * kernel_response(t, rng.uniform(0, t, n_blinks), blink_k)
    drift = lfilter([0.05], [1.0, -0.95], rng.standard_normal((t, 50)), axis=0)
    exp += DRIFT_SCALE * drift
    exp += rng.normal(0, NOISE_STD, exp.shape)
    pose += rng.normal(0, 0.002, pose.shape)
    motion = np.empty((t, layout.DIM), np.float32)
    motion[:, layout.EXP] = exp
    motion[:, layout.JAW] = pose[:, 3:6]
    motion[:, layout.POSE] = pose[:, 0:3]
    return motion


# --------------------------------------------------------------------------------------------

@dataclass
class SynthSummary:
    root: str
    seed: int
    voice: str
    clips: dict[str, list[str]]  # split -> clip names
    seconds: float               # total conversation length

    @property
    def pairs(self) -> int:
        return sum(len(v) for v in self.clips.values())


def parse_splits(text: str | dict[str, float]) -> dict[str, float]:
    """``"train=0.8,test=0.1,ood=0.1"`` -> dict; fractions must be >= 0 and sum to 1."""
    if isinstance(text, dict):
        splits = {str(k): float(v) for k, v in text.items()}
    else:
        splits = {}
        for part in text.split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"split {part!r}: expected NAME=FRACTION")
            splits[name.strip()] = float(value)
    if not splits or any(v < 0 for v in splits.values()) or abs(sum(splits.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {splits}")
    return splits


def split_counts(pairs: int, splits: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of ``pairs * fraction``."""
    raw = {k: pairs * v for k, v in splits.items()}
    counts = {k: int(math.floor(v)) for k, v in raw.items()}
    rest = pairs - sum(counts.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), list(raw).index(k)))[:rest]:
        counts[k] += 1
    return counts


def resolve_voice(voice: str) -> str:
    if voice == "auto":
        return "espeak" if espeak_available() else "procedural"
    if voice == "espeak" and not espeak_available():
        raise ValueError("voice 'espeak' requested but espeak-ng is not installed "
                         "(use --voice procedural)")
    if voice not in ("espeak", "procedural"):
        raise ValueError(f"voice must be auto, espeak or procedural, got {voice!r}")
    return voice


def synthesize_pair(seed: int, index: int, voice: str = "procedural", min_rounds: int = 1,
                    max_rounds: int = 6, min_seconds: float = 6.0, max_seconds: float = 30.0,
                    face_stats: FaceStats | None = None):
    """One conversation: ([audio1, audio2], [motion1, motion2], phrases, personas); faces on the
    legacy scale (:func:`make_motion`) when ``face_stats`` is None, else on its scale."""
    rng = np.random.default_rng([seed, index])
    identity = None if face_stats is None else face_stats.vec("identity_std")
    personas = [Persona.draw(rng, identity), Persona.draw(rng, identity)]
    audios, phrases, n = make_conversation(rng, personas, voice, min_rounds, max_rounds,
                                           min_seconds, max_seconds)
    t = layout.num_frames_for_samples(n)
    motions = []
    for spk in (1, 2):
        speaking = np.zeros(t, bool)
        for ph in phrases:
            if ph.speaker == spk:
                speaking[ph.start // SPF:ph.end // SPF + 1] = True
        partner_ends = [ph.end / SPF for ph in phrases if ph.speaker != spk and not ph.backchannel]
        args = (audios[spk - 1], t, personas[spk - 1], speaking, partner_ends, rng)
        motions.append(make_motion(*args) if face_stats is None
                       else make_calibrated_motion(*args, face_stats))
    return audios, motions, phrases, personas


def synthesize_dataset(root: Path | str, pairs: int, seed: int = 0,
                       splits: str | dict[str, float] = "train=0.8,test=0.1,ood=0.1",
                       min_rounds: int = 1, max_rounds: int = 6, voice: str = "auto",
                       min_seconds: float = 6.0, max_seconds: float = 30.0,
                       progress: bool = False,
                       face_stats: "str | Path | FaceStats | None" = None) -> SynthSummary:
    """Write ``pairs`` conversations under ``root/<split>/`` plus ``root/synth.json``.

    ``face_stats``: ``"legacy"`` (the hand-set scale the bundled demo model was trained on;
    byte-identical to the data before calibration), None / ``"real"`` (the packaged statistics
    of the real sample clip, the default) or a ``dualtalk data calibrate`` JSON path.
    """
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    if not 1.0 <= min_seconds <= max_seconds:
        raise ValueError(f"need 1 <= min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    fractions = parse_splits(splits)
    voice = resolve_voice(voice)
    stats = resolve_face_stats(face_stats)
    root = Path(root)
    counts = split_counts(pairs, fractions)
    order = np.random.default_rng([seed, 10**6]).permutation(pairs)
    assignment: dict[int, str] = {}
    pos = 0
    for name, c in counts.items():
        for i in order[pos:pos + c]:
            assignment[int(i)] = name
        pos += c
    clips: dict[str, list[str]] = {name: [] for name in fractions}
    for name in fractions:
        (root / name).mkdir(parents=True, exist_ok=True)
    meta_clips = {}
    total = 0.0
    iterator = range(pairs)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="synth", unit="pair")
    for i in iterator:
        split = assignment[i]
        clip = f"synth{seed}_{i:05d}"
        out_dir = root / split
        out_dir.mkdir(parents=True, exist_ok=True)
        audios, motions, phrases, personas = synthesize_pair(
            seed, i, voice, min_rounds, max_rounds, min_seconds, max_seconds, stats)
        for spk in (1, 2):
            write_wav_float32(out_dir / f"{clip}_speaker{spk}.wav", audios[spk - 1])
            write_npz_deterministic(out_dir / f"{clip}_speaker{spk}.npz",
                                    npz_arrays(motions[spk - 1]))
        clips[split].append(clip)
        total += audios[0].size / SR
        meta_clips[clip] = {
            "split": split,
            "phrases": [[ph.speaker, ph.start, ph.end, ph.text, ph.backchannel] for ph in phrases],
            "personas": [asdict(p) for p in personas],
        }
    meta = {"seed": seed, "pairs": pairs, "voice": voice, "splits": fractions,
            "min_rounds": min_rounds, "max_rounds": max_rounds,
            "rules": {"mouth_dims": MOUTH_DIMS, "smile_dims": SMILE_DIMS, "blink_dim": BLINK_DIM,
                      "jaw_index": layout.JAW.start, "head_pitch_index": layout.POSE.start},
            "clips": meta_clips}
    if stats is not None:  # legacy data keep their synth.json byte for byte
        meta["face_stats"] = face_stats_label(face_stats)
    (root / "synth.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return SynthSummary(str(root), seed, voice, clips, total)
