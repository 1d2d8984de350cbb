"""Sending a file to IngestService.UploadRecording: the client half of the ingest data path.

The metadata message declares the file's SHA-256 and size, so the server writes to S3 while the
audio is still arriving. Audio chunks go as pre-serialized messages: a chunk-only
UploadRecordingRequest is, in protobuf's wire format, the chunk field's tag, the length as a
varint and the bytes, built here with one copy; protobuf would copy each chunk into a message and
again into its serialization. A file up to WHOLE_FILE_BYTES is read once (hashed, then sent from
memory); a larger one is read twice (hashed first), so memory stays bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeAlias

import grpc

from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb

CHUNK_BYTES = 1024 * 1024
WHOLE_FILE_BYTES = 64 * 1024 * 1024
# The chunk field's tag as protobuf writes it: an empty chunk is the tag and a zero length.
_CHUNK_TAG = pb.UploadRecordingRequest(chunk=b"").SerializeToString()[:-1]
_METHOD = pb.DESCRIPTOR.services_by_name["IngestService"].methods_by_name["UploadRecording"]

UploadMessage: TypeAlias = pb.UploadRecordingRequest | bytes
Upload = Callable[..., pb.UploadRecordingResponse]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def chunk_message(chunk: bytes | memoryview) -> bytes:
    """The wire bytes of UploadRecordingRequest(chunk=chunk), with one copy of the chunk."""
    return b"".join((_CHUNK_TAG, _varint(memoryview(chunk).nbytes), chunk))


def _serialize(message: UploadMessage) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def upload_method(channel: grpc.Channel) -> grpc.StreamUnaryMultiCallable:
    """UploadRecording on `channel`, taking protobuf messages or pre-serialized ones (bytes)."""
    return channel.stream_unary(
        f"/{_METHOD.containing_service.full_name}/{_METHOD.name}",
        request_serializer=_serialize,
        response_deserializer=pb.UploadRecordingResponse.FromString,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for block in _read_chunks(path):
        digest.update(block)
    return digest.hexdigest()


def upload_messages(
    meta: c.RecordingMetadata, path: Path, sent: Callable[[int], object] | None = None
) -> Iterator[UploadMessage]:
    """The metadata message (with the file's SHA-256 and size), then the file in CHUNK_BYTES chunks.

    `sent(n)` is told each chunk's size as it is handed to gRPC (a progress bar).
    """
    size = path.stat().st_size
    if size <= WHOLE_FILE_BYTES:
        data = path.read_bytes()
        yield pb.UploadRecordingRequest(metadata=meta, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
        view = memoryview(data)
        chunks: Iterator[bytes | memoryview] = (view[at : at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES))
    else:
        yield pb.UploadRecordingRequest(metadata=meta, sha256=file_sha256(path), size_bytes=size)
        chunks = _read_chunks(path)
    for chunk in chunks:
        if sent is not None:
            sent(len(chunk))
        yield chunk_message(chunk)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK_BYTES):
            yield chunk
