"""Fixtures for the ingest service tests: the real service as a subprocess, real S3 and Redis.

One ingest instance (`ingest`) is shared by the whole session; fault tests start their own
with `start_ingest`. Test audio is made once per session with espeak-ng, sox and ffmpeg;
`new_wav()` returns a WAV whose bytes no other call returns (the service is idempotent per
tenant + SHA-256, so a test that needs a fresh recording must upload fresh bytes).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import struct
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from minio import Minio
from support import wait_for  # noqa: F401 - re-exported to the folder's tests

from callscribe.ingest.lifecycle.index import IndexClient
from callscribe.stack.procs import ManagedProcess, free_port, stop
from callscribe.stack.services import grpc_address, metrics_url, service_env, start_service
from callscribe.stack.tenants import TenantsFile, TenantSpec
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2_grpc, ingest_pb2_grpc
from callscribe.v1 import ingest_pb2 as pb

TENANTS = {
    "acme": ("COMPLIANCE", 1825),
    "globex": ("COMPLIANCE", 30),
    "govco": ("GOVERNANCE", 1),
}
MAX_UPLOAD_MB = 8
CHUNK = 256 * 1024
RECORDINGS_PREFIX = "recordings/"


# --------------------------------------------------------------------------- helpers


def metadata(**fields: Any) -> c.RecordingMetadata:
    """A valid RecordingMetadata (call_id and agent_id set); keyword arguments override."""
    base: dict[str, Any] = {"call_id": f"call-{secrets.token_hex(6)}", "agent_id": "agent-7", "filename": "call.wav"}
    base.update(fields)
    return c.RecordingMetadata(**base)


def requests(
    meta: c.RecordingMetadata | None, data: bytes, chunk: int = CHUNK, declare: bool = False
) -> Iterator[pb.UploadRecordingRequest]:
    """The upload's messages; `declare` puts the file's SHA-256 and size in the first one (streamed mode)."""
    if meta is not None:
        first = pb.UploadRecordingRequest(metadata=meta)
        if declare:
            first.sha256, first.size_bytes = hashlib.sha256(data).hexdigest(), len(data)
        yield first
    for at in range(0, len(data), chunk):
        yield pb.UploadRecordingRequest(chunk=data[at : at + chunk])


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def do_upload(
    stub: ingest_pb2_grpc.IngestServiceStub,
    token: str,
    meta: c.RecordingMetadata | None,
    data: bytes,
    chunk: int = CHUNK,
    timeout: float = 60.0,
) -> pb.UploadRecordingResponse:
    """Upload `data` after `meta` in chunks of `chunk` bytes; raises grpc.RpcError on failure."""
    return stub.UploadRecording(requests(meta, data, chunk), metadata=auth(token), timeout=timeout)


def wav_bytes(pcm: bytes, rate: int = 16000, channels: int = 1, declared_data: int | None = None) -> bytes:
    """A 16-bit PCM RIFF/WAVE file around `pcm`; `declared_data` lets the header lie about its size."""
    data_len = len(pcm) if declared_data is None else declared_data
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_len) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm_of(wav: bytes) -> bytes:
    """The data chunk of a RIFF/WAVE file."""
    pos = 12
    while pos + 8 <= len(wav):
        chunk_id, length = struct.unpack("<4sI", wav[pos : pos + 8])
        if chunk_id == b"data":
            return wav[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
    raise ValueError("no data chunk")


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


# --------------------------------------------------------------------------- audio


@dataclass
class Clips:
    """Test audio made once per session. `files` by name; `new_wav()` gives unique bytes each call."""

    directory: Path
    files: dict[str, bytes]
    speech_pcm: bytes  # 16 kHz mono 16-bit PCM of the spoken sentence

    def new_wav(self, seconds_of_noise: float = 0.0) -> bytes:
        """The spoken sentence, a silence of random length, 16 random bytes and optional quiet noise.

        The random bytes make every result unique; `seconds_of_noise` makes it as large as needed.
        """
        silence = b"\x00\x00" * (160 + secrets.randbelow(8000))
        noise = _quiet_noise(os.urandom(int(seconds_of_noise * 16000)))
        return wav_bytes(self.speech_pcm + silence + secrets.token_bytes(16) + noise)

    def path(self, name: str) -> Path:
        return self.directory / name


def _quiet_noise(raw: bytes) -> bytes:
    """16-bit samples in 0..255: each random byte is a sample's low byte, its high byte 0."""
    out = bytearray(len(raw) * 2)
    out[0::2] = raw
    return bytes(out)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    missing = [tool for tool in ("espeak-ng", "sox", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"test audio needs {', '.join(missing)} on PATH")
    d = tmp_path_factory.mktemp("ingest-audio")
    _run("espeak-ng", "-v", "en-us", "-w", d / "agent.wav", "thank you for calling, how can I help you today")
    _run("espeak-ng", "-v", "en-us", "-w", d / "customer.wav", "my invoice is wrong, please check it")
    # Mono 16 kHz 16-bit, both padded to exactly 3 s so the stereo merge lines up.
    for name in ("agent", "customer"):
        _run(
            "sox",
            d / f"{name}.wav",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            d / f"{name}16.wav",
            "pad",
            "0",
            "3",
            "trim",
            "0",
            "3",
        )
    _run("sox", "-M", d / "agent16.wav", d / "customer16.wav", d / "stereo.wav")
    _run("sox", d / "agent16.wav", "-r", "8000", "-e", "mu-law", "-b", "8", d / "ulaw.wav")
    _run(
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-i",
        d / "agent16.wav",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "32k",
        d / "speech.mp3",
    )
    _run("sox", d / "agent16.wav", d / "speech.flac")
    _run(
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-i",
        d / "agent16.wav",
        "-c:a",
        "libopus",
        "-b:a",
        "24k",
        d / "speech.opus",
    )
    files = {
        "wav": (d / "agent16.wav").read_bytes(),
        "stereo": (d / "stereo.wav").read_bytes(),
        "ulaw": (d / "ulaw.wav").read_bytes(),
        "mp3": (d / "speech.mp3").read_bytes(),
        "flac": (d / "speech.flac").read_bytes(),
        "opus": (d / "speech.opus").read_bytes(),
    }
    return Clips(d, files, pcm_of(files["wav"]))


@pytest.fixture(scope="session")
def new_wav(clips: Clips) -> Callable[..., bytes]:
    return clips.new_wav


# --------------------------------------------------------------------------- the service


@dataclass
class Ingest:
    """A running ingest service."""

    address: str
    env: dict[str, str]
    process: ManagedProcess
    tokens: dict[str, str]
    log_path: Path
    channel: grpc.Channel
    stub: ingest_pb2_grpc.IngestServiceStub

    @property
    def metrics_url(self) -> str:
        return metrics_url("ingest", self.env)

    def metric(self, name: str) -> float:
        """The current value of an unlabelled metric from the service's /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    @property
    def spool_dir(self) -> Path:
        return Path(self.env["INGEST_SPOOL_DIR"])

    def upload(self, tenant: str, data: bytes, chunk: int = CHUNK, **fields: Any) -> pb.UploadRecordingResponse:
        return do_upload(self.stub, self.tokens[tenant], metadata(**fields), data, chunk)

    def get(self, tenant: str, rec_id: str, **kw: Any) -> pb.Recording:
        request = pb.GetRecordingRequest(recording_id=rec_id, **kw)
        return self.stub.GetRecording(request, metadata=auth(self.tokens[tenant]), timeout=30)

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return auth(self.tokens[tenant])

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="session")
def tenants_file(stack_tmp: Path) -> TenantsFile:
    path = stack_tmp / "ingest-tenants.json"
    specs = {name: TenantSpec(mode, days) for name, (mode, days) in TENANTS.items()}
    return TenantsFile.write(path, specs)


StartIngest = Callable[..., Ingest]


@pytest.fixture(scope="session")
def start_ingest(s3_server, redis_server, tenants_file: TenantsFile, stack_tmp: Path) -> Iterator[StartIngest]:  # type: ignore[no-untyped-def]
    """Start an ingest instance: `start_ingest(name, redis_url=None, env=None, **INGEST_overrides)`.

    Every instance gets its own spool dir; `env=` restarts one with a previous instance's env.
    All are stopped at the end of the session.
    """
    started: list[Ingest] = []

    def start(name: str, redis_url: str | None = None, env: dict[str, str] | None = None, **overrides: str) -> Ingest:
        if env is None:
            state = {
                "home": str(stack_tmp / f"ingest-{name}"),
                "tenants_file": str(tenants_file.path),
                "s3": {
                    "endpoint": s3_server.endpoint,
                    "access_key": s3_server.access_key,
                    "secret_key": s3_server.secret_key,
                    "hot_bucket": s3_server.hot_bucket,
                    "cold_bucket": s3_server.cold_bucket,
                },
                "redis": {"url": redis_url or redis_server.url},
            }
            env = service_env("ingest", state)
            env["INGEST_MAX_UPLOAD_MB"] = str(MAX_UPLOAD_MB)
            # The smallest part S3 allows, so uploads under the 8 MiB limit still span several parts.
            env["INGEST_S3_PART_SIZE_MB"] = "5"
            env.update({f"INGEST_{k.upper()}": str(v) for k, v in overrides.items()})
        log_path = stack_tmp / "logs" / f"ingest-{name}.log"
        process = start_service("ingest", env, log_path)
        address = grpc_address("ingest", env)
        channel = grpc.insecure_channel(address)
        instance = Ingest(
            address,
            env,
            process,
            dict(tenants_file.tokens),
            log_path,
            channel,
            ingest_pb2_grpc.IngestServiceStub(channel),
        )
        started.append(instance)
        return instance

    yield start
    for instance in reversed(started):
        instance.close()
        stop(instance.process)


@pytest.fixture(scope="session")
def ingest(start_ingest: StartIngest) -> Ingest:
    """The ingest service shared by every test that does not break it."""
    return start_ingest("shared")


@pytest.fixture(scope="session")
def stub(ingest: Ingest) -> ingest_pb2_grpc.IngestServiceStub:
    return ingest.stub


@pytest.fixture(scope="session")
def tokens(ingest: Ingest) -> dict[str, str]:
    return ingest.tokens


# Helpers as fixtures (test modules cannot import this conftest by name).


@pytest.fixture(scope="session")
def upload() -> Callable[..., pb.UploadRecordingResponse]:
    """`upload(stub, token, metadata, data, chunk=256 KiB)`; raises grpc.RpcError on failure."""
    return do_upload


@pytest.fixture(scope="session")
def make_metadata() -> Callable[..., c.RecordingMetadata]:
    """`make_metadata(**fields)`: valid RecordingMetadata with a unique call_id."""
    return metadata


@pytest.fixture(scope="session")
def make_requests() -> Callable[..., Iterator[pb.UploadRecordingRequest]]:
    """`make_requests(metadata_or_None, data, chunk=256 KiB)`: the request stream of an upload."""
    return requests


@pytest.fixture(scope="session")
def poll() -> Callable[..., Any]:
    """`poll(predicate, timeout, what)`: wait until predicate() is truthy, returns its value."""
    return wait_for


@pytest.fixture(scope="session")
def make_wav() -> Callable[..., bytes]:
    """`make_wav(pcm, rate=16000, channels=1, declared_data=None)`: a PCM WAV, optionally lying."""
    return wav_bytes


# --------------------------------------------------------------------------- S3 inspection


@dataclass
class Archive:
    """Read-only views of the hot bucket, for checks."""

    client: Minio
    bucket: str

    def versions(self, prefix: str = RECORDINGS_PREFIX) -> set[tuple[str, str]]:
        """Every (key, version_id) under `prefix`, delete markers included."""
        return {
            (o.object_name, o.version_id or "")
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True, include_version=True)
        }

    def multipart_uploads(self) -> list[tuple[str, str]]:
        result = self.client._list_multipart_uploads(self.bucket)
        return [(u.object_name, u.upload_id) for u in result.uploads]

    def read(self, key: str, version_id: str) -> bytes:
        response = self.client.get_object(self.bucket, key, version_id=version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


@pytest.fixture(scope="session")
def archive(minio_client: Minio, s3_server) -> Archive:  # type: ignore[no-untyped-def]
    return Archive(minio_client, s3_server.hot_bucket)


def no_indexer(token: str = "no-indexer-token") -> IndexClient:
    """An indexer address where nothing listens: every update waits in Redis (index pending)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    return IndexClient(indexer_pb2_grpc.IndexerServiceStub(channel), token, timeout_s=2.0)
