"""Typed storage errors. They are the kit's domain errors (the edge maps their kind to a status), so a
caller may catch the precise type or the general kind; no minio or urllib3 exception leaves this library."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import urllib3
from minio.error import S3Error

from callscribe.kit.errors import DataLoss, NotFound, Unavailable

# S3 error codes meaning "no such object (version)"; a wrong version id is InvalidArgument on some servers.
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"})


class StorageUnavailable(Unavailable):
    """S3 could not be reached, or refused or failed the request; `code` is S3's error code ("" when none
    came back: connection, timeout, TLS)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ObjectMissing(NotFound):
    """The object (version) is not there."""


class IntegrityError(DataLoss):
    """Stored bytes or metadata do not match their fingerprint or record: an alarm, never repaired."""


class ObjectLocked(Exception):
    """A delete S3 refused because the version's retention (or a legal hold) is still on."""


class ObjectExists(Exception):
    """A write sent only-if-absent (`If-None-Match: *`) found the key already there (S3 412)."""


# What S3 servers answer a delete of a locked version with (MinIO and AWS: AccessDenied; others name it).
LOCKED_CODES = frozenset({"AccessDenied", "ObjectLocked", "InvalidRequest"})


def is_missing(exc: S3Error) -> bool:
    return exc.code in MISSING_CODES or (exc.code == "InvalidArgument" and "version" in str(exc.message).lower())


@contextlib.contextmanager
def s3_errors(message: str) -> Iterator[None]:
    """Any S3 or connection failure in the block -> StorageUnavailable(`message`: <the failure>)."""
    try:
        yield
    except S3Error as exc:
        raise StorageUnavailable(f"{message}: {exc}", exc.code or "") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageUnavailable(f"{message}: {exc}") from exc
