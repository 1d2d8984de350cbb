"""Uploads that succeed, against the real service, S3 (Object Lock) and Redis.

Acknowledgement and fingerprint, audio facts, the lock, legal hold, duplicates, the job
queue, listing.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

JOB_STREAM = "callscribe:jobs"
DAY = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _close_to(actual: datetime, expected: datetime, slack: timedelta = timedelta(minutes=1)) -> bool:
    return abs(actual - expected) <= slack


# --------------------------------------------------------------------------- acknowledgement


def test_upload_is_acknowledged_with_sha256_and_a_stored_locked_version(ingest, new_wav, archive, minio_client):
    data = new_wav()
    sha = hashlib.sha256(data).hexdigest()

    ack = ingest.upload("acme", data, filename="first.wav")

    assert re.fullmatch(r"[0-9a-f]{32}", ack.recording_id)
    assert ack.sha256 == sha
    assert ack.duplicate is False
    assert ack.enqueued is True
    assert ack.object.bucket == archive.bucket
    assert ack.object.key == f"recordings/acme/{ack.recording_id}/audio"
    assert ack.object.sha256 == sha
    assert ack.object.version_id
    assert ack.audio.size_bytes == len(data)
    # The version exists, carries the fingerprint, and its bytes hash to it.
    stat = minio_client.stat_object(archive.bucket, ack.object.key, version_id=ack.object.version_id)
    assert stat.version_id == ack.object.version_id
    assert stat.metadata.get("x-amz-meta-sha256") == sha
    assert stat.size == len(data)
    assert hashlib.sha256(archive.read(ack.object.key, ack.object.version_id)).hexdigest() == sha
    # The acknowledged lock is the one on the object.
    assert ack.lock.mode == c.LOCK_MODE_COMPLIANCE
    assert ack.lock.legal_hold is False
    retention = minio_client.get_object_retention(archive.bucket, ack.object.key, ack.object.version_id)
    assert retention.mode == COMPLIANCE
    assert _close_to(retention.retain_until_date, ack.lock.retain_until.ToDatetime(UTC), timedelta(seconds=1))


def test_small_record_rides_in_the_audio_metadata_and_get_returns_what_was_sent(ingest, new_wav, archive):
    ack = ingest.upload("acme", new_wav(), call_id="呼叫-7", hotwords=[c.Hotword(text="退费政策", weight=1.5)])
    stat = archive.client.stat_object(archive.bucket, ack.object.key, version_id=ack.object.version_id)
    assert "x-amz-meta-record" in stat.metadata
    sidecar = f"recordings/acme/{ack.recording_id}/metadata.json"
    assert not [o for o in archive.client.list_objects(archive.bucket, prefix=sidecar)], "no sidecar needed"
    rec = ingest.get("acme", ack.recording_id)
    assert rec.metadata.call_id == "呼叫-7"
    assert [(h.text, h.weight) for h in rec.metadata.hotwords] == [("退费政策", 1.5)]


def test_large_record_goes_to_a_locked_sidecar_and_get_returns_what_was_sent(ingest, new_wav, archive, minio_client):
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    many = [c.Hotword(text=f"term number {i}", weight=1.0) for i in range(60)]  # too big for S3 metadata
    ack = ingest.upload(
        "acme",
        new_wav(),
        call_id="call-42",
        agent_id="agent-9",
        customer_id="cust-1",
        started_at=_ts(started),
        language=c.LANGUAGE_EN,
        hotwords=[c.Hotword(text="invoice", weight=2.0), *many],
        labels={"queue": "billing"},
        filename="42.wav",
        zh_script="traditional_tw",
    )

    sidecar = f"recordings/acme/{ack.recording_id}/metadata.json"
    assert minio_client.get_object_retention(archive.bucket, sidecar).mode == COMPLIANCE
    rec = ingest.get("acme", ack.recording_id)
    assert rec.recording_id == ack.recording_id
    assert rec.tenant == "acme"
    m = rec.metadata
    assert (m.tenant, m.call_id, m.agent_id, m.customer_id, m.filename, m.zh_script) == (
        "acme",
        "call-42",
        "agent-9",
        "cust-1",
        "42.wav",
        "traditional_tw",
    )
    assert m.started_at.ToDatetime(UTC) == started
    assert m.language == c.LANGUAGE_EN
    assert m.channel_layout == c.CHANNEL_LAYOUT_MONO  # inferred from the mono audio
    assert [(h.text, h.weight) for h in m.hotwords] == [("invoice", 2.0)] + [(h.text, h.weight) for h in many]
    assert dict(m.labels) == {"queue": "billing"}
    assert rec.object == ack.object
    assert rec.audio == ack.audio
    assert rec.tier == c.STORAGE_TIER_HOT
    assert _close_to(rec.archived_at.ToDatetime(UTC), _now())


# (clip name, extra metadata, container, codec, rate, channels, duration ms, tolerance ms)
FACTS = [
    ("wav", {}, "WAV", "PCM_16", 16000, 1, 3000, 0),
    ("ulaw", {}, "WAV", "ULAW", 8000, 1, 3000, 0),
    ("mp3", {}, "MP3", "MPEG_LAYER_III", 16000, 1, 3000, 150),  # encoder delay and padding
    ("flac", {}, "FLAC", "PCM_16", 16000, 1, 3000, 0),
    ("opus", {}, "OGG", "OPUS", 16000, 1, 3000, 30),
    ("stereo", {"channel_layout": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT}, "WAV", "PCM_16", 16000, 2, 3000, 0),
]


@pytest.mark.parametrize(
    ("clip", "extra", "container", "codec", "rate", "channels", "duration_ms", "tolerance"),
    FACTS,
    ids=[f[0] for f in FACTS],
)
def test_audio_facts_are_read_from_the_audio(
    ingest, clips, archive, minio_client, clip, extra, container, codec, rate, channels, duration_ms, tolerance
):
    data = clips.files[clip]
    # globex: these fixed clips are uploaded once per tenant in this module, so the ack is not a duplicate
    # (other modules use acme for them); a duplicate would still report the same facts.
    ack = ingest.upload("globex", data, **extra)

    a = ack.audio
    assert (a.container, a.codec, a.sample_rate_hz, a.channels) == (container, codec, rate, channels)
    assert abs(a.duration_ms - duration_ms) <= tolerance, a.duration_ms
    assert a.size_bytes == len(data)
    assert ack.sha256 == hashlib.sha256(data).hexdigest()
    stat = minio_client.stat_object(archive.bucket, ack.object.key, version_id=ack.object.version_id)
    assert stat.metadata.get("x-amz-meta-sha256") == ack.sha256
    assert hashlib.sha256(archive.read(ack.object.key, ack.object.version_id)).hexdigest() == ack.sha256
    expected_layout = extra.get("channel_layout", c.CHANNEL_LAYOUT_MONO)
    assert ingest.get("globex", ack.recording_id).metadata.channel_layout == expected_layout


def test_small_chunks_and_one_big_chunk_give_the_same_fingerprint(ingest, new_wav, upload, make_metadata):
    data = new_wav(seconds_of_noise=60)  # ~2 MiB
    sha = hashlib.sha256(data).hexdigest()

    small = upload(ingest.stub, ingest.tokens["acme"], make_metadata(), data, chunk=7_777)
    big = upload(ingest.stub, ingest.tokens["globex"], make_metadata(), data, chunk=4 * 1024 * 1024)

    assert small.sha256 == big.sha256 == sha
    assert small.audio.size_bytes == big.audio.size_bytes == len(data)


# --------------------------------------------------------------------------- lock and legal hold


def test_compliance_lock_holds_for_the_tenants_retention(ingest, new_wav, archive, minio_client):
    before = _now()
    ack = ingest.upload("acme", new_wav())

    retention = minio_client.get_object_retention(archive.bucket, ack.object.key, ack.object.version_id)
    assert retention.mode == COMPLIANCE
    assert _close_to(retention.retain_until_date, before + 1825 * DAY)
    globex = ingest.upload("globex", new_wav())
    retention = minio_client.get_object_retention(archive.bucket, globex.object.key, globex.object.version_id)
    assert retention.mode == COMPLIANCE
    assert _close_to(retention.retain_until_date, before + 30 * DAY)


def test_governance_tenant_gets_a_one_day_governance_lock(ingest, new_wav, archive, minio_client):
    before = _now()
    ack = ingest.upload("govco", new_wav())

    assert ack.lock.mode == c.LOCK_MODE_GOVERNANCE
    retention = minio_client.get_object_retention(archive.bucket, ack.object.key, ack.object.version_id)
    assert retention.mode == GOVERNANCE
    assert _close_to(retention.retain_until_date, before + DAY)
    assert _close_to(ack.lock.retain_until.ToDatetime(UTC), before + DAY)
    # Governance still refuses a plain delete (no bypass header).
    with pytest.raises(S3Error):
        minio_client.remove_object(archive.bucket, ack.object.key, version_id=ack.object.version_id)
    assert archive.read(ack.object.key, ack.object.version_id)


def test_locked_version_cannot_be_deleted_or_its_retention_shortened(ingest, new_wav, archive, minio_client):
    data = new_wav()
    ack = ingest.upload("acme", data)
    key, version = ack.object.key, ack.object.version_id

    with pytest.raises(S3Error):
        minio_client.remove_object(archive.bucket, key, version_id=version)
    shorter = Retention(COMPLIANCE, _now() + DAY)
    with pytest.raises(S3Error):
        minio_client.set_object_retention(archive.bucket, key, shorter, version_id=version)
    with pytest.raises(S3Error):
        minio_client.set_object_retention(archive.bucket, key, Retention(GOVERNANCE, _now() + DAY), version_id=version)

    # Still there, unchanged, still locked as before.
    assert hashlib.sha256(archive.read(key, version)).hexdigest() == ack.sha256
    retention = minio_client.get_object_retention(archive.bucket, key, version)
    assert retention.mode == COMPLIANCE
    assert _close_to(retention.retain_until_date, _now() + 1825 * DAY)


def _legal_hold(client, bucket: str, key: str, version: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(client.is_object_legal_hold_enabled(bucket, key, version))
    except S3Error as exc:
        if exc.code == "NoSuchObjectLegalHold":  # SeaweedFS: never set is "no configuration", i.e. off
            return False
        raise


def test_legal_hold_on_and_off_is_on_the_object_and_in_get_recording(ingest, new_wav, archive, minio_client):
    ack = ingest.upload("acme", new_wav())
    key, version = ack.object.key, ack.object.version_id
    auth = ingest.auth("acme")
    assert _legal_hold(minio_client, archive.bucket, key, version) is False

    held = ingest.stub.SetLegalHold(
        pb.SetLegalHoldRequest(recording_id=ack.recording_id, legal_hold=True), metadata=auth, timeout=30
    )
    assert held.recording_id == ack.recording_id
    assert held.lock.legal_hold is True
    assert held.lock.mode == c.LOCK_MODE_COMPLIANCE
    assert _legal_hold(minio_client, archive.bucket, key, version) is True
    rec = ingest.get("acme", ack.recording_id)
    assert rec.lock.legal_hold is True
    assert rec.lock.mode == c.LOCK_MODE_COMPLIANCE
    assert rec.lock.retain_until == ack.lock.retain_until

    released = ingest.stub.SetLegalHold(
        pb.SetLegalHoldRequest(tenant="acme", recording_id=ack.recording_id, legal_hold=False),
        metadata=auth,
        timeout=30,
    )
    assert released.lock.legal_hold is False
    assert _legal_hold(minio_client, archive.bucket, key, version) is False
    assert ingest.get("acme", ack.recording_id).lock.legal_hold is False
    # The retention lock is untouched by the hold.
    assert minio_client.get_object_retention(archive.bucket, key, version).mode == COMPLIANCE


def test_legal_hold_on_unknown_recording_is_not_found(ingest):
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.SetLegalHold(
            pb.SetLegalHoldRequest(recording_id="0" * 32, legal_hold=True), metadata=ingest.auth("acme"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not found" in err.value.details()


# --------------------------------------------------------------------------- duplicates


def test_same_bytes_same_tenant_is_a_duplicate_with_one_version(ingest, new_wav, archive):
    data = new_wav()
    first = ingest.upload("acme", data, call_id="dup-1")
    versions_before = archive.versions(f"recordings/acme/{first.recording_id}/")

    again = ingest.upload("acme", data, call_id="dup-2")

    assert again.recording_id == first.recording_id
    assert again.duplicate is True
    assert again.sha256 == first.sha256
    assert again.object == first.object
    assert archive.versions(f"recordings/acme/{first.recording_id}/") == versions_before
    audio_versions = [v for key, v in versions_before if key == first.object.key]
    assert audio_versions == [first.object.version_id]
    # The first upload's metadata stays the record.
    assert ingest.get("acme", first.recording_id).metadata.call_id == "dup-1"


def test_same_bytes_other_tenant_is_a_separate_recording(ingest, new_wav, archive):
    data = new_wav()
    mine = ingest.upload("acme", data)

    theirs = ingest.upload("globex", data)

    assert theirs.duplicate is False
    assert theirs.recording_id != mine.recording_id
    assert theirs.sha256 == mine.sha256
    assert theirs.object.key == f"recordings/globex/{theirs.recording_id}/audio"
    # A small recording is one object: its record rides in the audio's metadata.
    assert {k for k, _ in archive.versions(f"recordings/globex/{theirs.recording_id}/")} == {theirs.object.key}


def test_concurrent_uploads_of_the_same_bytes_store_one_version(ingest, new_wav, archive):
    data = new_wav(seconds_of_noise=20)
    with ThreadPoolExecutor(4) as pool:
        acks = list(pool.map(lambda _: ingest.upload("acme", data), range(4)))

    assert len({a.recording_id for a in acks}) == 1
    assert sorted(a.duplicate for a in acks) == [False, True, True, True]
    audio = [v for key, v in archive.versions(f"recordings/acme/{acks[0].recording_id}/") if key.endswith("/audio")]
    assert audio == [acks[0].object.version_id]


def _send_together(instances, messages: list) -> list:  # type: ignore[no-untyped-def]
    """The same upload messages to each instance at the same moment; the acks in instance order."""
    barrier = threading.Barrier(len(instances))

    def send(instance):  # type: ignore[no-untyped-def]
        barrier.wait()
        return instance.stub.UploadRecording(iter(messages), metadata=instance.auth("acme"), timeout=60)

    with ThreadPoolExecutor(len(instances)) as pool:
        return list(pool.map(send, instances))


def test_two_replicas_given_the_same_bytes_at_once_store_one_version(
    start_ingest, ingest, new_wav, archive, make_requests, make_metadata
):
    """Each replica has its own in-process lock; only S3's conditional PUT (If-None-Match) keeps a
    second locked version out. Both replicas are sent the same bytes at the same moment, declared
    and undeclared, several times over."""
    replica = start_ingest("replica-b")
    for declare in (True, False, True, False):
        data = new_wav()
        acks = _send_together((ingest, replica), list(make_requests(make_metadata(), data, declare=declare)))

        assert len({a.recording_id for a in acks}) == 1
        assert sorted(a.duplicate for a in acks) == [False, True]
        prefix = f"recordings/acme/{acks[0].recording_id}/"
        audio = [v for key, v in archive.versions(prefix) if key.endswith("/audio")]
        assert audio == [acks[0].object.version_id], f"declare={declare}: {audio}"
        assert acks[1].object == acks[0].object


# --------------------------------------------------------------------------- job queue


@pytest.fixture(scope="module")
def session_redis(redis_server):  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def _jobs_for(client: redis.Redis, rec_id: str) -> list[dict[str, str]]:
    return [fields for _, fields in client.xrange(JOB_STREAM) if fields.get("recording_id") == rec_id]


def test_upload_enqueues_its_job_exactly_once(ingest, new_wav, session_redis):
    data = new_wav()
    ack = ingest.upload("acme", data)

    jobs = _jobs_for(session_redis, ack.recording_id)
    assert jobs == [
        {
            "recording_id": ack.recording_id,
            "tenant": "acme",
            "bucket": ack.object.bucket,
            "key": ack.object.key,
            "version_id": ack.object.version_id,
            "sha256": ack.sha256,
        }
    ]
    rec = ingest.get("acme", ack.recording_id)
    assert rec.state == c.PIPELINE_STATE_QUEUED

    dup = ingest.upload("acme", data)
    assert dup.duplicate is True
    assert dup.enqueued is True
    assert len(_jobs_for(session_redis, ack.recording_id)) == 1
    assert ingest.get("acme", ack.recording_id).state == c.PIPELINE_STATE_QUEUED


# --------------------------------------------------------------------------- listing


def _list_all(ingest, tenant: str, page_size: int, **kw) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    ids: list[str] = []
    pages = 0
    token = ""
    while True:
        page = ingest.stub.ListRecordings(
            pb.ListRecordingsRequest(page_size=page_size, page_token=token, **kw),
            metadata=ingest.auth(tenant),
            timeout=30,
        )
        pages += 1
        assert len(page.recordings) <= (page_size or 100)
        assert all(r.tenant == tenant for r in page.recordings)
        ids += [r.recording_id for r in page.recordings]
        token = page.next_page_token
        if not token:
            return ids, pages
        assert pages < 1000, "paging does not end"


def test_list_pages_cover_every_recording_once_and_only_the_tenants(ingest, new_wav):
    mine = {ingest.upload("govco", new_wav()).recording_id for _ in range(5)}
    other = ingest.upload("acme", new_wav()).recording_id

    ids, pages = _list_all(ingest, "govco", page_size=2)

    assert len(ids) == len(set(ids)), "a recording was listed twice"
    assert mine <= set(ids)
    assert other not in ids
    assert pages >= 3
    assert ids == sorted(ids)  # id order: stable paging
    everything, _ = _list_all(ingest, "govco", page_size=0)
    assert everything == ids


def test_list_filters_by_archive_time(ingest, new_wav):
    old = ingest.upload("govco", new_wav()).recording_id
    old_at = ingest.get("govco", old).archived_at.ToDatetime(UTC)
    # Archive times have 1 s resolution: start the new batch in a later whole second than `old`.
    boundary = old_at.replace(microsecond=0) + timedelta(seconds=1)
    while _now() < boundary:
        time.sleep(0.02)
    new = {ingest.upload("govco", new_wav()).recording_id for _ in range(3)}

    since, _ = _list_all(ingest, "govco", page_size=100, archived_from=_ts(boundary))
    until, _ = _list_all(ingest, "govco", page_size=100, archived_to=_ts(boundary))
    window, _ = _list_all(
        ingest, "govco", page_size=100, archived_from=_ts(boundary), archived_to=_ts(_now() + timedelta(minutes=1))
    )

    assert new <= set(since)
    assert old not in since
    assert old in until
    assert not new & set(until)
    assert set(window) == set(since)


@pytest.mark.parametrize("page_size", [1001, 5000])
def test_list_page_size_over_1000_is_invalid(ingest, page_size):
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.ListRecordings(
            pb.ListRecordingsRequest(page_size=page_size), metadata=ingest.auth("acme"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in err.value.details()


def test_list_with_empty_time_range_is_invalid(ingest):
    at = _ts(_now())
    with pytest.raises(grpc.RpcError) as err:
        ingest.stub.ListRecordings(
            pb.ListRecordingsRequest(archived_from=at, archived_to=at), metadata=ingest.auth("acme"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "archived_from" in err.value.details()


def test_streamed_upload_with_declared_sha256_is_archived_and_deduplicated(
    ingest, archive, minio_client, new_wav, make_metadata, make_requests
):
    data = new_wav(seconds_of_noise=200)  # ~6.4 MiB: two 5 MiB parts on the test instance
    ack = ingest.stub.UploadRecording(
        make_requests(make_metadata(), data, 256 * 1024, declare=True), metadata=ingest.auth("acme"), timeout=60
    )
    assert ack.sha256 == hashlib.sha256(data).hexdigest() and not ack.duplicate
    stored = archive.read(ack.object.key, ack.object.version_id)
    assert hashlib.sha256(stored).hexdigest() == ack.sha256
    stat = minio_client.stat_object(ack.object.bucket, ack.object.key, version_id=ack.object.version_id)
    assert stat.metadata["x-amz-meta-sha256"] == ack.sha256
    retention = minio_client.get_object_retention(ack.object.bucket, ack.object.key, ack.object.version_id)
    assert retention.mode == "COMPLIANCE"
    again = ingest.stub.UploadRecording(
        make_requests(make_metadata(), data, 256 * 1024, declare=True), metadata=ingest.auth("acme"), timeout=60
    )
    assert again.duplicate and again.recording_id == ack.recording_id
    versions = [v for v in archive.versions() if v[0] == ack.object.key]
    assert len(versions) == 1
    assert archive.multipart_uploads() == []


def test_uploads_work_through_the_smallest_flow_control_window(start_ingest, new_wav, archive):
    """INGEST_STREAM_WINDOW_KB=64: gRPC may hold only 64 KiB ahead of the upload; a recording of
    several MiB in 1 MiB chunks still arrives whole."""
    small = start_ingest("window-64k", stream_window_kb="64")
    data = new_wav(seconds_of_noise=120)  # ~3.8 MiB at 16 kHz
    ack = small.upload("acme", data, chunk=1024 * 1024)
    assert ack.duplicate is False
    assert ack.audio.size_bytes == len(data)
    assert hashlib.sha256(archive.read(ack.object.key, ack.object.version_id)).hexdigest() == ack.sha256


# --------------------------------------------------------------------------- the spool disk (issue 19)


def _plaintext_on(disk: bytes, plain: bytes) -> list[str]:
    """The WAV markers, and every 32-byte block of `plain` starting at a multiple of 32 (any 64-byte run of
    `plain` holds one), found anywhere in `disk`."""
    found = [marker.decode() for marker in (b"RIFF", b"WAVE", b"fmt ", b"data") if marker in disk]
    blocks = {plain[at : at + 32] for at in range(0, len(plain) - 31, 32)}
    found += [f"a 32-byte run at {at}" for at in range(len(disk) - 31) if disk[at : at + 32] in blocks]
    return found


def test_a_spilled_upload_is_sealed_on_the_spool_disk(start_ingest, new_wav, archive, make_metadata, poll):
    """Held at half way, a large upload's spool file holds neither the WAV header nor any 64-byte run of the
    audio received so far (it is sealed: `callscribe.audio.sealed`); the upload then completes, is stored
    as sent, and the spool file is gone."""
    inst = start_ingest("sealed-spool", memory_upload_mb="0")
    data = new_wav(seconds_of_noise=120)  # ~3.8 MiB
    half = len(data) // 2
    assert len(_plaintext_on(data[:half], data[:half])) > half // 64  # the check finds plaintext where it is
    release = threading.Event()

    def messages():  # type: ignore[no-untyped-def]
        yield pb.UploadRecordingRequest(metadata=make_metadata(call_id="sealed-spool"))
        for at in range(0, half, 256 * 1024):
            yield pb.UploadRecordingRequest(chunk=data[at : min(at + 256 * 1024, half)])
        release.wait(30)
        for at in range(half, len(data), 256 * 1024):
            yield pb.UploadRecordingRequest(chunk=data[at : at + 256 * 1024])

    future = inst.stub.UploadRecording.future(messages(), metadata=inst.auth("acme"), timeout=60)
    try:
        # All of the first half but the last 64 KiB chunk, which is sealed once the next bytes arrive.
        spooled = poll(
            lambda: [p for p in inst.spool_dir.glob("*.upload") if p.stat().st_size >= half - 64 * 1024],
            30,
            "the first half to be spooled",
        )
        assert len(spooled) == 1
        on_disk = spooled[0].read_bytes()
    finally:
        release.set()
    ack = future.result(timeout=60)
    assert _plaintext_on(on_disk, data[:half]) == []
    assert ack.sha256 == hashlib.sha256(data).hexdigest()
    assert archive.read(ack.object.key, ack.object.version_id) == data
    poll(lambda: not list(inst.spool_dir.glob("*.upload")), 10, "the spool file to be removed")
