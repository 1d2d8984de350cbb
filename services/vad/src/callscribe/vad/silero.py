"""Silero VAD (the ONNX files shipped in the silero-vad wheel) behind the same streaming API as FSMN-VAD.

The network sees 32 ms chunks (512 samples, each with the 64 samples before it as context) and keeps an
LSTM state. The wheel ships the same network twice: ``silero_vad_16k_sequence.onnx`` takes many chunks
per call (about 2.5x faster on one core: the per-chunk call overhead dominates) and is used when present;
``silero_vad.onnx`` (one chunk per call) is the fallback.

VadParams map as follows: a chunk is speech when its probability reaches ``(1 + speech_noise_threshold)
/ 2`` (FSMN's rule "speech exceeds noise by the threshold" with noise = 1 - speech), it becomes silence
below that minus 0.15 (Silero's hysteresis); a segment ends after ``max_end_silence_ms`` of silence, is
split at ``max_single_segment_ms`` (at its last pause of 100 ms or more when there is one) and segments
shorter than 250 ms are dropped; ends are padded by 30 ms (Silero's defaults).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from callscribe.vad.fsmn_decision import Segment, VadParams
from callscribe.vad.fsmn_model import as_samples

logger = logging.getLogger(__name__)

CHUNK = 512
CONTEXT = 64
CHUNK_MS = CHUNK * 1000 // 16000  # 32
SEQUENCE_FILE = "silero_vad_16k_sequence.onnx"
SINGLE_FILE = "silero_vad.onnx"
BLOCK_CHUNKS = 250  # chunks per network call (8 s)
HYSTERESIS = 0.15
MIN_SPEECH_MS = 250
MIN_SPLIT_PAUSE_MS = 100
PAD_MS = 30


def default_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad package (Silero model files) is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data / SEQUENCE_FILE if (data / SEQUENCE_FILE).is_file() else data / SINGLE_FILE


class SileroVadModel:
    """The Silero network (one onnxruntime session, thread-safe); ``stream()`` per channel."""

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        path = default_model_path() if model_path is None else Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"Silero VAD model {path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self._sequence = {i.name for i in self._session.get_inputs()} == {"input", "h", "c"}
        logger.info(
            "Silero VAD loaded from %s (%s, %d threads)", path, "sequence" if self._sequence else "single", threads
        )

    def initial_state(self) -> list[np.ndarray]:
        if self._sequence:
            return [np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32)]
        return [np.zeros((2, 1, 128), dtype=np.float32)]

    def speech_prob(self, rows: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Speech probability of each row (64 context + 512 samples), and the state after them."""
        if self._sequence:
            probs, h, c = self._session.run(None, {"input": rows, "h": state[0], "c": state[1]})
            return probs.reshape(-1), [h, c]
        out = np.empty(rows.shape[0], dtype=np.float32)
        sr = np.array(16000, dtype=np.int64)
        (cur,) = state
        for i in range(rows.shape[0]):
            prob, cur = self._session.run(None, {"input": rows[i : i + 1], "state": cur, "sr": sr})
            out[i] = prob[0, 0]
        return out, [cur]

    def stream(self, params: VadParams) -> SileroVadStream:
        return SileroVadStream(self, params)

    def warm_up(self) -> None:
        detector = self.stream(VadParams())
        detector.accept(np.zeros(16000, dtype=np.float32))
        detector.finish()


class SileroSegmenter:
    """Speech probabilities per 32 ms chunk in, ``(start_ms, end_ms)`` out (hysteresis + end silence)."""

    def __init__(self, params: VadParams) -> None:
        self._on = min(max((1.0 + params.speech_noise_threshold) / 2.0, 0.05), 0.95)
        self._off = max(self._on - HYSTERESIS, 0.01)
        self._end_silence = params.max_end_silence_ms
        self._max_len = params.max_single_segment_ms
        self._now = 0  # ms at the start of the next chunk
        self._start = -1  # start of the open segment, -1 when none
        self._quiet_since = -1  # start of the current low-probability run inside the segment
        self._last_pause = (-1, -1)  # (start, end) of the latest long enough pause inside the segment
        self._emitted_end = 0

    def push(self, probs: np.ndarray) -> list[Segment]:
        out: list[Segment] = []
        for prob in probs.tolist():
            self._step(prob, out)
            self._now += CHUNK_MS
        return out

    def finish(self) -> list[Segment]:
        out: list[Segment] = []
        if self._start >= 0:
            self._emit(self._start, self._now, out)
            self._start = -1
        return out

    def _step(self, prob: float, out: list[Segment]) -> None:
        if self._start < 0:
            if prob >= self._on:
                self._start, self._quiet_since, self._last_pause = self._now, -1, (-1, -1)
            return
        if prob >= self._on and self._quiet_since >= 0:
            if self._now - self._quiet_since >= MIN_SPLIT_PAUSE_MS:
                self._last_pause = (self._quiet_since, self._now)
            self._quiet_since = -1
        elif prob < self._off and self._quiet_since < 0:
            self._quiet_since = self._now
        end = self._now + CHUNK_MS
        if self._quiet_since >= 0 and end - self._quiet_since >= self._end_silence:
            self._emit(self._start, self._quiet_since, out)
            self._start = -1
        elif end - self._start > self._max_len:
            self._split(end, out)

    def _split(self, end: int, out: list[Segment]) -> None:
        pause_start, pause_end = self._last_pause
        if pause_start > self._start:
            self._emit(self._start, pause_start, out)
            self._start = pause_end
        else:
            self._emit(self._start, end, out)
            self._start = end
        self._last_pause = (-1, -1)

    def _emit(self, start: int, end: int, out: list[Segment]) -> None:
        if end - start < MIN_SPEECH_MS:
            return
        seg = (max(start - PAD_MS, self._emitted_end, 0), end + PAD_MS)
        self._emitted_end = seg[1]
        out.append(seg)


class SileroVadStream:
    """Streaming state of one channel: sample remainder, network state, segmenter."""

    def __init__(self, model: SileroVadModel, params: VadParams) -> None:
        self._model = model
        self._state = model.initial_state()
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)
        self._segmenter = SileroSegmenter(params)
        self._done = False

    def accept(self, samples: np.ndarray) -> list[Segment]:
        if self._done:
            raise RuntimeError("this VAD stream is finished; start a new one")
        data = as_samples(samples)
        out: list[Segment] = []
        step = BLOCK_CHUNKS * CHUNK
        for start in range(0, data.size, step):
            out += self._feed(data[start : start + step])
        return out

    def finish(self) -> list[Segment]:
        if self._done:
            raise RuntimeError("this VAD stream is finished; start a new one")
        self._done = True
        out: list[Segment] = []
        if self._rest.size:
            out += self._score(np.concatenate((self._rest, np.zeros(CHUNK - self._rest.size, dtype=np.float32))))
        return out + self._segmenter.finish()

    def _feed(self, data: np.ndarray) -> list[Segment]:
        buf = np.concatenate((self._rest, data)) if self._rest.size else data
        whole = buf.size - buf.size % CHUNK
        self._rest = buf[whole:].copy()
        return self._score(buf[:whole]) if whole else []

    def _score(self, audio: np.ndarray) -> list[Segment]:
        chunks = audio.reshape(-1, CHUNK)
        contexts = np.empty((chunks.shape[0], CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = chunks[:-1, -CONTEXT:]
        self._context = chunks[-1, -CONTEXT:].copy()
        probs, self._state = self._model.speech_prob(np.concatenate((contexts, chunks), axis=1), self._state)
        return self._segmenter.push(probs)
