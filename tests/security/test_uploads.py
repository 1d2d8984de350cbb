"""Holes 2, 3 and 5 of the adversarial probe (issue 16): unbounded metadata, idle streams and a one-tenant
flood, and ids that fool terminals. Every refusal stores nothing: no object version, no incomplete
multipart upload."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2

from .conftest import Guarded, wav


def _refused(guarded: Guarded, code: grpc.StatusCode, **meta: object) -> str:
    before = guarded.stored()
    with pytest.raises(grpc.RpcError) as err:
        guarded.upload("acme", **meta)
    assert err.value.code() == code, err.value.details()
    assert guarded.stored() == before, "a refused upload left something in the archive"
    return err.value.details() or ""


@pytest.mark.parametrize(
    ("meta", "says"),
    [
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "65 labels; at most 64"),
        ({"labels": {"note": "x" * 50_000}}, "at most 512"),
        ({"labels": {"k" * 1_000_000: "v"}}, "at most 64"),
        ({"filename": "f" * 3_000_000 + ".wav"}, "filename is"),
        ({"labels": {f"key{i:02d}": "v" * 510 for i in range(64)}}, "the metadata is"),
        ({"labels": {"": "v"}}, "empty key"),
    ],
    ids=["65-labels", "50k-value", "1m-key", "3m-filename", "total-over-32k", "empty-key"],
)
def test_unbounded_metadata_is_refused_before_anything_is_stored(guarded: Guarded, meta: dict, says: str) -> None:
    assert says in _refused(guarded, grpc.StatusCode.INVALID_ARGUMENT, **meta)


@pytest.mark.parametrize(
    "bad",
    ["del\x7fid", "c1\x85id", "bidi\u202egpj.exe", "zero\u200bwidth", "\ufeffbom", "esc\x1b[31mred", "nul\x00"],
    ids=["DEL", "C1", "bidi-override", "zero-width", "BOM", "ESC", "NUL"],
)
@pytest.mark.parametrize("field", ["call_id", "agent_id", "customer_id", "label", "filename"])
def test_ids_and_text_that_fool_terminals_are_refused(guarded: Guarded, field: str, bad: str) -> None:
    meta: dict[str, object] = {"labels": {"note": bad}} if field == "label" else {field: bad}
    details = _refused(guarded, grpc.StatusCode.INVALID_ARGUMENT, **meta)
    assert "U+" in details and "refused" in details


def _raw_upload(guarded: Guarded, metadata_bytes: bytes) -> grpc.RpcError:
    """An upload whose first message is `metadata_bytes`, sent as they are (no client-side checks)."""
    method = guarded.ingest_channel.stream_unary(
        "/callscribe.v1.IngestService/UploadRecording",
        request_serializer=lambda raw: raw,
        response_deserializer=ingest_pb2.UploadRecordingResponse.FromString,
    )
    chunk = ingest_pb2.UploadRecordingRequest(chunk=wav()).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        method(iter([metadata_bytes, chunk]), metadata=guarded.auth("acme"), timeout=30)
    return err.value


def test_invalid_utf8_in_an_id_is_invalid_argument_not_internal(guarded: Guarded) -> None:
    good = ingest_pb2.UploadRecordingRequest(metadata=c.RecordingMetadata(call_id="XXXXXXXX", agent_id="agent-1"))
    raw = good.SerializeToString().replace(b"XXXXXXXX", b"\xff\xfe\xfd\xfc\xc3\x28\xa0\xa1")
    before = guarded.stored()
    err = _raw_upload(guarded, raw)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "UTF-8" in (err.details() or "")
    assert guarded.stored() == before
    # The same for a unary call.
    method = guarded.ingest_channel.unary_unary(
        "/callscribe.v1.IngestService/GetRecording",
        request_serializer=lambda raw: raw,
        response_deserializer=ingest_pb2.Recording.FromString,
    )
    request = ingest_pb2.GetRecordingRequest(recording_id="Y" * 32).SerializeToString().replace(b"Y" * 32, b"\xff" * 32)
    with pytest.raises(grpc.RpcError) as unary:
        method(request, metadata=guarded.auth("acme"), timeout=10)
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _held(release: threading.Event, every_s: float, first: ingest_pb2.UploadRecordingRequest) -> Iterator[object]:
    """Metadata, then a byte of a WAV every `every_s` seconds until `release`, then the rest."""
    data = wav(2.0)
    yield first
    at = 0
    while not release.wait(every_s):
        yield ingest_pb2.UploadRecordingRequest(chunk=data[at : at + 1])
        at += 1
    yield ingest_pb2.UploadRecordingRequest(chunk=data[at:])


def test_an_idle_upload_is_ended_with_a_clear_status_and_stores_nothing(guarded: Guarded) -> None:
    release = threading.Event()
    first = ingest_pb2.UploadRecordingRequest(metadata=c.RecordingMetadata(call_id="idle", agent_id="a"))

    def silent() -> Iterator[object]:
        yield first
        release.wait(30)  # then nothing, for longer than INGEST_UPLOAD_IDLE_SECONDS (3)

    before = guarded.stored()
    started = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as err:
            guarded.ingest.UploadRecording(silent(), metadata=guarded.auth("acme"), timeout=30)
    finally:
        release.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "idle" in (err.value.details() or "") and "nothing was stored" in (err.value.details() or "")
    assert time.monotonic() - started < 15
    assert guarded.stored() == before


def test_a_slow_but_moving_upload_is_fine(guarded: Guarded) -> None:
    release = threading.Event()
    timer = threading.Timer(5.0, release.set)  # a byte every 1 s for 5 s: slower than the idle limit's pace
    timer.start()
    first = ingest_pb2.UploadRecordingRequest(metadata=c.RecordingMetadata(call_id="slow", agent_id="a"))
    ack = guarded.ingest.UploadRecording(_held(release, 1.0, first), metadata=guarded.auth("acme"), timeout=60)
    assert ack.recording_id and not ack.duplicate


def test_one_tenant_cannot_take_every_upload_slot(guarded: Guarded) -> None:
    release = threading.Event()
    first = ingest_pb2.UploadRecordingRequest(metadata=c.RecordingMetadata(call_id="flood", agent_id="a"))
    flood = [
        guarded.ingest.UploadRecording.future(_held(release, 1.0, first), metadata=guarded.auth("acme"), timeout=90)
        for _ in range(4)  # INGEST_MAX_UPLOADS_PER_TENANT in the conftest
    ]
    try:
        deadline = time.monotonic() + 20
        while guarded.metric("ingest", "callscribe_ingest_uploads_in_flight") < 4:
            assert time.monotonic() < deadline, "the flood never got in flight"
            time.sleep(0.1)
        with pytest.raises(grpc.RpcError) as err:
            guarded.upload("acme")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tenant acme" in (err.value.details() or "")
        # The other tenant still gets in, with slots to spare.
        assert guarded.upload("globex").recording_id
    finally:
        release.set()
    assert all(f.result(timeout=60).recording_id for f in flood)


def test_list_apis_page_by_bytes_as_well_as_by_count(guarded: Guarded) -> None:
    labels = {f"key{i:02d}": "v" * 480 for i in range(60)}  # ~30 KB of metadata each, under every bound
    ids = {guarded.upload("globex", labels=labels).recording_id for _ in range(40)}
    pages: list[ingest_pb2.ListRecordingsResponse] = []
    token = ""
    while True:
        page = guarded.ingest.ListRecordings(
            ingest_pb2.ListRecordingsRequest(page_size=1000, page_token=token), metadata=guarded.auth("globex")
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    assert len(pages) >= 2, "40 recordings of ~30 KB each must not fit one page"
    assert all(p.ByteSize() <= 1024 * 1024 + 64 * 1024 for p in pages)
    listed = [r.recording_id for p in pages for r in p.recordings]
    assert len(listed) == len(set(listed)), "a recording was listed twice across pages"
    assert ids <= set(listed)
