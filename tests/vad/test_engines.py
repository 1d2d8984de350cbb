"""VAD engines in-process: streaming equivalence, silence and noise, Silero on speech, bounded memory.

The speech corpus (`build_corpus`) is shared with test_fsmn_agreement.py: sentences spoken by espeak-ng,
converted with sox and laid end to end with known gaps, so every planted sentence's span is known.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callscribe.vad.engines import FsmnVadModel, SileroVadModel, SpeechDetector, VadParams, load_engine

SR = 16000
SENTENCES = [
    "Thank you for calling customer support, my name is Alex.",
    "I would like to ask about the charge on my last invoice.",
    "Could you please confirm the account number for me?",
    "Sure, it is four seven two nine one eight.",
    "I can see two payments on the fifth of March.",
    "The second one was a mistake and we will refund it today.",
    "How long will it take before the money is back on my card?",
    "Usually three to five business days, depending on your bank.",
    "Is there anything else I can help you with this afternoon?",
    "No, that was all, thank you very much for your help.",
    "You are welcome, have a nice day and goodbye.",
    "Our opening hours are from nine in the morning to six in the evening.",
]


@dataclass(frozen=True)
class Recording:
    name: str
    path: Path  # 16 kHz mono 16-bit wav
    planted: list[tuple[int, int]]  # sentence spans, ms

    @property
    def samples(self) -> np.ndarray:
        data, rate = soundfile.read(str(self.path), dtype="float32")
        assert rate == SR and data.ndim == 1
        return data


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def _sox(*args: str | Path | float) -> None:
    """sox in repeatable mode (-R: fixed dither and noise seeds), so a corpus is the same on every build."""
    _run("sox", "-R", *(str(a) for a in args))


def _speak(text: str, out: Path, rate: int, voice: str, speed: int) -> np.ndarray:
    raw = out.with_suffix(".raw.wav")
    _run("espeak-ng", "-v", voice, "-s", str(speed), "-w", raw, text)
    _sox(raw, "-r", str(rate), "-c", "1", "-b", "16", out)
    data, _ = soundfile.read(str(out), dtype="float32")
    loud = np.flatnonzero(np.abs(data) > 0.01)
    return data[loud[0] : loud[-1] + 1]


def _lay_out(
    clips: list[np.ndarray], gaps_ms: list[int], rate: int, lead_ms: int = 700, tail_ms: int = 1200
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    parts = [np.zeros(rate * lead_ms // 1000, dtype=np.float32)]
    planted, cursor = [], lead_ms
    for clip, gap in zip(clips, gaps_ms, strict=True):
        length = len(clip) * 1000 // rate
        planted.append((cursor, cursor + length))
        parts += [clip, np.zeros(rate * gap // 1000, dtype=np.float32)]
        cursor += length + gap
    parts.append(np.zeros(rate * tail_ms // 1000, dtype=np.float32))
    return np.concatenate(parts), planted


def _make(
    d: Path,
    name: str,
    texts: list[str],
    gaps: list[int],
    *,
    voice: str = "en-us",
    speed: int = 160,
    rate: int = SR,
    lead_ms: int = 700,
    cut_ms: int = 0,
) -> Recording:
    """Sentences with the given gaps after each; ``cut_ms`` removes that much of the end (mid-sentence)."""
    clips = [_speak(t, d / f"{name}-{i}.wav", rate, voice, speed) for i, t in enumerate(texts)]
    audio, planted = _lay_out(clips, gaps, rate, lead_ms=lead_ms, tail_ms=0 if cut_ms else 1200)
    if cut_ms:
        audio = audio[: len(audio) - rate * cut_ms // 1000]
        planted[-1] = (planted[-1][0], len(audio) * 1000 // rate)
    path = d / f"{name}.wav"
    soundfile.write(str(path), audio, rate, subtype="PCM_16")
    if rate != SR:
        upsampled = d / f"{name}-16k.wav"
        _sox(path, "-r", str(SR), "-c", "1", "-b", "16", upsampled)
        path = upsampled
    return Recording(name, path, planted)


def _add_noise(d: Path, rec: Recording, volume: float) -> Recording:
    seconds = soundfile.info(str(rec.path)).duration
    noise, out = d / f"{rec.name}-noise.wav", d / f"{rec.name}-noisy.wav"
    _sox("-n", "-r", str(SR), "-c", "1", "-b", "16", noise, "synth", f"{seconds:.3f}", "whitenoise", "vol", volume)
    _sox("-m", "-v", "1", rec.path, "-v", "1", noise, "-b", "16", out)
    return Recording(f"{rec.name}-noisy", out, rec.planted)


@functools.cache
def build_corpus(d: Path) -> dict[str, Recording]:
    """The speech files, made once per session (espeak-ng + sox)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    n = len(SENTENCES)
    gaps = [int(g) for g in rng.integers(300, 1500, size=4 * n)]
    recs = [
        _make(d, "dialog", SENTENCES[:8], gaps[:8]),
        _make(d, "female", SENTENCES[4:], gaps[8:16], voice="en-us+f3", speed=150),
        _make(d, "fast", SENTENCES[::2], [300] * (n // 2), speed=210),
        _make(d, "phone8k", SENTENCES[3:11], gaps[16:24], rate=8000),
        # speech from the first sample, cut mid-sentence at the end
        _make(d, "cut", SENTENCES[7:11], [400, 900, 600, 0], lead_ms=0, cut_ms=800),
        # ~75 s of speech with short pauses, one long pause: long segments are split at max_single_segment
        _make(d, "long", SENTENCES * 2, [int(g) for g in rng.integers(150, 400, size=2 * n - 1)] + [1500]),
    ]
    recs.append(_add_noise(d, _make(d, "base", SENTENCES[1:9], gaps[24:32], voice="en-gb"), 0.01))
    return {r.name: r for r in recs}


def corpus_or_skip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the speech corpus needs {', '.join(missing)} on PATH")
    return build_corpus(tmp_path_factory.getbasetemp() / "vad-corpus")


def run_detector(detector: SpeechDetector, samples: np.ndarray, block: int) -> list[tuple[int, int]]:
    segments: list[tuple[int, int]] = []
    for start in range(0, len(samples), block):
        segments += detector.accept(samples[start : start + block])
    return segments + detector.finish()


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    return corpus_or_skip(tmp_path_factory)


@pytest.fixture(scope="session", params=["fsmn", "silero"])
def engine(request: pytest.FixtureRequest) -> FsmnVadModel | SileroVadModel:
    model = load_engine(request.param, threads=1)
    model.warm_up()
    return model


def _overlaps(span: tuple[int, int], segments: list[tuple[int, int]]) -> bool:
    return any(start < span[1] and span[0] < end for start, end in segments)


def test_unknown_engine_names_the_choices() -> None:
    with pytest.raises(ValueError, match="fsmn, silero"):
        load_engine("webrtc", threads=1)


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        VadParams(max_single_segment_ms=0)
    with pytest.raises(ValueError):
        VadParams(max_end_silence_ms=-1)


@pytest.mark.parametrize("name", ["dialog", "long", "base-noisy", "cut"])
def test_block_size_does_not_change_segments(
    engine: FsmnVadModel | SileroVadModel, corpus: dict[str, Recording], name: str
) -> None:
    samples = corpus[name].samples
    params = VadParams()
    whole = run_detector(engine.stream(params), samples, len(samples))
    assert whole, f"{name}: no speech found"
    for block in (1600, 16000, 4321):
        assert run_detector(engine.stream(params), samples, block) == whole, f"{name}, blocks of {block} samples"


def test_streams_sharing_a_model_are_independent(
    engine: FsmnVadModel | SileroVadModel, corpus: dict[str, Recording]
) -> None:
    a, b = corpus["dialog"].samples, corpus["female"].samples
    expected_a = run_detector(engine.stream(VadParams()), a, 16000)
    expected_b = run_detector(engine.stream(VadParams()), b, 16000)
    sa, sb = engine.stream(VadParams()), engine.stream(VadParams())
    got_a: list[tuple[int, int]] = []
    got_b: list[tuple[int, int]] = []
    for start in range(0, max(len(a), len(b)), 8000):
        got_a += sa.accept(a[start : start + 8000])
        got_b += sb.accept(b[start : start + 8000])
    assert (got_a + sa.finish(), got_b + sb.finish()) == (expected_a, expected_b)


def test_every_planted_sentence_is_found(engine: FsmnVadModel | SileroVadModel, corpus: dict[str, Recording]) -> None:
    missed = []
    for rec in corpus.values():
        segments = run_detector(engine.stream(VadParams()), rec.samples, 16000)
        missed += [f"{rec.name} {span}: {segments}" for span in rec.planted if not _overlaps(span, segments)]
        assert all(0 <= s < e for s, e in segments) and segments == sorted(segments), f"{rec.name}: {segments}"
    assert not missed, "sentences not covered by any segment:\n" + "\n".join(missed)


def test_long_speech_is_split_at_max_single_segment(
    engine: FsmnVadModel | SileroVadModel, corpus: dict[str, Recording]
) -> None:
    params = VadParams(max_single_segment_ms=20000)
    segments = run_detector(engine.stream(params), corpus["long"].samples, 16000)
    assert len(segments) >= 4, segments
    assert max(e - s for s, e in segments) <= params.max_single_segment_ms + 100, segments


def test_silence_gives_no_segments(engine: FsmnVadModel | SileroVadModel) -> None:
    assert run_detector(engine.stream(VadParams()), np.zeros(SR * 30, dtype=np.float32), 16000) == []
    assert run_detector(engine.stream(VadParams()), np.zeros(0, dtype=np.float32), 16000) == []
    assert run_detector(engine.stream(VadParams()), np.zeros(100, dtype=np.float32), 16000) == []


def test_quiet_noise_gives_few_segments(engine: FsmnVadModel | SileroVadModel) -> None:
    rng = np.random.default_rng(3)
    for level in (0.001, 0.005):
        noise = (rng.standard_normal(SR * 60) * level).astype(np.float32)
        segments = run_detector(engine.stream(VadParams()), noise, 16000)
        assert len(segments) <= 1, f"white noise at {level}: {segments}"


def test_finished_stream_refuses_more(engine: FsmnVadModel | SileroVadModel) -> None:
    stream = engine.stream(VadParams())
    stream.finish()
    with pytest.raises(RuntimeError):
        stream.accept(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError):
        engine.stream(VadParams()).accept(np.zeros((2, 160), dtype=np.float32))


def _stream_peaks(engine: FsmnVadModel | SileroVadModel, audio: np.ndarray, split_s: int) -> tuple[int, int, int]:
    """Traced allocation peaks streaming ``audio`` in 1 s blocks: over the first ``split_s`` and over the rest."""
    stream = engine.stream(VadParams())
    count = 0
    tracemalloc.start()
    try:
        for second, start in enumerate(range(0, len(audio), SR)):
            if second == split_s:
                _, first_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            count += len(stream.accept(audio[start : start + SR]))
        count += len(stream.finish())
        _, rest_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return first_peak, rest_peak, count


def test_memory_does_not_grow_with_length(engine: FsmnVadModel | SileroVadModel, corpus: dict[str, Recording]) -> None:
    rng = np.random.default_rng(5)
    unit = corpus["dialog"].samples
    twenty_min = np.resize(unit, SR * 1200) + (rng.standard_normal(SR * 1200) * 0.002).astype(np.float32)
    first_peak, rest_peak, count = _stream_peaks(engine, twenty_min, split_s=120)
    assert count > 200, count
    mib = 2**20
    assert max(first_peak, rest_peak) < 8 * mib, f"peaks {first_peak / mib:.1f} / {rest_peak / mib:.1f} MiB"
    # minutes 2-20 need no more than the first two minutes did: nothing accumulates with length
    assert rest_peak < first_peak + mib, f"peak over minutes 2-20 {rest_peak} B, over 0-2 {first_peak} B"
