"""A bounded mutation fuzz of the upload path (issue 16): a few hundred mutated recordings (fixed seed),
each uploaded to the real ingest; after every one the invariants hold: the service is alive, a refusal
carries a status a client can act on and a message and stores nothing, an acceptance stored exactly the
bytes sent; at the end no incomplete multipart upload is left."""

from __future__ import annotations

import hashlib
import io
import random
import struct
from collections.abc import Callable

import grpc
import numpy as np
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import Guarded

SEED = 1605
CASES = 320
# What a refused upload may answer: the client's fault, or limits. Never INTERNAL or UNKNOWN.
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(SEED)
    out = []
    for fmt, subtype, rate, channels in (
        ("WAV", "PCM_16", 8000, 1),
        ("WAV", "ULAW", 8000, 2),
        ("WAV", "PCM_16", 16000, 2),
        ("FLAC", "PCM_16", 16000, 1),
        ("OGG", "VORBIS", 16000, 1),
    ):
        frames = rng.uniform(-0.4, 0.4, (int(0.6 * rate), channels)).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, frames, rate, format=fmt, subtype=subtype)
        out.append(buf.getvalue())
    return out


def _flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)


def _overwrite(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(min(len(data), 256))  # mostly the header, where parsers are fragile
    for i in range(rng.randint(1, 4)):
        if at + i < len(data):
            data[at + i] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(1, len(data)) :]


def _insert(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data))
    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))


def _duplicate(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data))
    data[at:at] = data[at : at + rng.randint(1, 4096)]


def _riff_sizes(data: bytearray, rng: random.Random) -> None:
    if data[:4] == b"RIFF" and len(data) >= 44:
        field = rng.choice((4, 40, 24, 22))  # RIFF size, data size, sample rate, channels
        value = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(data) * 2, rng.randrange(1 << 32)))
        if field == 22:
            data[22:24] = struct.pack("<H", value & 0xFFFF)
        else:
            data[field : field + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    else:
        _overwrite(data, rng)


MUTATIONS: list[Callable[[bytearray, random.Random], None]] = [
    _flip,
    _overwrite,
    _truncate,
    _insert,
    _duplicate,
    _riff_sizes,
]


def _serving(guarded: Guarded) -> bool:
    reply = health_pb2_grpc.HealthStub(guarded.ingest_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_mutated_uploads_keep_every_invariant(guarded: Guarded) -> None:
    rng = random.Random(SEED)
    seeds = _seeds()
    outcomes = {"archived": 0, "duplicate": 0, "refused": 0}
    versions, _ = guarded.stored()
    for case in range(CASES):
        data = bytearray(rng.choice(seeds))
        for mutate in rng.sample(MUTATIONS, rng.randint(1, 2)):
            mutate(data, rng)
        if rng.random() < 0.1:
            data += bytes(rng.choice(seeds))  # two files spliced
        sent = bytes(data) or b"\x00"
        try:
            ack = guarded.upload("acme", sent)
        except grpc.RpcError as err:
            assert err.code() in REFUSALS, f"case {case}: {err.code()} {err.details()}"
            assert (err.details() or "").strip(), f"case {case}: a refusal without a message"
            now, pending = guarded.stored()
            assert now == versions, f"case {case}: a refused upload stored an object version"
            assert pending == [], f"case {case}: a refused upload left an incomplete multipart upload"
            outcomes["refused"] += 1
        else:
            assert ack.sha256 == hashlib.sha256(sent).hexdigest(), f"case {case}: stored other bytes"
            outcomes["duplicate" if ack.duplicate else "archived"] += 1
            versions, _ = guarded.stored()
        assert _serving(guarded), f"case {case}: ingest stopped serving"
    assert sum(outcomes.values()) == CASES
    assert outcomes["refused"] > CASES // 4, outcomes  # the mutations do reach the validation
    _, pending = guarded.stored()
    assert pending == []
