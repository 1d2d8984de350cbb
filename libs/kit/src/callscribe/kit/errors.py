"""Domain errors shared by every service, and their one mapping to gRPC status codes.

Core code raises these; only the server kit turns them into gRPC statuses. Each message is
written for the person on the other end: what was wrong and what to do about it.
"""

from __future__ import annotations

import grpc


class DomainError(Exception):
    """Base class; `code` is the gRPC status the caller sees."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DataLoss(DomainError):
    """Stored bytes do not match their fingerprint: an alarm, never silently repaired."""

    code = grpc.StatusCode.DATA_LOSS


class Unavailable(DomainError):
    """A backing server (S3, Redis, Elasticsearch, a model) cannot be reached; retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class Cancelled(DomainError):
    code = grpc.StatusCode.CANCELLED
