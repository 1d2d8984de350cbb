"""FunASR models (Paraformer, SeACo-Paraformer, SenseVoice) loaded from a local directory.

A plain Paraformer runs on the batched path (`paraformer_batch`: features for the whole batch on the
model's device, FunASR's own model, tokenizer and post-processing), optionally under bf16 / fp16
autocast; every other model (SeACo hotwords, SenseVoice, a BPE tokenizer, beam search) gets one
``AutoModel.generate`` call per batch, which computes features item by item on the CPU. Results are
mapped back by position: FunASR returns them in input order, but every item of a list input may
carry the same ``key``. SeACo-Paraformer and Contextual Paraformer take hotwords; other models
ignore them (the text-level corrector still runs). Paraformer gives no decoding score, so
``confidence`` and ``avg_logprob`` are reported as 0.0 ("not available"), not as a measurement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callscribe.asr.engines.base import AsrInput, AsrOutput, EngineError, InferOptions, TokenTime, as_mono_float32
from callscribe.asr.engines.paraformer_batch import PRECISIONS

log = logging.getLogger(__name__)

HOTWORD_MODELS = {"SeacoParaformer", "ContextualParaformer"}
SENSEVOICE_MODELS = {"SenseVoiceSmall", "SenseVoice"}
TAG = re.compile(r"<\|([^|]*)\|>")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


class FunasrEngine:
    name = "funasr"

    def __init__(
        self,
        model_dir: Path | str,
        device: str = "cpu",
        threads: int = 2,
        batch_size: int = 16,
        allow_hub: bool = False,
        precision: str = "fp32",
        batched: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise EngineError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        source = _resolve(model_dir, allow_hub)
        from funasr import AutoModel  # heavy: imported only when an engine is built

        try:
            self._auto = AutoModel(
                model=source,
                disable_update=True,
                device=device,
                ncpu=threads,
                disable_pbar=True,
                disable_log=True,
            )
        except Exception as exc:  # FunASR raises anything from AssertionError to KeyError on a bad dir
            raise EngineError(f"FunASR could not load model {source}: {exc}") from exc
        self.model = Path(source).name
        self.device = device
        self.batch_size = max(1, batch_size)
        self.precision = precision
        self.kind = str(self._auto.kwargs.get("model", type(self._auto.model).__name__))
        self.takes_hotwords = self.kind in HOTWORD_MODELS
        self.is_sensevoice = self.kind in SENSEVOICE_MODELS
        self._batched = self._batched_runner(device, precision) if batched else None
        if self._batched is None and precision != "fp32":
            raise EngineError(
                f"precision {precision} needs the batched Paraformer path, which {self.kind} cannot take: "
                "set ASR_PRECISION=fp32 (or auto) for this model"
            )
        path = "batched Paraformer path" if self._batched is not None else "AutoModel.generate"
        log.info(
            "funasr %s from %s on %s (%d threads, batches of up to %d, %s, %s)",
            self.kind, source, device, threads, self.batch_size, path, precision,
        )  # fmt: skip

    def _batched_runner(self, device: str, precision: str) -> Any:
        from callscribe.asr.engines.paraformer_batch import ParaformerBatch, unsupported_reason

        reason = unsupported_reason(self._auto)
        if reason is not None:
            log.info("funasr %s runs through AutoModel.generate: %s", self.kind, reason)
            return None
        return ParaformerBatch(self._auto, device, precision)

    def warm_up(self) -> None:
        import numpy as np

        self.infer([AsrInput(np.zeros(16_000, dtype=np.float32))], InferOptions())

    def infer(self, batch: Sequence[AsrInput], options: InferOptions) -> list[AsrOutput]:
        if not batch:
            return []
        arrays = [as_mono_float32(item.samples) for item in batch]
        if self._batched is not None:
            results = self._infer_batched(arrays, options)
        else:
            results = self._generate(arrays, options)
        return [self._output(result, options) for result in results]

    def _generate(self, arrays: list[Any], options: InferOptions) -> list[dict[str, Any]]:
        results = self._auto.generate(input=arrays, **self._generate_kwargs(len(arrays), options))
        if len(results) != len(arrays):
            raise RuntimeError(f"FunASR returned {len(results)} results for {len(arrays)} inputs")
        return list(results)

    def _infer_batched(self, arrays: list[Any], options: InferOptions) -> list[dict[str, Any]]:
        """Chunks of `batch_size` on the batched path. An input shorter than one fbank frame (25 ms) holds
        no word: it gets an empty text (FunASR's own frontend fails on it with kaldi-native-fbank)."""
        runner = self._batched
        assert runner is not None
        results: list[dict[str, Any] | None] = [None] * len(arrays)
        for i, array in enumerate(arrays):
            if len(array) < runner.fbank.min_samples():
                results[i] = {"text": "", "timestamp": []} if options.word_timestamps else {"text": ""}
        rest = [i for i in range(len(arrays)) if results[i] is None]
        for start in range(0, len(rest), self.batch_size):
            chunk = rest[start : start + self.batch_size]
            decoded = runner([arrays[i] for i in chunk], timestamps=options.word_timestamps)
            if len(decoded) != len(chunk):
                raise RuntimeError(f"the batched Paraformer returned {len(decoded)} results for {len(chunk)} inputs")
            for i, item in zip(chunk, decoded, strict=True):
                results[i] = item.as_result()
        return [r for r in results if r is not None]

    def _generate_kwargs(self, count: int, options: InferOptions) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"batch_size": min(count, self.batch_size), "disable_pbar": True}
        words = [h.text.strip() for h in options.hotwords if h.text.strip()]
        if words and self.takes_hotwords:
            kwargs["hotword"] = " ".join(words)
        elif words:
            log.debug("%s takes no hotwords; %d ignored by the model", self.kind, len(words))
        if self.is_sensevoice:
            kwargs["language"] = options.language
            kwargs["use_itn"] = True
        elif options.word_timestamps:
            kwargs["output_timestamp"] = True  # SenseVoice's timestamp path is not used (crashes on some models)
        return kwargs

    def _output(self, result: dict[str, Any], options: InferOptions) -> AsrOutput:
        raw = str(result.get("text", ""))
        tags = TAG.findall(raw)
        text = TAG.sub("", raw).strip()
        language = _language(text, tags, options.language)
        tokens: tuple[TokenTime, ...] = ()
        if options.word_timestamps and result.get("timestamp"):
            tokens = _token_times(text, result["timestamp"])
            if tokens:
                text = _join_units([t.text for t in tokens])
        return AsrOutput(text=text, language=language, confidence=0.0, avg_logprob=0.0, tokens=tokens)


def _resolve(model_dir: Path | str, allow_hub: bool) -> str:
    path = Path(model_dir)
    if path.is_dir():
        if not (path / "config.yaml").is_file() and not (path / "configuration.json").is_file():
            raise EngineError(f"{path} is not a FunASR model dir: it needs config.yaml (and model.pt, tokens)")
        return str(path)
    if allow_hub:
        log.warning("model %s is not a local dir; FunASR will try to download it", model_dir)
        return str(model_dir)
    raise EngineError(
        f"model dir {model_dir} not found; give a local FunASR model directory (config.yaml, model.pt, "
        "tokens.json or tokens.txt, am.mvn) — downloading by name is off (allow_hub=False)"
    )


def _language(text: str, tags: list[str], requested: str) -> str:
    for tag in tags:
        if tag in ("zh", "en", "yue", "ja", "ko"):
            return tag
    if requested != "auto":
        return requested
    if CJK.search(text):
        return "zh"
    return "en" if LATIN.search(text) else "auto"


def _token_times(text: str, stamps: list[list[int]]) -> tuple[TokenTime, ...]:
    """Pair FunASR's per-token [start_ms, end_ms] with the text's units (CJK characters, other words)."""
    units = text.split() if len(text.split()) == len(stamps) else UNIT.findall(text)
    if len(units) != len(stamps):
        log.debug("timestamps (%d) do not match the text's %d units; left out", len(stamps), len(units))
        return ()
    return tuple(TokenTime(u, int(s[0]), int(s[1])) for u, s in zip(units, stamps, strict=True))


def _join_units(units: list[str]) -> str:
    """Join units without spaces between CJK characters and with spaces between other words."""
    out = ""
    for unit in units:
        if out and not (CJK.fullmatch(unit[0]) and CJK.fullmatch(out[-1])):
            out += " "
        out += unit
    return out
