"""The batched Paraformer path against FunASR's own code, on a random-weight Paraformer (CPU).

Features: `BatchFbank` on a padded batch against FunASR's `WavFrontend` item by item (Kaldi fbank,
LFR, CMVN). Model: fed FunASR's own features, the batched decode gives exactly `AutoModel.generate`'s
texts and timestamps. End to end: the engine's batched path against the generate path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callscribe.asr.engines.base import AsrInput, EngineError, InferOptions

LENGTHS = (400, 401, 560, 16_000, 17_234, 96_005, 4_000, 8_000, 31_999)  # samples: the 25 ms frame edge, odd tails


@pytest.fixture(scope="module")
def paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from callscribe.asr.engines.funasr_testmodel import build_random_paraformer

    return build_random_paraformer(tmp_path_factory.mktemp("paraformer-batch"), size="tiny", seed=11)


@pytest.fixture(scope="module")
def auto(paraformer_dir: Path) -> Any:
    from funasr import AutoModel

    return AutoModel(
        model=str(paraformer_dir), disable_update=True, device="cpu", ncpu=2, disable_pbar=True, disable_log=True
    )


def _speechlike(lengths: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """Noise shaped by a slow envelope (loud and quiet stretches, as speech has), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        envelope = 0.05 + 0.3 * np.abs(np.sin(np.arange(n) / 1600.0 + rng.uniform(0, 3)))
        out.append((rng.standard_normal(n) * envelope).clip(-1, 1).astype(np.float32))
    return out


def test_batch_features_match_funasr_frontend_item_by_item(auto: Any) -> None:
    from funasr.utils.load_utils import extract_fbank

    from callscribe.asr.engines.paraformer_batch import ParaformerBatch

    runner = ParaformerBatch(auto, "cpu")
    arrays = _speechlike(LENGTHS)
    expected, expected_lengths = extract_fbank(arrays, frontend=auto.kwargs["frontend"])
    got, got_lengths = runner.fbank(*runner._to_device(arrays))
    assert got_lengths.tolist() == expected_lengths.tolist()
    assert got.shape == expected.shape
    # log-mel features of magnitude ~1-10 after CMVN; FunASR's fbank here is kaldi-native-fbank (its own FFT)
    assert float((got - expected).abs().max()) < 2e-3
    padded = got[0, int(got_lengths[0]) :]
    assert float(padded.abs().max()) == 0.0, "padding frames must be zero, as FunASR pads"


def test_batch_features_refuse_input_shorter_than_a_frame(auto: Any) -> None:
    from callscribe.asr.engines.paraformer_batch import ParaformerBatch

    runner = ParaformerBatch(auto, "cpu")
    with pytest.raises(ValueError, match="at least 400 samples"):
        runner.fbank(*runner._to_device(_speechlike((16_000, 399))))


@pytest.mark.parametrize("timestamps", [False, True])
def test_batched_decode_gives_generate_results_on_the_same_features(auto: Any, timestamps: bool) -> None:
    from funasr.utils.load_utils import extract_fbank

    from callscribe.asr.engines.paraformer_batch import ParaformerBatch

    runner = ParaformerBatch(auto, "cpu")
    arrays = _speechlike(LENGTHS, seed=3)
    feats, lengths = extract_fbank(arrays, frontend=auto.kwargs["frontend"])
    got = runner.decode_features(feats, lengths, timestamps)
    expected = auto.generate(input=arrays, batch_size=len(arrays), disable_pbar=True, output_timestamp=timestamps)
    assert [g.text for g in got] == [e["text"] for e in expected]
    assert any(g.text for g in got), "random weights still emit tokens; an all-empty result proves nothing"
    if timestamps:
        assert [g.timestamp for g in got] == [e["timestamp"] for e in expected]
    else:
        assert all(g.timestamp is None for g in got)


def test_engine_batched_path_agrees_with_generate_and_keeps_order(paraformer_dir: Path) -> None:
    from callscribe.asr.engines.funasr_engine import FunasrEngine

    batched = FunasrEngine(paraformer_dir, threads=2, batch_size=4)
    plain = FunasrEngine(paraformer_dir, threads=2, batch_size=4, batched=False)
    assert batched._batched is not None and plain._batched is None
    items = [AsrInput(a) for a in _speechlike((16_000, 200, 48_000, 8_000, 24_000, 12_000), seed=5)]
    options = InferOptions(language="zh", word_timestamps=True)
    ours = batched.infer(items, options)
    theirs = plain.infer(items[:1] + items[2:], options)
    theirs.insert(1, theirs[0])  # FunASR's own frontend fails on the 200-sample input: compared apart
    assert len(ours) == len(items)
    # features differ from FunASR's by ~1e-4 (another FFT), which can move a random-weight CIF boundary by a
    # token: texts agree in length within a token or two, not always character for character
    pairs = [(o, t) for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if i != 1]
    agree = sum(o.text == t.text for o, t in pairs)
    assert agree >= len(pairs) - 2, [(o.text, t.text) for o, t in pairs]
    for o, t in pairs:
        assert abs(len(o.text) - len(t.text)) <= 2
        if o.text:
            assert o.tokens and "".join(x.text for x in o.tokens) == o.text.replace(" ", "")
    # the 200-sample input (under one 25 ms frame) holds no word: empty, in its place
    assert ours[1].text == "" and ours[1].tokens == ()
    # chunks of batch_size 4 over 6 inputs: same results whatever the chunking
    one_chunk = FunasrEngine(paraformer_dir, threads=2, batch_size=64).infer(items, options)
    single = [batched.infer([item], options)[0] for item in items]
    assert [len(o.text) for o in one_chunk] == pytest.approx([len(s.text) for s in single], abs=2)


def test_engine_precision_bf16_runs_on_the_batched_path(paraformer_dir: Path) -> None:
    from callscribe.asr.engines.funasr_engine import FunasrEngine

    engine = FunasrEngine(paraformer_dir, threads=2, precision="bf16")
    (out,) = engine.infer([AsrInput(_speechlike((32_000,))[0])], InferOptions(language="zh"))
    assert isinstance(out.text, str) and out.text
    with pytest.raises(EngineError, match="needs the batched Paraformer path"):
        FunasrEngine(paraformer_dir, threads=2, precision="bf16", batched=False)
    with pytest.raises(EngineError, match="precision 'int4'"):
        FunasrEngine(paraformer_dir, threads=2, precision="int4")


def test_registry_passes_the_batch_size_to_funasr(paraformer_dir: Path, tmp_path: Path) -> None:
    from callscribe.asr.engines.registry import load_engine

    engine = load_engine("funasr", str(paraformer_dir), "cpu", 1, tmp_path, batch_size=48)
    assert engine.batch_size == 48  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="precision must be one of"):
        load_engine("funasr", str(paraformer_dir), "cpu", 1, tmp_path, precision="fp8")


def _funasr_times(first: np.ndarray, second: np.ndarray, tokens: int) -> list[list[int]]:
    import torch
    from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

    chars = [f"t{i}" for i in range(tokens)]
    first_t, second_t = torch.from_numpy(first.copy()), torch.from_numpy(second.copy())
    _, times = ts_prediction_lfr6_standard(first_t, second_t, chars, upsample_rate=1)  # as Paraformer calls it
    return times


def test_batch_token_times_equal_funasr_per_item_on_random_predictor_outputs() -> None:
    from callscribe.asr.engines.paraformer_times import batch_token_times

    rng = np.random.default_rng(21)
    first, second, counts = [], [], []
    for case in range(120):
        frames = int(rng.integers(8, 400))
        weights = rng.uniform(0, 1, frames).astype(np.float32) * rng.uniform(0.2, 1.0)
        looked_at = rng.uniform(0, 0.9, frames).astype(np.float32)
        tokens = max(1, int(weights.sum()) - int(rng.integers(0, 3)))
        if case % 4 == 0:  # FunASR's first branch: exactly tokens + 1 frames at or above the threshold
            looked_at[rng.choice(frames, size=min(frames, tokens + 1), replace=False)] = 1.0
            tokens = int((looked_at >= np.float32(1 - 1e-4)).sum()) - 1
            if tokens < 1:
                continue
        first.append(weights)
        second.append(looked_at)
        counts.append(tokens)
    ours = batch_token_times(first, second, counts)
    theirs = [_funasr_times(f, s, n) for f, s, n in zip(first, second, counts, strict=True)]
    assert ours == theirs
    assert sum(1 for t in ours if t) > 100


def test_batch_token_times_is_much_cheaper_than_per_item() -> None:
    """Not a timing test of the service: a guard that the batch path does not fall back to FunASR's
    per-item torch loop (counted in torch operator calls, not seconds)."""
    from torch.profiler import ProfilerActivity, profile

    from callscribe.asr.engines.paraformer_times import batch_token_times

    rng = np.random.default_rng(3)
    first = [rng.uniform(0, 0.6, 300).astype(np.float32) for _ in range(16)]
    second = [rng.uniform(0, 0.5, 300).astype(np.float32) for _ in range(16)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        batch_token_times(first, second, [40] * 16)
    torch_ops = sum(e.count for e in prof.key_averages())
    assert torch_ops < 16 * 30, torch_ops  # a rescale per item (FunASR: 4 per frame, ~1,200 per item)
