"""Synthetic mono calls of two different voices, with overlaps and silences, and their two-channel truth.

For the diarization tests and `bench/diarize.py`: each turn is spoken by espeak-ng in its speaker's voice
(a different voice variant, accent and speed per side), placed on that speaker's own track with pauses,
holds (long silences) and overlaps (a side starting before the other has finished), and the two tracks are
written both as a two-channel file (the truth: agent left) and mixed down to one channel (what a mono
recorder stores). The reference speech of each speaker comes from that speaker's own clean track:
10 ms frames above SPEECH_DBFS, pauses shorter than MIN_PAUSE_MS bridged.

The same spec gives the same bytes every time (seeded choices, espeak-ng and sox are deterministic).
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from callscribe.cli.samples import require_tools

RATE = 16000
SPEECH_DBFS = -40.0
MIN_PAUSE_MS = 300
AGENT, CUSTOMER = "agent", "customer"

AGENT_LINES = [
    "Thank you for calling Acme support, my name is Dana. How can I help you today?",
    "Good morning, you are through to the billing team. How may I help?",
    "I can certainly look into that for you. Could you give me your account number please?",
    "Thank you. I can see the order here, it was shipped on Monday.",
    "Let me check with the warehouse, this will only take a moment.",
    "I am sorry about the trouble. I will issue a refund to your card today.",
    "The refund should reach your account within three to five working days.",
    "Is there anything else I can help you with today?",
    "Your new contract starts on the first of next month.",
    "I have updated your address, you will get a confirmation email shortly.",
    "Could you confirm the last four digits of the card on the account?",
    "I understand. I will escalate this to my supervisor and call you back tomorrow.",
    "Thank you for your patience, and have a nice day. Goodbye.",
    "The technician can visit on Thursday morning between nine and twelve.",
]
CUSTOMER_LINES = [
    "Hi, I bought a blender last week and it stopped working after two days.",
    "I was charged twice this month and I would like to know why.",
    "Sure, it is seven four two nine one.",
    "That is strange, I never received any parcel.",
    "Okay, I will wait.",
    "Can you send me the invoice by email as well?",
    "I have been waiting for almost an hour on the phone already.",
    "No, that was everything, thank you very much.",
    "My internet keeps dropping every evening around eight o'clock.",
    "Yes, that works for me.",
    "I moved house in March, so the old address is wrong.",
    "The card ends in five five zero one.",
    "Well, that is not good enough, I want to cancel my subscription.",
]
BACKCHANNELS = ["Okay.", "Uh huh.", "Right.", "Yes.", "I see."]

# (agent voice, customer voice) pairs: espeak-ng language + variant ("en" is British English; "en-gb+VARIANT"
# ignores the variant), male against female both ways round
VOICE_PAIRS = [
    ("en-us+f3", "en-us+m3"),
    ("en+m1", "en-us+f2"),
    ("en-us+f4", "en+m7"),
    ("en-us+m4", "en+f3"),
    ("en+f2", "en-us+m1"),
    ("en-us+Annie", "en+Andy"),
    ("en+david", "en-us+f4"),
    ("en-us+f5", "en-us+m2"),
]


@dataclass(frozen=True)
class DialogueSpec:
    seed: int
    turns: int = 10
    voices: tuple[str, str] = VOICE_PAIRS[0]  # agent, customer
    overlap_chance: float = 0.25  # a turn starts 0.3 to 1.2 s before the other side has finished
    hold_chance: float = 0.15  # a silence of 4 to 7 s instead of a pause
    backchannel_chance: float = 0.15  # a short "okay" from the listener in the middle of a long turn
    noise: float = 0.0  # white noise on the mono mix (amplitude)
    one_voice: bool = False  # both sides in the agent's voice (a call diarization must not split)


@dataclass
class Dialogue:
    spec: DialogueSpec
    mono: Path
    stereo: Path  # the truth: agent left, customer right
    reference: list[tuple[str, int, int]] = field(default_factory=list)  # (speaker, start_ms, end_ms)
    turns: list[tuple[str, int, int, str]] = field(default_factory=list)  # (speaker, start, end, text) as placed

    @property
    def duration_ms(self) -> int:
        return int(soundfile.info(str(self.mono)).frames * 1000 / RATE)


def _speak(text: str, voice: str, speed: int, out: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True, capture_output=True)
    resampled = out.with_suffix(".16k.wav")
    subprocess.run(
        ["sox", "-R", "-D", str(out), "-r", str(RATE), "-c", "1", "-b", "16", str(resampled)],
        check=True,
        capture_output=True,
    )
    samples, _ = soundfile.read(str(resampled), dtype="float32")
    return _trim(samples)


def _trim(samples: np.ndarray) -> np.ndarray:
    """The clip without espeak's leading and trailing silence."""
    loud = np.nonzero(np.abs(samples) > 10 ** (SPEECH_DBFS / 20))[0]
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples[:0]


def reference_speech(track: np.ndarray) -> list[tuple[int, int]]:
    """Speech spans (ms) of one clean track: 10 ms frames above SPEECH_DBFS, pauses < MIN_PAUSE_MS bridged."""
    hop = RATE // 100
    frames = track[: len(track) // hop * hop].reshape(-1, hop)
    loud = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12) > SPEECH_DBFS
    spans: list[tuple[int, int]] = []
    for i in np.nonzero(loud)[0]:
        start, end = int(i) * 10, int(i) * 10 + 10
        if spans and start - spans[-1][1] < MIN_PAUSE_MS:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def synthesize_dialogue(directory: Path, name: str, spec: DialogueSpec) -> Dialogue:
    """`<name>.wav` (mono mix), `<name>.stereo.wav` (truth) and `<name>.json` in `directory`; kept and
    reused when the json names the same spec (a cache for benchmarks)."""
    directory.mkdir(parents=True, exist_ok=True)
    mono, stereo, meta = directory / f"{name}.wav", directory / f"{name}.stereo.wav", directory / f"{name}.json"
    if meta.exists() and mono.exists() and stereo.exists():
        saved = json.loads(meta.read_text())
        if saved.get("spec") == json.loads(json.dumps(asdict(spec))):
            return Dialogue(
                spec,
                mono,
                stereo,
                [(s, a, b) for s, a, b in saved["reference"]],
                [(s, a, b, t) for s, a, b, t in saved["turns"]],
            )
    require_tools()
    rng = random.Random(spec.seed)
    voice = {AGENT: spec.voices[0], CUSTOMER: spec.voices[0] if spec.one_voice else spec.voices[1]}
    speed = {AGENT: rng.randint(150, 175), CUSTOMER: rng.randint(140, 185)}
    placed: list[tuple[str, int, np.ndarray, str]] = []  # (speaker, start sample, clip, text)
    with tempfile.TemporaryDirectory(prefix="callscribe-dialogue-") as tmp:
        cursor = last_end = int(0.5 * RATE)
        speaker = AGENT
        for i in range(spec.turns):
            lines = AGENT_LINES if speaker == AGENT else CUSTOMER_LINES
            text = lines[(spec.seed * 7 + i * 3 + rng.randrange(len(lines))) % len(lines)]
            clip = _speak(text, voice[speaker], speed[speaker], Path(tmp) / f"t{i}.wav")
            start = cursor
            if placed and rng.random() < spec.overlap_chance:
                start = max(placed[-1][1] + RATE // 2, last_end - int(rng.uniform(0.3, 1.2) * RATE))
            placed.append((speaker, start, clip, text))
            other = CUSTOMER if speaker == AGENT else AGENT
            if len(clip) > 3 * RATE and rng.random() < spec.backchannel_chance:
                word = rng.choice(BACKCHANNELS)
                short = _speak(word, voice[other], speed[other], Path(tmp) / f"b{i}.wav")
                placed.append((other, start + int(len(clip) * rng.uniform(0.4, 0.6)), short, word))
            pause = rng.uniform(4.0, 7.0) if rng.random() < spec.hold_chance else rng.uniform(0.2, 1.5)
            last_end = max(last_end, start + len(clip))
            cursor = last_end + int(pause * RATE)
            speaker = other
    total = max(start + len(clip) for _, start, clip, _ in placed) + RATE // 2
    tracks = {AGENT: np.zeros(total, dtype=np.float32), CUSTOMER: np.zeros(total, dtype=np.float32)}
    for who, start, clip, _ in placed:
        tracks[who][start : start + len(clip)] += clip
    mix = tracks[AGENT] + tracks[CUSTOMER]
    if spec.noise > 0:
        mix = mix + np.random.default_rng(spec.seed).standard_normal(total).astype(np.float32) * spec.noise
    peak = max(1.0, float(np.abs(mix).max()) / 0.95)
    soundfile.write(str(mono), mix / peak, RATE, subtype="PCM_16")
    soundfile.write(str(stereo), np.stack([tracks[AGENT], tracks[CUSTOMER]], axis=1) / peak, RATE, subtype="PCM_16")
    reference = [(who, a, b) for who in (AGENT, CUSTOMER) for a, b in reference_speech(tracks[who] / peak)]
    reference.sort(key=lambda r: (r[1], r[0]))
    turns = [(who, start * 1000 // RATE, (start + len(clip)) * 1000 // RATE, text) for who, start, clip, text in placed]
    meta.write_text(json.dumps({"spec": asdict(spec), "reference": reference, "turns": turns}, indent=1))
    return Dialogue(spec, mono, stereo, reference, turns)


def bench_specs(count: int) -> list[tuple[str, DialogueSpec]]:
    """`count` varied two-voice calls (8 voice pairs in turn, 8 to 14 turns; every fourth with light noise)."""
    out = []
    for i in range(count):
        spec = DialogueSpec(
            seed=1000 + i,
            turns=8 + (i * 5) % 7,
            voices=VOICE_PAIRS[i % len(VOICE_PAIRS)],
            noise=0.003 if i % 4 == 3 else 0.0,
        )
        out.append((f"call{i:02d}", spec))
    return out
