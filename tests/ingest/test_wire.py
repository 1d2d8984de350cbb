"""UploadRecording's requests on the wire: the chunk-only fast path against protobuf, both ways."""

from __future__ import annotations

import os

import pytest
from google.protobuf.message import DecodeError

from callscribe.cli.uploads import chunk_message
from callscribe.ingest.upload.wire import read_upload_message
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

# Sizes around every varint length boundary of the chunk's length prefix.
SIZES = [0, 1, 127, 128, 129, 16383, 16384, 65535, 1024 * 1024, 2_097_151, 2_097_152, 4 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
def test_the_client_builds_exactly_what_protobuf_serializes(size: int) -> None:
    chunk = os.urandom(size)
    assert chunk_message(chunk) == pb.UploadRecordingRequest(chunk=chunk).SerializeToString()
    assert chunk_message(memoryview(chunk)) == pb.UploadRecordingRequest(chunk=chunk).SerializeToString()


@pytest.mark.parametrize("size", SIZES)
def test_a_chunk_only_message_is_read_as_a_view_of_its_bytes(size: int) -> None:
    chunk = os.urandom(size)
    data = pb.UploadRecordingRequest(chunk=chunk).SerializeToString()
    read = read_upload_message(data)
    assert isinstance(read, memoryview)
    assert read.tobytes() == chunk == pb.UploadRecordingRequest.FromString(data).chunk
    assert read.obj is data, "a view into the received buffer, not a copy"


def test_the_metadata_message_is_parsed_by_protobuf() -> None:
    message = pb.UploadRecordingRequest(
        metadata=c.RecordingMetadata(tenant="acme", call_id="c-1", agent_id="a-7"), sha256="ab" * 32, size_bytes=9
    )
    read = read_upload_message(message.SerializeToString())
    assert isinstance(read, pb.UploadRecordingRequest)
    assert read == message


@pytest.mark.parametrize(
    "message",
    [
        pb.UploadRecordingRequest(chunk=b"audio", sha256="ab" * 32),  # a chunk with another field after it
        pb.UploadRecordingRequest(chunk=b"audio", size_bytes=5),
    ],
)
def test_a_chunk_beside_other_fields_goes_to_protobuf(message: pb.UploadRecordingRequest) -> None:
    read = read_upload_message(message.SerializeToString())
    assert isinstance(read, pb.UploadRecordingRequest)
    assert read == message


def test_unknown_fields_and_repeated_chunks_mean_what_protobuf_says() -> None:
    unknown = pb.UploadRecordingRequest(chunk=b"audio").SerializeToString() + b"\x78\x01"  # field 15 varint
    read = read_upload_message(unknown)
    assert isinstance(read, pb.UploadRecordingRequest) and read.chunk == b"audio"
    twice = chunk_message(b"first") + chunk_message(b"second")  # protobuf: the last one wins
    read = read_upload_message(twice)
    assert isinstance(read, pb.UploadRecordingRequest) and read.chunk == b"second"


@pytest.mark.parametrize(
    "data",
    [
        b"\x12\x05abc",  # length says 5, 3 bytes follow
        b"\x12\xff\xff",  # the length varint is cut
        b"\x12" + b"\xff" * 11 + b"\x01",  # a varint longer than 10 bytes
    ],
)
def test_malformed_messages_are_refused_as_protobuf_refuses_them(data: bytes) -> None:
    with pytest.raises(DecodeError):
        pb.UploadRecordingRequest.FromString(data)
    with pytest.raises(DecodeError):
        read_upload_message(data)
