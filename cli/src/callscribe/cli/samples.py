"""Synthetic two-channel call-center calls (espeak-ng + sox) with known turn times.

Used by the demo, the tests and the benchmarks: each turn's true start and end are returned,
so speech detection and transcription can be checked against them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile


class ToolMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Turn:
    speaker: str  # "agent" or "customer"
    text: str


@dataclass(frozen=True)
class PlacedTurn:
    speaker: str
    text: str
    start_ms: int
    end_ms: int


def require_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is not installed: run 'make install' (Debian packages espeak-ng, sox)")


def _run(argv: list[str]) -> None:
    if argv[0] == "sox":
        # -R: repeatable (fixed seeds for dither and noise), -D: no dither. The same call spec
        # then gives the same bytes every time: tests and benchmarks see identical audio.
        argv = ["sox", "-R", "-D", *argv[1:]]
    subprocess.run(argv, check=True, capture_output=True)


def _speak(text: str, language: str, out: Path, rate: int) -> None:
    raw = out.with_suffix(".raw.wav")
    if language == "zh":
        from pypinyin import Style, lazy_pinyin  # only the Mandarin samples need it

        voice, spoken = "cmn-latn-pinyin", " ".join(lazy_pinyin(text, style=Style.TONE3))
    else:
        voice, spoken = "en-us", text
    _run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), spoken])
    _run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)])
    raw.unlink()


def synthesize_call(
    out: Path,
    turns: list[Turn],
    language: str = "en",
    *,
    agent_side: str = "left",
    gap_ms: int = 600,
    telephone: bool = False,
    noise: float = 0.0,
) -> list[PlacedTurn]:
    """Write a call to `out` (stereo unless agent_side == "mono") and return where each turn lies."""
    require_tools()
    rate = 8000 if telephone else 16000
    placed: list[PlacedTurn] = []
    with tempfile.TemporaryDirectory(prefix="callscribe-call-") as tmp:
        tracks: dict[str, list[Path]] = {"agent": [], "customer": []}
        cursor = gap_ms
        for i, turn in enumerate(turns):
            clip = Path(tmp) / f"turn{i}.wav"
            _speak(turn.text, language, clip, rate)
            length_ms = int(soundfile.info(str(clip)).frames * 1000 / rate)
            padded = Path(tmp) / f"turn{i}.padded.wav"
            _run(["sox", str(clip), str(padded), "pad", f"{cursor / 1000:.3f}"])
            tracks[turn.speaker].append(padded)
            placed.append(PlacedTurn(turn.speaker, turn.text, cursor, cursor + length_ms))
            cursor += length_ms + gap_ms
        total_s = f"{cursor / 1000:.3f}"
        channels = [_mix_track(Path(tmp), name, files, rate, total_s, noise) for name, files in tracks.items()]
        _write_call(out, channels, agent_side, telephone)
    return placed


def _mix_track(tmp: Path, name: str, files: list[Path], rate: int, total_s: str, noise: float) -> Path:
    silence = tmp / f"{name}.silence.wav"
    _run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(silence), "trim", "0", total_s])
    if noise > 0:
        noisy = tmp / f"{name}.noise.wav"
        _run(
            [
                "sox",
                "-n",
                "-r",
                str(rate),
                "-c",
                "1",
                "-b",
                "16",
                str(noisy),
                "synth",
                total_s,
                "whitenoise",
                "vol",
                str(noise),
            ]
        )
        silence = noisy
    track = tmp / f"{name}.wav"
    inputs = [str(silence), *map(str, files)]
    if len(inputs) == 1:
        shutil.copy(silence, track)
    else:
        _run(["sox", "-m", *inputs, str(track), "trim", "0", total_s])
    return track


def _write_call(out: Path, channels: list[Path], agent_side: str, telephone: bool) -> None:
    agent, customer = channels
    encoding = ["-e", "u-law"] if telephone else []
    out.parent.mkdir(parents=True, exist_ok=True)
    if agent_side == "mono":
        _run(["sox", "-m", str(agent), str(customer), *encoding, str(out)])
    else:
        left, right = (agent, customer) if agent_side == "left" else (customer, agent)
        _run(["sox", "-M", str(left), str(right), *encoding, str(out)])


REFUND_CALL_EN = [
    Turn("agent", "Thank you for calling Acme support, my name is Dana. How can I help you today?"),
    Turn("customer", "Hi, I bought a blender last week and it stopped working. I would like a refund."),
    Turn("agent", "I am sorry to hear that. Under our refund policy you can return it within thirty days."),
    Turn("customer", "Great. My order number is one two three four five."),
    Turn("agent", "Thank you. The refund of eighty five dollars will reach your card in three days. Goodbye."),
]

REFUND_CALL_ZH = [
    Turn("agent", "您好，欢迎致电客服中心，请问有什么可以帮您？"),
    Turn("customer", "你好，我想咨询一下退费政策，我上周买的东西有问题。"),
    Turn("agent", "好的，您的订单号是多少？"),
    Turn("customer", "订单号是一二三四五，金额是一百五十八块五。"),
    Turn("agent", "已经为您办理退费，三个工作日内到账，感谢您的来电。"),
]

HOURS_CALL_EN = [
    Turn("agent", "Good morning, this is Sam from Acme. How may I help?"),
    Turn("customer", "What are your opening hours on Saturday?"),
    Turn("agent", "We are open from nine in the morning until five in the afternoon."),
    Turn("customer", "Perfect, thank you very much."),
]
