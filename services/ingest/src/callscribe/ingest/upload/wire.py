"""UploadRecording's request messages as they come off the wire, audio chunks without a copy.

An upload is ~1 MiB audio chunks. Parsed by protobuf, each chunk is copied out of the received
buffer into the message, and again into a new `bytes` each time `.chunk` is read. A message that
holds nothing but its chunk is, in protobuf's wire format, the chunk field's tag, the chunk's
length as a varint, then the bytes; for exactly that shape `read_upload_message` returns a
memoryview of the bytes inside the received buffer. Every other message (the metadata message, a
chunk with other fields or unknown fields beside it, anything malformed) goes to protobuf, so
what a message means never depends on which path read it.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

# What UploadRecording's requests are read as: a chunk-only message is a view of its audio bytes.
UploadMessage: TypeAlias = pb.UploadRecordingRequest | memoryview

# The chunk field's tag, as protobuf writes it: an empty chunk is the tag and a zero length.
CHUNK_TAG = pb.UploadRecordingRequest(chunk=b"").SerializeToString()[:-1]
_MAX_VARINT_BYTES = 10


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it), or None when the varint is cut or longer than 10 bytes."""
    value = shift = 0
    for i in range(pos, min(len(data), pos + _MAX_VARINT_BYTES)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    return None


def read_upload_message(data: bytes) -> UploadMessage:
    """A chunk-only message -> a view of its audio bytes in `data`; any other message -> protobuf's parse."""
    if data.startswith(CHUNK_TAG):
        length = _read_varint(data, len(CHUNK_TAG))
        if length is not None and length[1] + length[0] == len(data):
            return memoryview(data)[length[1] :]
    return pb.UploadRecordingRequest.FromString(data)


def add_ingest_service(servicer: Any, server: grpc.Server) -> None:
    """The generated registration of IngestService, with UploadRecording's requests read by
    `read_upload_message` instead of protobuf alone."""
    capture = _Registrations()
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, capture)
    upload = capture.handlers["UploadRecording"]
    capture.handlers["UploadRecording"] = grpc.stream_unary_rpc_method_handler(
        upload.stream_unary,
        request_deserializer=read_upload_message,
        response_serializer=upload.response_serializer,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, capture.handlers),))
    server.add_registered_method_handlers(capture.service, capture.handlers)


class _Registrations:
    """Stands in for the server while the generated code registers its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers come again, by name, below

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service = service
        self.handlers = dict(handlers)
