"""Uploads that must be refused: the right status, a message a person can act on, nothing stored.

After every refusal: no new object version under `recordings/`, no incomplete multipart upload,
no spool file left behind, and the service still takes a good upload.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading

import grpc
import pytest

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

OK_TIMEOUT = 30.0


@pytest.fixture(params=[False, True], ids=["spooled", "streamed"])
def make_requests(make_requests, request):  # type: ignore[no-untyped-def]
    """Every refusal is checked in both modes: without and with the SHA-256 declared up front."""

    def make(meta, data, chunk=256 * 1024):  # type: ignore[no-untyped-def]
        return make_requests(meta, data, chunk, declare=request.param)

    return make


@pytest.fixture
def nothing_stored(ingest, archive, new_wav, poll):  # type: ignore[no-untyped-def]
    """Call the returned function after the refused upload: it checks that nothing was kept."""
    before = archive.versions()
    assert archive.multipart_uploads() == []

    def check() -> None:
        # Once no upload is in flight (and no spool file is left) the refused call is fully over.
        poll(lambda: ingest.metric("callscribe_ingest_uploads_in_flight") == 0, 10, "the upload to finish")
        poll(lambda: not list(ingest.spool_dir.glob("*.upload")), 10, "the spool file to be removed")
        assert archive.versions() - before == set(), "a refused upload left an object version in S3"
        assert archive.multipart_uploads() == [], "a refused upload left an incomplete multipart upload"
        data = new_wav()
        ack = ingest.upload("acme", data)
        assert ack.sha256 == hashlib.sha256(data).hexdigest()
        assert ack.duplicate is False

    return check


def _refused(ingest, reqs, tenant: str = "acme") -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.UploadRecording(iter(reqs), metadata=ingest.auth(tenant), timeout=OK_TIMEOUT)
    return err.value


def _with_data_size(wav: bytes, declared: int) -> bytes:
    """`wav` with its data chunk's declared size replaced (the header lies)."""
    at = wav.index(b"data")
    return wav[: at + 4] + struct.pack("<I", declared) + wav[at + 8 :]


def test_empty_stream_is_invalid(ingest, nothing_stored):
    err = _refused(ingest, [])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty stream" in err.details()
    assert "metadata" in err.details()
    nothing_stored()


def test_metadata_without_audio_is_invalid(ingest, make_metadata, nothing_stored):
    err = _refused(ingest, [pb.UploadRecordingRequest(metadata=make_metadata())])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no audio" in err.details()
    nothing_stored()


def test_chunk_before_metadata_is_invalid(ingest, clips, make_requests, make_metadata, nothing_stored):
    data = clips.files["wav"]
    reqs = [pb.UploadRecordingRequest(chunk=data[:1000]), *make_requests(make_metadata(), data[1000:])]
    err = _refused(ingest, reqs)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message must carry metadata" in err.details()
    nothing_stored()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"call_id": ""}, "call_id is required"),
        ({"call_id": "   "}, "call_id is required"),
        ({"agent_id": ""}, "agent_id is required"),
        ({"call_id": "x" * 300}, "call_id is 300 characters"),
        ({"call_id": "bad\nid"}, "control characters"),
        ({"channel_layout": 42}, "channel_layout 42"),
        ({"hotwords": [c.Hotword(text=" ")]}, "hotword is empty"),
        ({"hotwords": [c.Hotword(text="x" * 101)]}, "over 100 characters"),
        ({"hotwords": [c.Hotword(text="refund", weight=-1)]}, "positive boost"),
        ({"hotwords": [c.Hotword(text=f"w{i}") for i in range(201)]}, "201 hotwords"),
        ({"zh_script": "hant"}, "zh_script 'hant' unknown; use one of simplified, traditional"),
    ],
    ids=[
        "no-call-id",
        "blank-call-id",
        "no-agent-id",
        "long-call-id",
        "control-chars",
        "unknown-layout",
        "blank-hotword",
        "long-hotword",
        "negative-weight",
        "too-many-hotwords",
        "unknown-zh-script",
    ],
)
def test_bad_metadata_is_invalid(ingest, clips, make_requests, make_metadata, nothing_stored, fields, words):
    err = _refused(ingest, make_requests(make_metadata(**fields), clips.files["wav"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.details()
    nothing_stored()


def test_metadata_naming_another_tenant_is_permission_denied(
    ingest, new_wav, make_requests, make_metadata, nothing_stored
):
    err = _refused(ingest, make_requests(make_metadata(tenant="globex"), new_wav()), tenant="acme")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "acme" in err.details() and "globex" in err.details()
    nothing_stored()


TEXT_BIG = b"Dear customer, this is not a recording. " * 5000  # > 64 KiB: refused at the header probe
TEXT_SMALL = b"name,amount\nacme,12.50\n" * 10  # < 64 KiB: refused when the upload ends
RANDOM = os.urandom(300 * 1024)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + os.urandom(100 * 1024)


@pytest.mark.parametrize("data", [TEXT_BIG, TEXT_SMALL, RANDOM, PDF], ids=["text-big", "text-small", "random", "pdf"])
def test_non_audio_bytes_are_invalid(ingest, make_requests, make_metadata, nothing_stored, data):
    err = _refused(ingest, make_requests(make_metadata(), data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a recognised audio file" in err.details()
    assert "WAV" in err.details()  # says what to send instead
    nothing_stored()


def test_truncated_wav_is_invalid(ingest, new_wav, make_requests, make_metadata, nothing_stored):
    data = new_wav()
    err = _refused(ingest, make_requests(make_metadata(), data[: len(data) * 6 // 10]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated" in err.details()
    nothing_stored()


def test_wav_whose_header_claims_more_data_is_invalid(ingest, new_wav, make_requests, make_metadata, nothing_stored):
    data = new_wav()
    at = data.index(b"data")
    (real,) = struct.unpack("<I", data[at + 4 : at + 8])
    err = _refused(ingest, make_requests(make_metadata(), _with_data_size(data, real + 64_000)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated" in err.details()
    assert "64000 more bytes" in err.details()
    nothing_stored()


def test_declared_truncated_wav_is_refused_after_its_first_chunk(ingest, new_wav, make_metadata, nothing_stored):
    """Its size and SHA-256 declared, the header alone shows the data chunk cannot fit: refused at
    once, not after the rest has been sent (the stream below would wait 30 s for it)."""
    data = new_wav(seconds_of_noise=20)
    cut = data[: len(data) * 6 // 10]
    more = threading.Event()
    rest_sent = []

    def gen():  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(
            metadata=make_metadata(), sha256=hashlib.sha256(cut).hexdigest(), size_bytes=len(cut)
        )
        yield pb.UploadRecordingRequest(chunk=cut[: 128 * 1024])
        more.wait(30)
        rest_sent.append(True)
        yield pb.UploadRecordingRequest(chunk=cut[128 * 1024 :])

    try:
        err = _refused(ingest, gen())
        assert rest_sent == [], "refused only after the client sent everything"
    finally:
        more.set()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated" in err.details()
    nothing_stored()


def test_truncated_flac_is_invalid(ingest, clips, make_requests, make_metadata, nothing_stored):
    data = clips.files["flac"]
    err = _refused(ingest, make_requests(make_metadata(), data[: len(data) // 2]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated" in err.details() or "corrupt" in err.details()
    nothing_stored()


def test_wav_at_unsupported_rate_is_invalid(ingest, clips, make_wav, make_requests, make_metadata, nothing_stored):
    data = make_wav(clips.speech_pcm, rate=4000)
    err = _refused(ingest, make_requests(make_metadata(), data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sample rate 4000 Hz" in err.details()
    nothing_stored()


def test_stereo_without_channel_layout_is_invalid(ingest, clips, make_requests, make_metadata, nothing_stored):
    err = _refused(ingest, make_requests(make_metadata(), clips.files["stereo"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stereo" in err.details()
    assert "STEREO_AGENT_LEFT" in err.details()
    nothing_stored()


def test_mono_layout_on_stereo_audio_is_invalid(ingest, clips, make_requests, make_metadata, nothing_stored):
    meta = make_metadata(channel_layout=c.CHANNEL_LAYOUT_MONO)
    err = _refused(ingest, make_requests(meta, clips.files["stereo"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MONO needs 1 channel" in err.details()
    assert "has 2" in err.details()
    nothing_stored()


def test_stereo_layout_on_mono_audio_is_invalid(ingest, new_wav, make_requests, make_metadata, nothing_stored):
    meta = make_metadata(channel_layout=c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT)
    err = _refused(ingest, make_requests(meta, new_wav()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 2 channel" in err.details()
    nothing_stored()


def test_second_metadata_message_is_invalid(ingest, new_wav, make_requests, make_metadata, nothing_stored):
    data = new_wav()
    reqs = list(make_requests(make_metadata(), data, 32 * 1024))
    reqs.insert(2, pb.UploadRecordingRequest(metadata=make_metadata()))
    err = _refused(ingest, reqs)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata may only be sent once" in err.details()
    nothing_stored()


def test_upload_over_the_size_limit_is_resource_exhausted(
    ingest, new_wav, make_requests, make_metadata, nothing_stored
):
    data = new_wav(seconds_of_noise=270)  # 16 kHz * 2 B * 270 s: ~8.3 MiB, over INGEST_MAX_UPLOAD_MB=8
    assert len(data) > 8 * 1024 * 1024
    err = _refused(ingest, make_requests(make_metadata(), data, 1024 * 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "size limit of 8 MiB" in err.details()
    assert "INGEST_MAX_UPLOAD_MB" in err.details()
    nothing_stored()


def test_upload_just_under_the_size_limit_is_accepted(ingest, clips, make_wav):
    pcm = clips.speech_pcm
    room = 8 * 1024 * 1024 - 44 - len(pcm)
    data = make_wav(pcm + os.urandom(room - room % 2))
    assert len(data) <= 8 * 1024 * 1024
    ack = ingest.upload("acme", data, chunk=1024 * 1024)
    assert ack.audio.size_bytes == len(data)
    assert ack.sha256 == hashlib.sha256(data).hexdigest()


def test_chunk_over_the_grpc_message_limit_is_resource_exhausted(ingest, new_wav, make_metadata, nothing_stored):
    data = new_wav(seconds_of_noise=150)  # ~4.8 MiB in one message: over 4 MiB + 64 KiB
    assert len(data) > 4 * 1024 * 1024 + 64 * 1024
    reqs = [pb.UploadRecordingRequest(metadata=make_metadata()), pb.UploadRecordingRequest(chunk=data)]
    err = _refused(ingest, reqs)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.details()
    nothing_stored()


def test_client_cancelling_mid_stream_stores_nothing(ingest, new_wav, make_metadata, poll, nothing_stored):
    data = new_wav(seconds_of_noise=30)
    release = threading.Event()
    sent = threading.Event()

    def gen():  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(metadata=make_metadata())
        for at in range(0, len(data) // 2, 64 * 1024):
            yield pb.UploadRecordingRequest(chunk=data[at : at + 64 * 1024])
        sent.set()
        release.wait(30)  # blocked mid-upload until the test has cancelled
        yield pb.UploadRecordingRequest(chunk=data[len(data) // 2 :])

    received = ingest.metric("callscribe_ingest_received_bytes_total")
    future = ingest.stub.UploadRecording.future(gen(), metadata=ingest.auth("acme"), timeout=OK_TIMEOUT)
    try:
        assert sent.wait(10)
        # The server has received much of the first half: the cancel hits an upload in progress.
        poll(
            lambda: ingest.metric("callscribe_ingest_received_bytes_total") - received >= len(data) // 4,
            10,
            "the server to receive the first half",
        )
        assert future.cancel()
    finally:
        release.set()
    assert future.cancelled()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    nothing_stored()
    # The same bytes uploaded in full now are new, not a duplicate of a half-stored recording.
    ack = ingest.upload("acme", data)
    assert ack.duplicate is False
    assert ack.sha256 == hashlib.sha256(data).hexdigest()


# Streamed mode only: what the client declared up front is checked against what arrived.


def _declared(meta, data: bytes, sha256: str, size: int, chunk: int = 256 * 1024):  # type: ignore[no-untyped-def]
    yield pb.UploadRecordingRequest(metadata=meta, sha256=sha256, size_bytes=size)
    for at in range(0, len(data), chunk):
        yield pb.UploadRecordingRequest(chunk=data[at : at + chunk])


def test_declared_sha256_not_matching_the_bytes_is_invalid(ingest, new_wav, make_metadata, nothing_stored):
    data = new_wav(seconds_of_noise=200)
    wrong = hashlib.sha256(data + b"x").hexdigest()
    err = _refused(ingest, _declared(make_metadata(), data, wrong, len(data)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "corrupted in transit" in err.details() and wrong in err.details()
    nothing_stored()


@pytest.fixture(scope="module")
def big_ingest(start_ingest):  # type: ignore[no-untyped-def]
    """Room for uploads of several 5 MiB parts, so the multipart path (and its abort) is exercised."""
    return start_ingest("big", max_upload_mb="40")


def _nothing_left(instance, archive, before, poll) -> None:  # type: ignore[no-untyped-def]
    poll(lambda: instance.metric("callscribe_ingest_uploads_in_flight") == 0, 10, "the upload to finish")
    poll(lambda: not list(instance.spool_dir.glob("*.upload")), 10, "the spool file to be removed")
    assert archive.versions() - before == set(), "a refused upload left an object version in S3"
    assert archive.multipart_uploads() == [], "a refused upload left an incomplete multipart upload"


# A declared size lets a byte-exact WAV go as one PUT that starts at once (streamed, its last chunk
# held back until every check passed); without it, 20 MiB go as a multipart upload of 5 MiB parts.
WRITE_PATHS = pytest.mark.parametrize("declare_size", [True, False], ids=["streamed-put", "multipart"])


@WRITE_PATHS
def test_sha256_mismatch_after_bytes_went_to_s3_leaves_nothing(
    big_ingest, archive, clips, make_wav, make_metadata, poll, declare_size
):
    data = make_wav(clips.speech_pcm + os.urandom(20 * 1024 * 1024))  # > 4 parts of 5 MiB
    size = len(data) if declare_size else 0
    wrong = hashlib.sha256(data + b"x").hexdigest()
    before = archive.versions()
    err = _refused(big_ingest, _declared(make_metadata(), data, wrong, size))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "corrupted in transit" in err.details()
    _nothing_left(big_ingest, archive, before, poll)
    ok = big_ingest.stub.UploadRecording(
        _declared(make_metadata(), data, hashlib.sha256(data).hexdigest(), size),
        metadata=big_ingest.auth("acme"), timeout=OK_TIMEOUT,
    )  # fmt: skip
    assert ok.sha256 == hashlib.sha256(data).hexdigest() and not ok.duplicate
    assert archive.read(ok.object.key, ok.object.version_id) == data


def test_more_bytes_than_declared_are_refused_before_s3_completes(
    big_ingest, archive, clips, make_wav, make_metadata, poll
):
    data = make_wav(clips.speech_pcm + os.urandom(8 * 1024 * 1024))
    before = archive.versions()
    err = _refused(big_ingest, _declared(make_metadata(), data + b"extra", hashlib.sha256(data).hexdigest(), len(data)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"more than the declared {len(data)} bytes" in err.details()
    _nothing_left(big_ingest, archive, before, poll)


def test_declared_size_not_matching_the_bytes_is_invalid(ingest, new_wav, make_metadata, nothing_stored):
    data = new_wav()
    err = _refused(ingest, _declared(make_metadata(), data, hashlib.sha256(data).hexdigest(), len(data) + 1))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"received {len(data)} bytes" in err.details()
    nothing_stored()


def test_declared_size_over_the_limit_is_refused_before_any_audio(ingest, make_metadata, nothing_stored):
    reqs = [pb.UploadRecordingRequest(metadata=make_metadata(), sha256="0" * 64, size_bytes=9 * 1024 * 1024)]
    err = _refused(ingest, reqs)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "size limit of 8 MiB" in err.details()
    nothing_stored()


def test_malformed_declared_sha256_is_invalid(ingest, new_wav, make_metadata, nothing_stored):
    data = new_wav()
    err = _refused(ingest, _declared(make_metadata(), data, "not-a-sha", len(data)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "64 lowercase hex" in err.details()
    nothing_stored()


@WRITE_PATHS
def test_client_cancelling_an_upload_after_bytes_went_to_s3_leaves_nothing(
    big_ingest, archive, clips, make_wav, make_metadata, poll, declare_size
):
    data = make_wav(clips.speech_pcm + os.urandom(20 * 1024 * 1024))
    release = threading.Event()
    before = archive.versions()

    def gen():  # type: ignore[no-untyped-def]
        digest, size = hashlib.sha256(data).hexdigest(), len(data) if declare_size else 0
        yield pb.UploadRecordingRequest(metadata=make_metadata(), sha256=digest, size_bytes=size)
        for at in range(0, 16 * 1024 * 1024, 256 * 1024):
            yield pb.UploadRecordingRequest(chunk=data[at : at + 256 * 1024])
        release.wait(30)
        yield pb.UploadRecordingRequest(chunk=data[16 * 1024 * 1024 :])

    def sending() -> bool:
        if declare_size:
            return big_ingest.metric("callscribe_ingest_s3_streamed_puts_in_flight") == 1
        return archive.multipart_uploads() != []

    future = big_ingest.stub.UploadRecording.future(gen(), metadata=big_ingest.auth("acme"), timeout=OK_TIMEOUT)
    try:
        poll(sending, 10, "the upload to start sending to S3")
        poll(lambda: big_ingest.metric("callscribe_ingest_received_bytes_total") > 0, 10, "bytes to arrive")
        assert future.cancel()
    finally:
        release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    _nothing_left(big_ingest, archive, before, poll)
    poll(lambda: big_ingest.metric("callscribe_ingest_s3_streamed_puts_in_flight") == 0, 10, "the PUT to end")
