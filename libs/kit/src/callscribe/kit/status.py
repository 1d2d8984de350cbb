"""The one mapping from domain error kinds to gRPC status codes, used at the edge (interceptors, clients)."""

from __future__ import annotations

import grpc

from callscribe.kit.errors import DomainError, ErrorKind

STATUS = {kind: grpc.StatusCode[kind.name] for kind in ErrorKind}  # the kinds are named after the codes


def status_of(error: DomainError) -> grpc.StatusCode:
    return STATUS[error.kind]
