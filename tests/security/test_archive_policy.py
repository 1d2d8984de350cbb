"""Hole 6 of the adversarial probe (issue 16): what the archive accepts, chunk sizes as documented, and a
cancelled upload reported as CANCELLED (not as the client's bad audio)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import soundfile as sf

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

from .conftest import Guarded, wav

MIB = 1024 * 1024


def test_a_chunk_over_4_mib_is_refused_as_the_readme_says(guarded: Guarded) -> None:
    before = guarded.stored()
    data = wav(140.0, rate=16000)[: 4 * MIB + 32 * 1024]  # over 4 MiB, under gRPC's message limit
    assert len(data) > 4 * MIB
    with pytest.raises(grpc.RpcError) as err:
        guarded.upload("acme", data)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 4194304 (4 MiB) per message" in (err.value.details() or "")
    assert guarded.stored() == before


def _flac(seconds: float) -> bytes:
    rng = np.random.default_rng(7)
    out = io.BytesIO()
    sf.write(out, rng.uniform(-0.5, 0.5, (int(seconds * 48000), 2)).astype(np.float32), 48000, format="FLAC")
    return out.getvalue()


@pytest.mark.parametrize("declared", [False, True], ids=["spooled", "streamed"])
def test_an_upload_cancelled_mid_way_is_cancelled_not_invalid(guarded: Guarded, declared: bool) -> None:
    data = _flac(130.0)
    assert len(data) > 21 * MIB
    cancelled_before = guarded.metric("ingest", "callscribe_ingest_grpc_requests_total", code="CANCELLED")
    invalid_before = guarded.metric("ingest", "callscribe_ingest_grpc_requests_total", code="INVALID_ARGUMENT")
    sent_20 = threading.Event()
    meta = c.RecordingMetadata(
        call_id=f"cancel-{declared}", agent_id="a", channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT
    )
    first = ingest_pb2.UploadRecordingRequest(metadata=meta)
    if declared:
        first.sha256 = hashlib.sha256(data).hexdigest()
        first.size_bytes = len(data)

    def messages() -> Iterator[ingest_pb2.UploadRecordingRequest]:
        yield first
        for at in range(0, len(data), MIB):
            if at >= 20 * MIB:
                sent_20.set()
                time.sleep(30)  # the client cancels here
            yield ingest_pb2.UploadRecordingRequest(chunk=data[at : at + MIB])

    before = guarded.stored()
    future = guarded.ingest.UploadRecording.future(messages(), metadata=guarded.auth("acme"), timeout=60)
    assert sent_20.wait(30)
    time.sleep(0.5)  # let the server take what was sent
    future.cancel()
    deadline = time.monotonic() + 20
    while guarded.metric("ingest", "callscribe_ingest_grpc_requests_total", code="CANCELLED") == cancelled_before:
        assert time.monotonic() < deadline, "the server never finished the cancelled upload as CANCELLED"
        time.sleep(0.1)
    assert guarded.metric("ingest", "callscribe_ingest_grpc_requests_total", code="INVALID_ARGUMENT") == invalid_before
    deadline = time.monotonic() + 10
    while guarded.stored() != before:  # an aborted multipart upload may take a moment to be cleaned up
        assert time.monotonic() < deadline, "a cancelled upload left something in the archive"
        time.sleep(0.1)
