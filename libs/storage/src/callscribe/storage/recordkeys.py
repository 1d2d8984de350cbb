"""Each recording's data key, wrapped by the KEK, kept where destroying it is final (issue 19, step 3).

Envelope encryption: a recording's audio and its record are encrypted with a data key of their own (a Tink
streaming-AEAD keyset, `crypto`); the data key is stored only wrapped by a key-encryption key (`keys`: a key
file or OpenBao/Vault Transit), and only here: in a **keys bucket** on the hot tier's S3 that has neither
versioning nor Object Lock. The audio is locked for years; the key is not. Erasure (GDPR Art. 17 / PIPL)
deletes the wrapped key, and the locked ciphertext is noise from then on: crypto-shredding.

Why a bucket without versioning: a versioned bucket keeps every overwritten or deleted object as an older
version, so a "destroyed" key would still be there. `check()` refuses a keys bucket whose versioning was ever
enabled (Suspended keeps the old versions too) or that has Object Lock. Nothing else the project writes holds
a data key: services unwrap one per read and keep it only for that read (no cache), spool files use keys of
their own that never leave the process, and KEK rotation rewrites the wrapped keys in place (the bucket keeps
no older copy).

Layout of the keys bucket:
- `keys/<tenant>/<recording id>/<key id>.json`: one wrapped data key (`{"kek", "version", "ciphertext"}` plus
  when it was made). A recording has one key; an upload that found its recording already archived removes the
  key it made. The wrap is bound to `<tenant>/<recording id>/<key id>` (the KEK's associated data, or the
  Transit key's derivation context), so a wrapped key copied to another name does not open.
- `customers/<tenant>/<sha256 of the customer id>/<recording id>`: an empty marker per recording that names a
  customer, so `EraseCustomer` finds every recording of one customer without reading any record. Deleted with
  the key.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import tink
from minio.error import S3Error
from tink import secret_key_access

from callscribe.kit.errors import FailedPrecondition, NotFound
from callscribe.storage.bucket import LockedBucket
from callscribe.storage.crypto import StreamingAeadCodec, new_data_key
from callscribe.storage.errors import ObjectMissing, s3_errors
from callscribe.storage.keys import KeyWrapper, WrappedKey
from callscribe.storage.minio_ext import S3Client

log = logging.getLogger(__name__)

KEYS_PREFIX = "keys/"
CUSTOMERS_PREFIX = "customers/"


class KeyDestroyed(FailedPrecondition):
    """The recording's data key is gone (erased): its audio and record can never be read again."""


@dataclass(frozen=True)
class DataKey:
    key_id: str
    codec: StreamingAeadCodec  # encrypts and decrypts this recording's objects


def associated_data(tenant: str, rec_id: str) -> bytes:
    """What a recording's ciphertexts are bound to: its identity, not its S3 key (a copy moved to the cold tier
    keeps the same bytes and still decrypts; a ciphertext of another recording does not)."""
    return f"callscribe/recording/{tenant}/{rec_id}".encode()


def customer_digest(tenant: str, customer_id: str) -> str:
    return hashlib.sha256(f"{tenant}\0{customer_id}".encode()).hexdigest()


class RecordingKeys:
    """Creates, opens and destroys recordings' data keys in the keys bucket."""

    def __init__(self, client: S3Client, bucket: str, kek: KeyWrapper) -> None:
        self._client = client
        self.bucket = bucket
        self.kek = kek
        # Its reads, listings and only-if-absent writes are the archive's (no lock is set by any of them).
        self._bucket = LockedBucket(client, bucket)

    # -- the bucket ----------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a keys bucket that is missing, versioned (ever) or locked: erasure would not be final."""
        with s3_errors(f"S3 check of the keys bucket {self.bucket} failed"):
            if not self._client.bucket_exists(self.bucket):
                raise FailedPrecondition(
                    f"keys bucket {self.bucket} does not exist: create it WITHOUT versioning and WITHOUT Object Lock"
                )
            status = self._client.get_bucket_versioning(self.bucket).status
        if status in ("Enabled", "Suspended"):
            raise FailedPrecondition(
                f"keys bucket {self.bucket} has versioning {status}: an erased data key would survive as an older "
                "version. Use a bucket on which versioning was never enabled"
            )
        try:
            self._client.get_object_lock_config(self.bucket)
        except S3Error as exc:
            if exc.code in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"):
                return
            raise FailedPrecondition(f"cannot read the keys bucket's Object Lock state: {exc.code}") from exc
        raise FailedPrecondition(f"keys bucket {self.bucket} has Object Lock: its keys could never be destroyed")

    # -- keys ------------------------------------------------------------------------------------------
    def create(self, tenant: str, rec_id: str, customer_id: str = "") -> DataKey:
        """A new data key for a recording being archived, stored wrapped before any of its ciphertext exists."""
        key_id = secrets.token_hex(8)
        handle = new_data_key()
        plain = tink.proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        wrapped = self.kek.wrap(plain, _context(tenant, rec_id, key_id))
        doc = {"wrapped": json.loads(wrapped.to_json()), "created": datetime.now(UTC).isoformat()}
        self._put_new(_key_name(tenant, rec_id, key_id), json.dumps(doc).encode())
        if customer_id:
            self._put(f"{CUSTOMERS_PREFIX}{tenant}/{customer_digest(tenant, customer_id)}/{rec_id}", b"")
        return DataKey(key_id, StreamingAeadCodec(handle, associated_data(tenant, rec_id)))

    def open(self, tenant: str, rec_id: str, key_id: str) -> DataKey:
        """The recording's data key, unwrapped for this use only. KeyDestroyed when it was erased; the KEK's
        KeyUnwrapError when this KEK cannot open it."""
        name = _key_name(tenant, rec_id, key_id)
        raw = self._get(name)
        if raw is None:
            raise KeyDestroyed(
                f"recording {rec_id}: its data key {key_id} is gone (the recording was erased); its audio and "
                "record cannot be decrypted by anyone"
            )
        wrapped = WrappedKey.from_json(json.dumps(json.loads(raw)["wrapped"]))
        plain = self.kek.unwrap(wrapped, _context(tenant, rec_id, key_id))
        handle = tink.proto_keyset_format.parse(plain, secret_key_access.TOKEN)
        return DataKey(key_id, StreamingAeadCodec(handle, associated_data(tenant, rec_id)))

    def discard(self, tenant: str, rec_id: str, key_id: str) -> None:
        """Remove a key that never encrypted anything kept (its upload found the recording archived already)."""
        self._delete(_key_name(tenant, rec_id, key_id))

    def destroy(self, tenant: str, rec_id: str) -> list[str]:
        """Erasure: delete every data key of the recording and its customer markers, then prove they are gone
        (no object and no version left under its names). Returns the key ids destroyed."""
        prefix = f"{KEYS_PREFIX}{tenant}/{rec_id}/"
        names = list(self._names(prefix))
        for name in names:
            self._delete(name)
        for marker in self._customer_markers(tenant, rec_id):
            self._delete(marker)
        left = self.remaining(tenant, rec_id)
        if left:
            raise FailedPrecondition(f"recording {rec_id}: data keys still stored after deletion: {left}")
        return [name.rsplit("/", 1)[1].removesuffix(".json") for name in names]

    def remaining(self, tenant: str, rec_id: str) -> list[str]:
        """Every object or version under the recording's key names (empty once destroyed)."""
        versions = self._bucket.versions(f"{KEYS_PREFIX}{tenant}/{rec_id}/")
        return [f"{v.key} {v.version_id}".strip() for v in versions]

    def has_key(self, tenant: str, rec_id: str) -> bool:
        return any(True for _ in self._names(f"{KEYS_PREFIX}{tenant}/{rec_id}/"))

    def recordings_of_customer(self, tenant: str, customer_id: str) -> list[str]:
        prefix = f"{CUSTOMERS_PREFIX}{tenant}/{customer_digest(tenant, customer_id)}/"
        return [name[len(prefix) :] for name in self._names(prefix)]

    def rewrap_all(self) -> tuple[int, int]:
        """After a KEK rotation: every wrapped key re-wrapped with the primary KEK version, in place (the bucket
        keeps no older copy). The locked audio is not touched: its data key does not change. (rewrapped, total)"""
        done = total = 0
        for name in self._names(KEYS_PREFIX):
            total += 1
            tenant, rec_id, file = name[len(KEYS_PREFIX) :].split("/")
            key_id = file.removesuffix(".json")
            raw = self._get(name)
            if raw is None:
                continue  # erased meanwhile
            doc = json.loads(raw)
            wrapped = WrappedKey.from_json(json.dumps(doc["wrapped"]))
            again = self.kek.rewrap(wrapped, _context(tenant, rec_id, key_id))
            if again.version != wrapped.version or again.kek != wrapped.kek:  # Transit re-encrypts either way
                doc["wrapped"] = json.loads(again.to_json())
                self._put(name, json.dumps(doc).encode())
                done += 1
        return done, total

    # -- S3 ------------------------------------------------------------------------------------------
    def _customer_markers(self, tenant: str, rec_id: str) -> Iterator[str]:
        for name in self._names(f"{CUSTOMERS_PREFIX}{tenant}/"):
            if name.rsplit("/", 1)[1] == rec_id:
                yield name

    def _names(self, prefix: str) -> Iterator[str]:
        return (listed.key for listed in self._bucket.list(prefix))

    def _get(self, name: str) -> bytes | None:
        try:
            return self._bucket.read_bytes(name)
        except ObjectMissing:
            return None

    def _put(self, name: str, data: bytes) -> None:
        with s3_errors(f"S3 write of {name} to the keys bucket failed"):
            self._client.put_object(self.bucket, name, io.BytesIO(data), len(data), content_type="application/json")

    def _put_new(self, name: str, data: bytes) -> None:
        self._bucket.put_if_absent(name, data, {"Content-Type": "application/json"})  # ObjectExists if there

    def _delete(self, name: str) -> None:
        with s3_errors(f"S3 delete of {name} from the keys bucket failed"):
            self._client.remove_object(self.bucket, name)


def _key_name(tenant: str, rec_id: str, key_id: str) -> str:
    if not key_id or "/" in key_id:
        raise NotFound(f"recording {rec_id}: no data key named {key_id!r}")
    return f"{KEYS_PREFIX}{tenant}/{rec_id}/{key_id}.json"


def _context(tenant: str, rec_id: str, key_id: str) -> bytes:
    return f"{tenant}/{rec_id}/{key_id}".encode()
