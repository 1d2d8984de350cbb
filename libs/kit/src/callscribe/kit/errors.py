"""Domain errors shared by every service: a kind and a message, no transport.

Core code raises these; only the server kit turns a kind into a gRPC status (`kit.status`), so a core
module imports no gRPC. Each message is written for the person on the other end: what was wrong and what
to do about it.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, in the caller's terms (named as the gRPC codes the kit maps them to)."""

    INVALID_ARGUMENT = enum.auto()
    RESOURCE_EXHAUSTED = enum.auto()
    NOT_FOUND = enum.auto()
    PERMISSION_DENIED = enum.auto()
    UNAUTHENTICATED = enum.auto()
    FAILED_PRECONDITION = enum.auto()
    DATA_LOSS = enum.auto()
    UNAVAILABLE = enum.auto()
    CANCELLED = enum.auto()
    DEADLINE_EXCEEDED = enum.auto()
    INTERNAL = enum.auto()


class DomainError(Exception):
    """Base class; `kind` says what the caller sees (the kit maps it to a gRPC status)."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    kind = ErrorKind.INVALID_ARGUMENT


class ResourceExhausted(DomainError):
    kind = ErrorKind.RESOURCE_EXHAUSTED


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class PermissionDenied(DomainError):
    kind = ErrorKind.PERMISSION_DENIED


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED


class FailedPrecondition(DomainError):
    kind = ErrorKind.FAILED_PRECONDITION


class DataLoss(DomainError):
    """Stored bytes do not match their fingerprint: an alarm, never silently repaired."""

    kind = ErrorKind.DATA_LOSS


class Unavailable(DomainError):
    """A backing server (S3, Redis, Elasticsearch, a model) cannot be reached; retry later."""

    kind = ErrorKind.UNAVAILABLE


class Cancelled(DomainError):
    kind = ErrorKind.CANCELLED


class DeadlineExceeded(DomainError):
    """The caller took too long (e.g. an upload that stopped sending); nothing was stored."""

    kind = ErrorKind.DEADLINE_EXCEEDED
