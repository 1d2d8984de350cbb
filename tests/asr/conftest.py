"""Fixtures for the ASR service tests: the real service as a subprocess (Whisper base, int8, CPU), real
S3 (SeaweedFS) for ObjectRef segments, espeak-ng speech.

One ASR instance (`asr`) is shared by the session; its start is watched from the first health
answer on, so the NOT_SERVING -> SERVING transition is recorded. Tests that need other settings
start their own with `start_asr`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import Recordings, wait_for  # noqa: F401 - re-exported to the folder's tests

from callscribe.cli.samples import PlacedTurn, Turn, synthesize_call
from callscribe.stack.procs import ManagedProcess, spawn, stop, wait_until
from callscribe.stack.services import grpc_address, metrics_url, service_env
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.v1 import asr_pb2 as pb
from callscribe.v1 import asr_pb2_grpc

TENANTS = ("acme", "globex")
CALL_TIMEOUT_S = 240.0  # Whisper base on a shared 2-core CI box: ~2 s per segment, far slower when loaded
START_TIMEOUT_S = 120.0

# espeak-ng sentences Whisper base gets right on the CPU (checked one by one: "three business days",
# "billing department" or "is there anything else" come back wrong often enough to make a 10% bound flaky).
SENTENCES = (
    "Thank you for calling customer support, how can I help you today?",
    "I would like to check the status of my order.",
    "Could you please confirm your account number?",
    "Your payment was received on Monday morning.",
    "My internet connection keeps dropping every evening.",
    "I would like to update the address on my account.",
    "Can you tell me when my contract ends?",
    "I need a copy of my last invoice.",
    "Thank you for your patience, have a great day.",
    "Your order has been shipped this morning.",
)
CALL_TURNS = [
    Turn("agent", "Good morning, this is the billing department."),
    Turn("customer", "I was charged twice for my order."),
    Turn("agent", "I will refund the second payment today."),
]


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return float(jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses]))


# --------------------------------------------------------------------------- audio


@dataclass
class Speech:
    directory: Path
    pcm: list[bytes]  # 16 kHz mono PCM16 of each of SENTENCES
    call_path: Path  # stereo 16 kHz call, agent left
    call_turns: list[PlacedTurn]

    @staticmethod
    def channel_of(turn: PlacedTurn) -> int:
        return 0 if turn.speaker == "agent" else 1


def _speak(text: str, out: Path) -> bytes:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    samples, rate = sf.read(out, dtype="int16")
    assert rate == 16000
    return np.asarray(samples, dtype="<i2").tobytes()


@pytest.fixture(scope="session")
def speech_audio(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"test speech needs {', '.join(missing)} on PATH")
    d = tmp_path_factory.mktemp("asr-speech")
    pcm = [_speak(s, d / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
    call = d / "call.wav"
    turns = synthesize_call(call, CALL_TURNS, agent_side="left")
    return Speech(d, pcm, call, turns)


# --------------------------------------------------------------------------- the service


@pytest.fixture(scope="session")
def asr_tenants(stack_tmp: Path) -> TenantsFile:
    path = stack_tmp / "asr-tenants.json"
    return TenantsFile.write(path, {name: TenantSpec() for name in TENANTS})


@dataclass
class Asr:
    """A running ASR service."""

    address: str
    env: dict[str, str]
    process: ManagedProcess
    tokens: dict[str, str]
    channel: grpc.Channel
    stub: asr_pb2_grpc.AsrServiceStub
    health_seen: list[str] = field(default_factory=list)  # distinct health answers during the start

    @property
    def metrics_url(self) -> str:
        return metrics_url("asr", self.env)

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return auth(self.tokens[tenant])

    def transcribe(
        self, segments: list[pb.AsrSegment], tenant: str = "acme", timeout: float = CALL_TIMEOUT_S, **fields: Any
    ) -> pb.TranscribeResponse:
        request = pb.TranscribeRequest(segments=segments, **fields)
        return self.stub.Transcribe(request, metadata=self.auth(tenant), timeout=timeout)

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample on /metrics (0 when absent)."""
        import urllib.request

        body = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in body.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def close(self) -> None:
        self.channel.close()


def pcm_segment(data: bytes, segment_id: str = "", rate: int = 16000) -> pb.AsrSegment:
    return pb.AsrSegment(segment_id=segment_id, pcm=pb.Pcm16(data=data, sample_rate_hz=rate))


StartAsr = Callable[..., Asr]


def _health(stub: health_pb2_grpc.HealthStub) -> str:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.RpcError as exc:
        return f"rpc:{exc.code().name}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@pytest.fixture(scope="session")
def asr_state(s3_server, asr_tenants: TenantsFile, stack_tmp: Path) -> Callable[[str], dict[str, Any]]:  # type: ignore[no-untyped-def]
    def state(name: str) -> dict[str, Any]:
        return {
            "home": str(stack_tmp / f"asr-{name}"),
            "tenants_file": str(asr_tenants.path),
            "s3": {
                "endpoint": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "hot_bucket": s3_server.hot_bucket,
                "cold_bucket": s3_server.cold_bucket,
            },
            "redis": {"url": "redis://127.0.0.1:1/0"},  # the ASR does not use Redis
        }

    return state


@pytest.fixture(scope="session")
def start_asr(asr_state, asr_tenants: TenantsFile, stack_tmp: Path) -> Iterator[StartAsr]:  # type: ignore[no-untyped-def]
    """Start an ASR instance: `start_asr(name, **ASR_overrides)`; all are stopped at the end."""
    started: list[Asr] = []
    import os
    import sys

    def start(name: str, **overrides: str) -> Asr:
        env = service_env("asr", asr_state(name))
        env.update({"ASR_DEVICES": "cpu", "ASR_THREADS_PER_REPLICA": "2"})
        env.update({f"ASR_{k.upper()}": str(v) for k, v in overrides.items()})
        log_path = stack_tmp / "logs" / f"asr-{name}.log"
        process = spawn("asr", [sys.executable, "-m", "callscribe.asr"], {**os.environ, **env}, log_path)
        address = grpc_address("asr", env)
        seen: list[str] = []
        health_channel = grpc.insecure_channel(address)
        health = health_pb2_grpc.HealthStub(health_channel)

        def serving() -> bool:
            status = _health(health)
            if not seen or seen[-1] != status:
                seen.append(status)
            return status == "SERVING"

        try:
            wait_until(serving, START_TIMEOUT_S, f"asr {name} SERVING at {address}", process)
        except BaseException:
            stop(process)
            raise
        finally:
            health_channel.close()
        channel = grpc.insecure_channel(address)
        instance = Asr(
            address, env, process, dict(asr_tenants.tokens), channel, asr_pb2_grpc.AsrServiceStub(channel), seen
        )
        started.append(instance)
        return instance

    yield start
    for instance in reversed(started):
        instance.close()
        stop(instance.process)


@pytest.fixture(scope="session")
def asr(start_asr: StartAsr) -> Asr:
    """The ASR shared by every test that does not need other settings (Whisper base on 2 CPU threads)."""
    return start_asr("shared", language="en")


# --------------------------------------------------------------------------- S3
