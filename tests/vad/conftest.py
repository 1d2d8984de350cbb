"""Fixtures for the VAD service tests: the real service as a subprocess, real S3 (SeaweedFS).

One VAD instance (`vad`) is shared by the session; tests that need other settings start their own
with `start_vad`. Synthetic calls with known turn times are made once per session with espeak-ng
and sox (`callscribe.cli.samples.synthesize_call`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from support import Recordings, wait_for  # noqa: F401 - re-exported to the folder's tests

from callscribe.cli.samples import HOURS_CALL_EN, REFUND_CALL_EN, PlacedTurn, Turn, synthesize_call
from callscribe.stack.procs import ManagedProcess, stop
from callscribe.stack.services import grpc_address, metrics_url, service_env, start_service
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import vad_pb2 as pb
from callscribe.v1 import vad_pb2_grpc

TENANTS = ("acme", "globex")
CALL_TIMEOUT_S = 120.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_audio: a multi-minute recording through the service (slower)")


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


# --------------------------------------------------------------------------- audio


@dataclass
class Call:
    """A synthetic call: the file's bytes and where each planted turn lies."""

    name: str
    path: Path
    turns: list[PlacedTurn]
    agent_side: str  # left, right or mono
    telephone: bool
    noise: float

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def layout(self) -> int:
        return {
            "left": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
            "right": c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
            "mono": c.CHANNEL_LAYOUT_MONO,
        }[self.agent_side]

    def channel_of(self, speaker: str) -> int:
        if self.agent_side == "mono":
            return 0
        agent = 0 if self.agent_side == "left" else 1
        return agent if speaker == "agent" else 1 - agent


SHORT_CALL = [
    Turn("agent", "Hello, this is Acme billing, how can I help?"),
    Turn("customer", "I was charged twice this month."),
    Turn("agent", "Let me check that for you right now."),
]

# name -> (turns, agent_side, telephone, noise)
CALL_SPECS: dict[str, tuple[list[Turn], str, bool, float]] = {
    "clean_left": (REFUND_CALL_EN, "left", False, 0.0),
    "clean_right": (HOURS_CALL_EN, "right", False, 0.0),
    "noisy_left": (REFUND_CALL_EN, "left", False, 0.01),
    "telephone_left": (HOURS_CALL_EN, "left", True, 0.0),
    "telephone_right": (REFUND_CALL_EN, "right", True, 0.0),
    "noisy_telephone": (SHORT_CALL, "left", True, 0.01),
    "mono": (HOURS_CALL_EN, "mono", False, 0.0),
    "mono_telephone": (SHORT_CALL, "mono", True, 0.0),
}


@dataclass
class Audio:
    directory: Path
    calls: dict[str, Call]
    extra: dict[str, Path] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.extra[name]


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    missing = [tool for tool in ("espeak-ng", "sox", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"test audio needs {', '.join(missing)} on PATH")
    d = tmp_path_factory.mktemp("vad-audio")
    calls = {}
    for name, (turns, side, telephone, noise) in CALL_SPECS.items():
        path = d / f"{name}.wav"
        placed = synthesize_call(path, turns, agent_side=side, telephone=telephone, noise=noise)
        calls[name] = Call(name, path, placed, side, telephone, noise)
    extra = {
        "silence": d / "silence.wav",
        "pcm24": d / "pcm24.wav",
        "rate96k": d / "rate96k.wav",
        "header_only": d / "header_only.wav",
        "alac": d / "alac.m4a",
    }
    _run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", extra["silence"], "trim", "0", "10")
    _run("sox", calls["clean_left"].path, "-b", "24", extra["pcm24"], "trim", "0", "3")
    _run("sox", calls["clean_left"].path, "-r", "96000", extra["rate96k"], "trim", "0", "3")
    _run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", extra["header_only"], "trim", "0", "0")
    # A codec no call recorder writes: Apple Lossless in M4A (refused by the policy, not by FFmpeg).
    _run("ffmpeg", "-loglevel", "error", "-i", extra["pcm24"], "-c:a", "alac", extra["alac"])
    return Audio(d, calls, extra)


def make_long_call(audio: Audio, minutes: int) -> Path:
    """A mono 8 kHz mu-law recording of `minutes`: one call (speech) and quiet noise, repeated."""
    out = audio.directory / f"long-{minutes}min.wav"
    if out.exists():
        return out
    unit = audio.directory / "long-unit.wav"  # exactly 60 s: the mono telephone call then noise
    if not unit.exists():
        noise = audio.directory / "long-noise.wav"
        _run("sox", "-n", "-r", "8000", "-c", "1", "-b", "16", noise, "synth", "60", "whitenoise", "vol", "0.001")
        _run(
            "sox", "-m", noise, audio.calls["mono_telephone"].path, "-r", "8000", "-c", "1", "-b", "16",
            unit, "trim", "0", "60",
        )  # fmt: skip
    _run("sox", unit, "-e", "u-law", out, "repeat", str(minutes - 1))
    return out


# --------------------------------------------------------------------------- the service


@pytest.fixture(scope="session")
def vad_tenants(stack_tmp: Path) -> TenantsFile:
    path = stack_tmp / "vad-tenants.json"
    return TenantsFile.write(path, {name: TenantSpec() for name in TENANTS})


@dataclass
class Vad:
    """A running VAD service."""

    address: str
    env: dict[str, str]
    process: ManagedProcess
    tokens: dict[str, str]
    log_path: Path
    channel: grpc.Channel
    stub: vad_pb2_grpc.VadServiceStub

    @property
    def metrics_url(self) -> str:
        return metrics_url("vad", self.env)

    @property
    def spool_dir(self) -> Path:
        return Path(self.env["VAD_SPOOL_DIR"])

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return auth(self.tokens[tenant])

    def detect(
        self,
        *,
        data: bytes | None = None,
        ref: c.ObjectRef | None = None,
        layout: int = c.CHANNEL_LAYOUT_UNSPECIFIED,
        tenant: str = "acme",
        timeout: float = CALL_TIMEOUT_S,
        **options: Any,
    ) -> pb.DetectSpeechResponse:
        request = pb.DetectSpeechRequest(channel_layout=layout, options=pb.VadOptions(**options))
        if data is not None:
            request.inline_audio = data
        if ref is not None:
            request.object.CopyFrom(ref)
        return self.stub.DetectSpeech(request, metadata=self.auth(tenant), timeout=timeout)

    def rss_bytes(self) -> int:
        """Resident memory of the service and its worker processes together."""
        proc = psutil.Process(self.process.pid)
        total = 0
        for p in (proc, *proc.children(recursive=True)):
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def close(self) -> None:
        self.channel.close()


StartVad = Callable[..., Vad]


@pytest.fixture(scope="session")
def start_vad(s3_server, vad_tenants: TenantsFile, stack_tmp: Path) -> Iterator[StartVad]:  # type: ignore[no-untyped-def]
    """Start a VAD instance: `start_vad(name, **VAD_overrides)`; all are stopped at the end."""
    started: list[Vad] = []

    def start(name: str, **overrides: str) -> Vad:
        state = {
            "home": str(stack_tmp / f"vad-{name}"),
            "tenants_file": str(vad_tenants.path),
            "s3": {
                "endpoint": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "hot_bucket": s3_server.hot_bucket,
                "cold_bucket": s3_server.cold_bucket,
            },
            "redis": {"url": "redis://127.0.0.1:1/0"},  # the VAD does not use Redis
        }
        env = service_env("vad", state)
        env.update({f"VAD_{k.upper()}": str(v) for k, v in overrides.items()})
        log_path = stack_tmp / "logs" / f"vad-{name}.log"
        process = start_service("vad", env, log_path, timeout=120)
        address = grpc_address("vad", env)
        channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        instance = Vad(
            address, env, process, dict(vad_tenants.tokens), log_path, channel, vad_pb2_grpc.VadServiceStub(channel)
        )
        started.append(instance)
        return instance

    yield start
    for instance in reversed(started):
        instance.close()
        stop(instance.process)


@pytest.fixture(scope="session")
def vad(start_vad: StartVad) -> Vad:
    """The VAD service shared by every test that does not need other settings.

    Its queue takes 8 waiting requests (default: 2 x workers), so the 8 concurrent callers of the
    concurrency test are all admitted on a 2-core machine; the busy answer has its own instance.
    """
    return start_vad("shared", queue_size="8")


# --------------------------------------------------------------------------- S3


@pytest.fixture(scope="session")
def poll() -> Callable[..., Any]:
    return wait_for


@pytest.fixture(scope="session")
def long_call() -> Callable[[Audio, int], Path]:
    return make_long_call
