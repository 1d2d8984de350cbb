"""A Paraformer with random weights, built from FunASR's own classes, saved as a local model dir.

No Paraformer weights are installable here, so tests (tiny) and GPU benchmarks (large: the shape of
Paraformer-large, vocab 8404) exercise FunASR's real code path on a model of the right architecture.
The directory has FunASR's layout: ``config.yaml``, ``model.pt``, ``tokens.json``, ``am.mvn``.
Texts are meaningless; shapes, batching and timing are real.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d": 64, "heads": 4, "ffn": 128, "enc": 2, "dec": 2, "vocab": 0},
    "large": {"d": 512, "heads": 4, "ffn": 2048, "enc": 50, "dec": 16, "vocab": 8404},
}
FEATURE_DIM = 80 * 7  # 80 mel bins, low frame rate stacking of 7 frames every 6
TINY_CHARS = (
    "的一是不了人我在有他这中大来上个们到说和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家"
    "十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从"
    "退费政策营业时间信用卡还款会员积分期付奸换零一二三四五六七八九请问您好谢再见"
)
SPECIALS_HEAD = ("<blank>", "<s>", "</s>")
UNK = "<unk>"


def build_random_paraformer(out_dir: Path, vocab: list[str] | None = None, size: str = "tiny", seed: int = 0) -> Path:
    """Build and save a random-weight Paraformer into ``out_dir``; same seed, same weights."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    import torch
    from funasr import AutoModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = _token_list(vocab, SIZES[size]["vocab"])
    (out_dir / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    _write_cmvn(out_dir / "am.mvn")
    config = paraformer_config(size)
    _write_yaml(out_dir / "config.yaml", config)
    build = json.loads(json.dumps(config))  # a deep copy; build_model fills it in
    build["tokenizer_conf"]["token_list"] = str(out_dir / "tokens.json")
    build["frontend_conf"]["cmvn_file"] = str(out_dir / "am.mvn")
    threads = torch.get_num_threads()
    model, _ = AutoModel.build_model(**build, device="cpu", ncpu=threads, seed=seed, disable_log=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    log.info("random %s paraformer (%d tokens) saved in %s", size, len(tokens), out_dir)
    return out_dir


def paraformer_config(size: str) -> dict[str, Any]:
    """FunASR's config for a Paraformer (SANM encoder/decoder, CIF predictor) of the given size."""
    dims = SIZES[size]
    drop = {"dropout_rate": 0.1, "positional_dropout_rate": 0.1}
    return {
        "model": "Paraformer",
        "model_conf": {"ctc_weight": 0.0, "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
        "encoder": "SANMEncoder",
        "encoder_conf": {
            **drop,
            "output_size": dims["d"],
            "attention_heads": dims["heads"],
            "linear_units": dims["ffn"],
            "num_blocks": dims["enc"],
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {
            **drop,
            "attention_heads": dims["heads"],
            "linear_units": dims["ffn"],
            "num_blocks": dims["dec"],
            "att_layer_num": dims["dec"],
            "self_attention_dropout_rate": 0.1,
            "src_attention_dropout_rate": 0.1,
            "kernel_size": 11,
            "sanm_shfit": 0,
        },
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": dims["d"], "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": 7,
            "lfr_n": 6,
            "dither": 0.0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": UNK, "split_with_space": True},
    }


def _token_list(vocab: list[str] | None, size: int) -> list[str]:
    """``<blank> <s> </s>`` + units + ``<unk>``; padded with CJK characters up to ``size`` when asked."""
    units = list(dict.fromkeys(vocab if vocab is not None else TINY_CHARS))
    units = [u for u in units if u not in SPECIALS_HEAD and u != UNK]
    code = 0x4E00
    while size and len(units) + len(SPECIALS_HEAD) + 1 < size:
        char = chr(code)
        code += 1
        if char not in units:
            units.append(char)
    return [*SPECIALS_HEAD, *units, UNK]


def _write_cmvn(path: Path) -> None:
    """Kaldi-nnet style global CMVN: shift log-mels by -10, scale by 0.25 (the range of real ones)."""
    shift = " ".join(["-10.0"] * FEATURE_DIM)
    scale = " ".join(["0.25"] * FEATURE_DIM)
    path.write_text(
        f"<Nnet>\n<Splice> {FEATURE_DIM} {FEATURE_DIM}\n[ 0 ]\n"
        f"<AddShift> {FEATURE_DIM} {FEATURE_DIM}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {FEATURE_DIM} {FEATURE_DIM}\n<LearnRateCoef> 0 [ {scale} ]\n</Nnet>\n",
        encoding="utf-8",
    )


def _write_yaml(path: Path, config: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(config), path)
