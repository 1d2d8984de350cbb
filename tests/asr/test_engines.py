"""ASR engines on real inputs: Whisper base on espeak-ng speech, FunASR on a random-weight Paraformer.

Whisper is loaded once per module and most checks share one batched transcription (CPU, 2 threads).
FunASR has no installable weights here: a tiny Paraformer with random weights, built by FunASR's own
classes, checks the code path (loading from a dir, batching, one output per input, order), not accuracy.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callscribe.asr.engines.base import AsrInput, AsrOutput, EngineError, InferOptions
from callscribe.asr.engines.registry import load_engine

log = logging.getLogger(__name__)

WPM = 150  # a call-center pace; espeak's default 175 wpm is faster than agents speak

SENTENCES = (
    "Thank you for calling customer support, how can I help you today?",
    "I would like to check the status of my order.",
    "Could you please confirm your account number?",
    "Your payment was received on Monday morning.",
    "I am sorry to hear that the package arrived damaged.",
    "We will send a replacement within three business days.",
    "Is there anything else I can help you with?",
    "My internet connection keeps dropping every evening.",
    "Please hold while I transfer you to the billing department.",
    "Thank you for your patience, have a great day.",
)
MAX_WER = 0.10


def synthesize(text: str, out_dir: Path, name: str) -> np.ndarray:
    """espeak-ng (US English, 150 wpm) resampled by sox to 16 kHz mono; float32 samples."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    raw, wav = out_dir / f"{name}.raw.wav", out_dir / f"{name}.wav"
    speak = ["espeak-ng", "-v", "en-us", "-s", str(WPM), "-w", str(raw), text]
    subprocess.run(speak, check=True, capture_output=True)
    # -D: no dither, so the audio (and the transcript) is the same on every run
    subprocess.run(
        ["sox", str(raw), "-D", "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True
    )
    samples, rate = sf.read(wav, dtype="float32")
    assert rate == 16000
    return samples


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    out = tmp_path_factory.mktemp("speech")
    return [synthesize(s, out, f"s{i}") for i, s in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - an Engine
    return load_engine("whisper", "base", "cpu", 2, tmp_path_factory.mktemp("asr-cache"))


@pytest.fixture(scope="module")
def batched(whisper, speech: list[np.ndarray]) -> list[AsrOutput]:  # noqa: ANN001
    """The ten sentences plus 2 s of silence in the middle, one batch, language detected."""
    inputs = [AsrInput(s) for s in speech[:5]] + [AsrInput(np.zeros(32000, np.float32))]
    inputs += [AsrInput(s) for s in speech[5:]]
    return whisper.infer(inputs, InferOptions(language="auto"))


def test_whisper_wer_on_espeak(batched: list[AsrOutput]) -> None:
    import jiwer

    hyps = [o.text for i, o in enumerate(batched) if i != 5]
    wer = jiwer.wer([normalise(s) for s in SENTENCES], [normalise(h) for h in hyps])
    log.info("whisper base int8 WER on %d espeak sentences: %.3f", len(SENTENCES), wer)
    for ref, hyp in zip(SENTENCES, hyps, strict=True):
        log.info("ref %r\nhyp %r", ref, hyp)
    assert wer <= MAX_WER, f"WER {wer:.3f} > {MAX_WER}"


def test_whisper_one_output_per_input_with_silence(batched: list[AsrOutput]) -> None:
    assert len(batched) == len(SENTENCES) + 1
    assert batched[5].text == ""  # the silent item keeps its place and says nothing
    assert all(o.text for i, o in enumerate(batched) if i != 5)
    assert all(0.0 < o.confidence <= 1.0 and o.avg_logprob <= 0.0 for o in batched)


def test_whisper_detects_english(batched: list[AsrOutput]) -> None:
    assert [o.language for i, o in enumerate(batched) if i != 5] == ["en"] * len(SENTENCES)


def test_whisper_batch_equals_one_by_one(whisper, speech: list[np.ndarray], batched: list[AsrOutput]) -> None:  # noqa: ANN001
    singles = [whisper.infer([AsrInput(s)], InferOptions(language="auto"))[0] for s in speech[:2]]
    # packed (the default), segments share windows: same words, punctuation may differ with the context
    assert [normalise(o.text) for o in singles] == [normalise(o.text) for o in batched[:2]]
    assert [o.language for o in singles] == [o.language for o in batched[:2]]
    whisper.pack = False  # one window per segment: exactly what each gives alone
    try:
        unpacked = whisper.infer([AsrInput(s) for s in speech[:2]], InferOptions(language="auto"))
    finally:
        whisper.pack = True
    assert [o.text for o in singles] == [o.text for o in unpacked]


def test_whisper_word_timestamps(whisper, speech: list[np.ndarray]) -> None:  # noqa: ANN001
    (out,) = whisper.infer([AsrInput(speech[1])], InferOptions(language="en", word_timestamps=True))
    duration_ms = len(speech[1]) * 1000 // 16000
    words = [t.text for t in out.tokens]
    assert normalise(" ".join(words)) == normalise(out.text)
    starts = [t.start_ms for t in out.tokens]
    assert starts == sorted(starts)
    assert all(0 <= t.start_ms <= t.end_ms <= duration_ms + 200 for t in out.tokens)
    assert out.tokens[-1].end_ms > duration_ms // 2
    assert all(0.0 <= t.confidence <= 1.0 for t in out.tokens)


def test_whisper_long_segment_is_windowed(whisper, speech: list[np.ndarray]) -> None:  # noqa: ANN001
    pause = np.zeros(8000, np.float32)
    long = np.concatenate([x for s in (speech[0], speech[1], speech[8]) for x in (s, pause)] * 3)
    assert 30 < len(long) / 16000 < 60
    (out,) = whisper.infer([AsrInput(long)], InferOptions(language="en"))
    text = normalise(out.text)
    assert text.count("customer support") == 3  # all three passes, across the cut at about 30 s
    assert text.count("status of my order") == 3
    assert text.endswith("department")


def test_short_encoder_passes_keep_the_words(whisper, speech: list[np.ndarray]) -> None:  # noqa: ANN001
    """Windows encoded at their length rounded up to 5 s (the default) say what 30 s passes say."""
    import jiwer

    inputs = [AsrInput(s) for s in speech]
    assert whisper.encode_step_s == 5.0
    short = whisper.infer(inputs, InferOptions(language="en"))
    whisper.encode_step_s = 0.0
    try:
        full = whisper.infer(inputs, InferOptions(language="en"))
    finally:
        whisper.encode_step_s = 5.0
    refs = [normalise(s) for s in SENTENCES]
    wer_short = jiwer.wer(refs, [normalise(o.text) for o in short])
    wer_full = jiwer.wer(refs, [normalise(o.text) for o in full])
    log.info("WER with 5 s encoder steps %.3f, with 30 s passes %.3f", wer_short, wer_full)
    assert wer_short <= MAX_WER and wer_short <= wer_full + 0.02


def test_encoder_shapes_group_windows_by_rounded_length(whisper) -> None:  # noqa: ANN001
    from callscribe.asr.engines.whisper import _Part, _Window

    def window(seconds: float) -> _Window:
        n = int(seconds * 16000)
        return _Window((_Part(0, 0, 0, n),), np.zeros(n, np.float32))

    windows = [window(s) for s in (4.0, 29.0, 5.0, 7.5, 30.0, 0.1)]
    assert whisper._shapes(windows) == [(500, [0, 2, 5]), (1000, [3]), (3000, [1, 4])]
    whisper.encode_step_s = 0.0
    try:
        assert whisper._shapes(windows) == [(3000, [0, 1, 2, 3, 4, 5])]
    finally:
        whisper.encode_step_s = 5.0


@pytest.mark.parametrize(
    ("tokens", "loop"),
    [
        ([], 0),
        (list(range(40)), 0),
        ([7] * 30, 30),  # one token over and over
        ([1, 2, 3] + [11, 12] * 20, 40),  # ",000" after ",000": the loop seen on a bench call
        ([5, 6, 7, 8, 9, 10] * 3, 0),  # a sentence said three times is not a loop
        ([1, 2, 3, 4, 5, 6] * 4, 24),  # four times, 24 tokens: a loop
        ([9, 9, 9, 9, 1], 0),  # "no, no, no, no," then more: too short to be a loop
        ([1, 2] + [5, 6, 7] * 12 + [8, 9, 5] + [5, 6] * 3, 36),  # a loop, then more words
    ],
)
def test_loop_length(tokens: list[int], loop: int) -> None:
    from callscribe.asr.engines.whisper import _cut_loop, _loop_length

    assert _loop_length(tokens) == loop
    assert _loop_length(_cut_loop(tokens)) == 0


def test_cut_loop_keeps_one_pass_and_what_follows() -> None:
    from callscribe.asr.engines.whisper import _cut_loop

    assert _cut_loop([1, 2] + [5, 6, 7] * 12 + [8, 9]) == [1, 2, 5, 6, 7, 8, 9]
    assert _cut_loop([4] * 40) == [4]
    assert _cut_loop([1, 2, 3]) == [1, 2, 3]


def test_a_looping_window_is_sampled_again_then_cut(whisper, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Greedy decoding stuck in a loop is decoded again with sampling; a window that loops at every
    temperature keeps only what came before its loop."""
    tokenizer = whisper._tokenizer("en")
    words = tokenizer.encode(" the order number is four")
    loop = tokenizer.encode(",000") * 30
    calls: list[tuple[int, float]] = []

    def fake_generate(encoded, languages, options, search):  # noqa: ANN001, ANN202
        temperature = search.get("sampling_temperature", 0.0)
        calls.append((len(languages), temperature))
        fixed = temperature >= 0.4 and fixes
        tokens = words if fixed else words + loop
        return [(tokenizer.decode(tokens).strip(), -0.2, list(tokens)) for _ in languages]

    monkeypatch.setattr(whisper, "_generate", fake_generate)
    fixes = True
    ((text, _, tokens),) = whisper._decode("encoded", np.zeros((1, 80, 500), np.float32), ["en"], InferOptions("en"))
    assert text == "the order number is four" and tokens == words
    assert calls == [(1, 0.0), (1, 0.2), (1, 0.4)]
    calls.clear()
    fixes = False
    ((text, _, tokens),) = whisper._decode("encoded", np.zeros((1, 80, 500), np.float32), ["en"], InferOptions("en"))
    assert tokens == words + tokenizer.encode(",000"), "the loop is cut to one pass"
    assert [t for _, t in calls] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_packed_segments_with_no_words_or_an_echo_are_decoded_alone() -> None:
    """What triggers a second, unpacked decode: a voiced segment of a packed window that got no words,
    or whose words mostly repeat an earlier segment of its window (Whisper ending early, or echoing)."""
    from callscribe.asr.engines.whisper import _echoes, _Part, _Piece, _skipped, _Window

    rng = np.random.default_rng(3)
    t = np.arange(32000) / 16000
    voiced = (np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32) * 0.3
    steady_noise = (rng.standard_normal(32000) * 0.01).astype(np.float32)
    empty = _Piece("", -0.3, 1, [])
    said = _Piece("hello there", -0.3, 3, [])
    assert _skipped([("en", empty, True)], voiced)
    assert not _skipped([("en", empty, True)], steady_noise), "steady noise is not speech"
    assert not _skipped([("en", empty, True)], np.zeros(32000, np.float32))
    assert not _skipped([("en", empty, True)], voiced[:8000]), "under 1 s"
    assert not _skipped([("en", empty, False)], voiced), "a window of its own already"
    assert not _skipped([("en", said, True)], voiced)

    window = _Window(tuple(_Part(i, 0, i * 40000, 32000) for i in range(4)), np.zeros(160000, np.float32))
    texts = ["您好,欢迎致电客服中心,请问有什么可以帮您", "好,欢迎致电客服中心,请问有什么", "我想咨询一下退费政策", "ok"]
    pieces = [_Piece(x, -0.3, 3, []) for x in texts]
    assert _echoes(window, pieces) == [1]
    english = ["I would like a refund.", "Could you tell me when?", "I would like a refund.", "Thanks."]
    assert _echoes(window, [_Piece(x, -0.3, 3, []) for x in english]) == [2]


def test_whisper_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="model.bin"):
        load_engine("whisper", str(tmp_path / "nothing"), "cpu", 1, tmp_path)


def test_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whisper, funasr"):
        load_engine("kaldi", "x", "cpu", 1, tmp_path)


# --------------------------------------------------------------------------- FunASR


@pytest.fixture(scope="module")
def paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from callscribe.asr.engines.funasr_testmodel import build_random_paraformer

    return build_random_paraformer(tmp_path_factory.mktemp("paraformer"), size="tiny", seed=7)


@pytest.fixture(scope="module")
def funasr(paraformer_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - an Engine
    return load_engine("funasr", str(paraformer_dir), "cpu", 2, tmp_path_factory.mktemp("unused"))


def _noise(seconds: float, seed: int) -> AsrInput:
    rng = np.random.default_rng(seed)
    return AsrInput((rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32))


@pytest.mark.parametrize("lengths", [(2.0,), (0.4, 3.0, 7.5), (1.0, 6.0, 0.3, 2.5, 8.0, 4.0, 0.8, 5.0)])
def test_funasr_one_output_per_input_in_order(funasr, lengths: tuple[float, ...]) -> None:  # noqa: ANN001
    batch = [_noise(s, seed=i) for i, s in enumerate(lengths)]
    outputs = funasr.infer(batch, InferOptions(language="zh"))
    assert len(outputs) == len(batch)
    # same padding either way round, so each item's text must follow it to its new position
    backwards = funasr.infer(batch[::-1], InferOptions(language="zh"))
    assert [o.text for o in backwards[::-1]] == [o.text for o in outputs]
    # random weights emit about one token per CIF step, so each text is about as long as its own input's
    # single run (padding in a batch can move a CIF boundary by a token)
    singles = [funasr.infer([item], InferOptions(language="zh"))[0] for item in batch]
    for batched, single in zip(outputs, singles, strict=True):
        assert abs(len(batched.text) - len(single.text)) <= max(1, len(single.text) // 10)
    assert all(o.language == "zh" for o in outputs)


def test_funasr_word_timestamps_and_hotwords_ignored(funasr) -> None:  # noqa: ANN001
    from callscribe.asr.engines.base import Hotword

    options = InferOptions(language="zh", hotwords=(Hotword("退费政策"),), word_timestamps=True)
    (out,) = funasr.infer([_noise(3.0, seed=1)], options)
    assert out.tokens and "".join(t.text for t in out.tokens) == out.text.replace(" ", "")
    assert all(a.start_ms <= b.start_ms for a, b in zip(out.tokens, out.tokens[1:], strict=False))


def test_funasr_missing_dir_is_clear(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"model dir .*missing-model not found"):
        load_engine("funasr", str(tmp_path / "missing-model"), "cpu", 1, tmp_path)


def test_funasr_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="config.yaml"):
        load_engine("funasr", str(tmp_path), "cpu", 1, tmp_path)
