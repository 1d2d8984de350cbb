"""Paraformer on whole batches, on the model's device: features, encoder, CIF predictor, decoder at once.

FunASR's ``AutoModel.generate`` loops over a batch on the CPU to compute fbank features (one item at
a time), pads the batch in the order given, runs the model, and decodes each item. On a GPU the
per-item feature loop and the serial CPU work around the model leave the device mostly idle. This
runner uses the same objects (FunASR's own Paraformer model, its tokenizer, its timestamp and text
post-processing) but computes Kaldi fbank + LFR + CMVN for the whole padded batch in a few tensor
operations on the model's device, can run the model under autocast (bf16 / fp16), and copies back
only token ids, token counts and (for timestamps) the CIF weights. Greedy decoding only, as FunASR's
default for Paraformer (no LM, no CTC rescoring).

`BatchFbank` follows Kaldi's ``compute-fbank-feats`` as FunASR configures it (snip_edges, DC offset
removed, pre-emphasis 0.97, power spectrum, log mel energies floored at float32 eps), then FunASR's
``apply_lfr`` (left padding with copies of the first frame, right padding with the last) and
``apply_cmvn``; tests check it against FunASR's ``WavFrontend`` on the same audio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from callscribe.asr.engines.paraformer_times import batch_token_times

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")
WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0


@dataclass(frozen=True)
class FrontendConf:
    """The parts of FunASR's ``WavFrontend`` configuration that shape its features."""

    fs: int
    n_mels: int
    frame_length_ms: float
    frame_shift_ms: float
    window: str
    dither: float
    lfr_m: int
    lfr_n: int
    upscale: bool

    @property
    def window_samples(self) -> int:
        return int(self.fs * self.frame_length_ms / 1000)

    @property
    def shift_samples(self) -> int:
        return int(self.fs * self.frame_shift_ms / 1000)

    @property
    def fft_size(self) -> int:
        return 1 << (self.window_samples - 1).bit_length()


def frontend_conf(frontend: Any) -> FrontendConf | None:
    """The configuration of a FunASR ``WavFrontend``, or None when the object is something else."""
    if type(frontend).__name__ != "WavFrontend" or not getattr(frontend, "snip_edges", True):
        return None
    if frontend.window not in WINDOWS:
        return None
    return FrontendConf(
        fs=int(frontend.fs),
        n_mels=int(frontend.n_mels),
        frame_length_ms=float(frontend.frame_length),
        frame_shift_ms=float(frontend.frame_shift),
        window=str(frontend.window),
        dither=float(frontend.dither),
        lfr_m=int(frontend.lfr_m),
        lfr_n=int(frontend.lfr_n),
        upscale=bool(getattr(frontend, "upsacle_samples", True)),  # FunASR's spelling
    )


class BatchFbank:
    """Kaldi fbank + LFR + CMVN of a padded batch of waveforms, as FunASR's WavFrontend computes per item."""

    def __init__(self, conf: FrontendConf, cmvn: Any | None, device: Any) -> None:
        import torch

        self.conf = conf
        self.device = torch.device(device)
        self.window = _window(conf.window, conf.window_samples).to(self.device)
        self.mel_banks = _mel_banks(conf.n_mels, conf.fft_size, conf.fs).to(self.device)
        self.cmvn = None if cmvn is None else torch.as_tensor(cmvn, dtype=torch.float32).to(self.device)
        self.eps = torch.finfo(torch.float32).eps

    def min_samples(self) -> int:
        """Shorter waveforms have no full frame (FunASR shortens its window for them: not done here)."""
        return self.conf.window_samples

    def __call__(self, waves: Any, lengths: Any) -> tuple[Any, Any]:
        """``waves``: (B, N) float32 in [-1, 1] on the device, zero-padded; ``lengths``: (B,) samples.
        Returns features (B, T, n_mels * lfr_m) zero-padded, and their lengths (B,) int32."""
        import torch

        conf = self.conf
        win, hop = conf.window_samples, conf.shift_samples
        if int(lengths.min()) < win:
            raise ValueError(f"every waveform needs at least {win} samples (one {conf.frame_length_ms:g} ms frame)")
        frames_per_item = 1 + torch.div(lengths - win, hop, rounding_mode="floor")
        x = waves * 32768.0 if conf.upscale else waves
        frames = x.unfold(1, win, hop)[:, : int(frames_per_item.max())]  # (B, F, win)
        if conf.dither:
            frames = frames + torch.randn_like(frames) * conf.dither
        frames = frames - frames.mean(dim=-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - PREEMPHASIS * previous) * self.window
        spectrum = torch.fft.rfft(frames, n=conf.fft_size).abs().pow(2)
        mel = torch.matmul(spectrum, self.mel_banks.T).clamp_min(self.eps).log()  # (B, F, n_mels)
        return self._lfr_cmvn(mel, frames_per_item)

    def _lfr_cmvn(self, mel: Any, frames_per_item: Any) -> tuple[Any, Any]:
        import torch

        m, n = self.conf.lfr_m, self.conf.lfr_n
        batch = mel.shape[0]
        out_lengths = torch.div(frames_per_item + n - 1, n, rounding_mode="floor")
        steps = int(out_lengths.max())
        offsets = torch.arange(steps, device=mel.device)[:, None] * n + torch.arange(m, device=mel.device)[None, :]
        index = (offsets - (m - 1) // 2).clamp_min(0)[None]  # (1, T, m)
        index = torch.minimum(index, (frames_per_item - 1)[:, None, None])  # (B, T, m): the last frame repeats
        rows = torch.arange(batch, device=mel.device)[:, None, None]
        feats = mel[rows, index].reshape(batch, steps, m * mel.shape[-1])
        if self.cmvn is not None:
            dim = feats.shape[-1]
            feats = (feats + self.cmvn[0, :dim]) * self.cmvn[1, :dim]
        valid = torch.arange(steps, device=mel.device)[None, :] < out_lengths[:, None]
        return feats * valid[..., None], out_lengths.to(torch.int32)


def _window(kind: str, size: int) -> Any:
    import torch

    if kind == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46)
    if kind == "hanning":
        return torch.hann_window(size, periodic=False)
    if kind == "povey":
        return torch.hann_window(size, periodic=False).pow(0.85)
    if kind == "rectangular":
        return torch.ones(size)
    n = torch.arange(size, dtype=torch.float64)
    a = 2 * math.pi / (size - 1)
    return (0.42 - 0.5 * torch.cos(a * n) + 0.08 * torch.cos(2 * a * n)).float()  # blackman, Kaldi's coefficient


def _mel_banks(bins: int, fft_size: int, fs: int) -> Any:
    """Kaldi's triangular mel filters (mel = 1127 ln(1 + f / 700)), (bins, fft_size // 2 + 1), Nyquist column 0."""
    import torch

    def mel(f: Any) -> Any:
        return 1127.0 * torch.log1p(f / 700.0)

    fft_bins = fft_size // 2
    low, high = mel(torch.tensor(LOW_FREQ_HZ, dtype=torch.float64)), mel(torch.tensor(fs / 2, dtype=torch.float64))
    delta = (high - low) / (bins + 1)
    index = torch.arange(bins, dtype=torch.float64)[:, None]
    left, center, right = low + index * delta, low + (index + 1) * delta, low + (index + 2) * delta
    freqs = mel(torch.arange(fft_bins, dtype=torch.float64) * fs / fft_size)[None, :]
    up = (freqs - left) / (center - left)
    down = (right - freqs) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).float()


@dataclass(frozen=True)
class Decoded:
    """One item's result, in the shape ``AutoModel.generate`` gives it."""

    text: str
    timestamp: list[list[int]] | None = None

    def as_result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


def unsupported_reason(auto: Any) -> str | None:
    """Why this AutoModel cannot take the batched path (None: it can)."""
    model = auto.model
    kind = type(model).__name__
    if kind != "Paraformer":
        return f"{kind} is not a plain Paraformer"
    if frontend_conf(auto.kwargs.get("frontend")) is None:
        return f"frontend {type(auto.kwargs.get('frontend')).__name__} is not a Kaldi-fbank WavFrontend"
    tokenizer = auto.kwargs.get("tokenizer")
    if tokenizer is None or hasattr(tokenizer, "bpemodel"):
        return "its tokenizer is not FunASR's character tokenizer"
    for option in ("decoding_ctc_weight", "lm_weight"):
        if float(auto.kwargs.get(option, 0.0) or 0.0) > 1e-5:
            return f"{option} > 0 asks for beam search"
    return None


class ParaformerBatch:
    """Runs a loaded Paraformer on whole batches. Build it with an AutoModel that `unsupported_reason` accepts."""

    def __init__(self, auto: Any, device: str, precision: str = "fp32") -> None:
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        reason = unsupported_reason(auto)
        if reason:
            raise ValueError(f"the batched Paraformer path cannot run this model: {reason}")
        self.model = auto.model
        self.tokenizer = auto.kwargs["tokenizer"]
        frontend = auto.kwargs["frontend"]
        conf = frontend_conf(frontend)
        assert conf is not None
        self.device = torch.device(device)
        self.fbank = BatchFbank(conf, frontend.cmvn, self.device)
        self.precision = precision
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.pin = self.device.type == "cuda"
        self._host: Any = None  # the pinned staging buffer, reused (grown when a batch needs more)

    def __call__(self, arrays: Sequence[np.ndarray], timestamps: bool = False) -> list[Decoded]:
        import torch

        if not arrays:
            return []
        with torch.inference_mode():
            waves, lengths = self._to_device(arrays)
            feats, feat_lengths = self.fbank(waves, lengths)
            return self.decode_features(feats, feat_lengths, timestamps)

    def _to_device(self, arrays: Sequence[np.ndarray]) -> tuple[Any, Any]:
        """One padded host buffer (pinned on CUDA, kept between batches), one copy to the device. The
        buffer is reused only after the previous batch's results came back (a synchronising copy)."""
        import torch

        longest = max(len(a) for a in arrays)
        size = len(arrays) * longest
        if self._host is None or self._host.numel() < size:
            self._host = torch.empty(size, dtype=torch.float32, pin_memory=self.pin)
        host = self._host[:size].view(len(arrays), longest)  # contiguous: the copy can run asynchronously
        view = host.numpy()
        for i, array in enumerate(arrays):
            view[i, : len(array)] = array
            view[i, len(array) :] = 0.0
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.int64)
        return host.to(self.device, non_blocking=True), lengths.to(self.device, non_blocking=True)

    def decode_features(self, feats: Any, feat_lengths: Any, timestamps: bool = False) -> list[Decoded]:
        """The model part of FunASR's ``Paraformer.inference`` (greedy), on features already made."""
        import torch
        from funasr.utils import postprocess_utils

        model = self.model
        with torch.inference_mode():
            with self._autocast():
                encoder_out, encoder_lengths = model.encode(feats, feat_lengths)
            if isinstance(encoder_out, tuple):
                encoder_out = encoder_out[0]
            # The CIF predictor integrates weights to thresholds and scatters into fp32 buffers: fp32 always.
            encoder_out = encoder_out.float()
            acoustic, token_counts, alphas, peaks = model.calc_predictor(encoder_out, encoder_lengths)[:4]
            token_counts = token_counts.round().long()
            if int(token_counts.max()) < 1:
                return [Decoded("", [] if timestamps else None) for _ in range(feats.shape[0])]
            with self._autocast():
                decoder_out = model.cal_decoder_with_predictor(encoder_out, encoder_lengths, acoustic, token_counts)[0]
            ids = decoder_out.argmax(dim=-1)
        ids_host = ids.cpu().numpy()
        counts_host = token_counts.cpu().numpy()
        tokens = [self._tokens(ids_host[i, : counts_host[i]]) for i in range(len(counts_host))]
        if not timestamps:
            return [Decoded(postprocess_utils.sentence_postprocess(t)[0]) for t in tokens]
        spans = self._token_times(peaks, alphas, encoder_lengths, tokens)
        out = []
        for item_tokens, item_spans in zip(tokens, spans, strict=True):
            text, times, _ = postprocess_utils.sentence_postprocess(item_tokens, item_spans)
            out.append(Decoded(text, times))
        return out

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _tokens(self, ids: np.ndarray) -> list[str]:
        model = self.model
        drop = {model.eos, model.sos, model.blank_id}
        return list(self.tokenizer.ids2tokens([int(t) for t in ids if int(t) not in drop]))

    def _token_times(self, peaks: Any, alphas: Any, encoder_lengths: Any, tokens: list[list[str]]) -> list[Any]:
        """FunASR trims both predictor outputs to the encoder length (+1 with a tail threshold), then times
        the tokens from (peaks, alphas), in that order."""
        peaks_host = peaks.float().cpu().numpy()
        alphas_host = alphas.float().cpu().numpy()
        lengths = encoder_lengths.cpu().numpy()
        predictor = getattr(self.model, "predictor", None)
        tail = getattr(predictor, "tail_mask", None) is True
        extra = 1 if tail and float(getattr(predictor, "tail_threshold", 0.0)) > 0.0 else 0
        first, second, counts = [], [], []
        for i, item_tokens in enumerate(tokens):
            length = min(int(lengths[i]) + extra, peaks_host.shape[-1]) if tail else peaks_host.shape[-1]
            first.append(peaks_host[i, :length])
            second.append(alphas_host[i, :length])
            counts.append(len(item_tokens) - (1 if item_tokens and item_tokens[-1] == "</s>" else 0))
        return batch_token_times(first, second, counts)
