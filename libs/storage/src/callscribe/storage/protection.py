"""Encryption at rest as every service that writes or reads recordings configures it (issue 19).

Mixed into a service's settings, so its env prefix applies (INGEST_KEK_FILE, VAD_KEK_FILE, ASR_KEK_FILE, ...).
No KEK set: recordings are stored as they came (and every reader still reads encrypted ones it can open:
none). A KEK set: every new recording is encrypted with a data key of its own, wrapped by that KEK, kept in
the keys bucket (`recordkeys`).

A stored object says how it is stored: `x-amz-meta-encryption` names the scheme and `x-amz-meta-key-id` the
recording's data key (metadata fixed when the object is written, so a reader picks the codec from the GET's
answer: `codec_chooser`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote

from pydantic import BaseModel, Field, model_validator

from callscribe.kit.errors import FailedPrecondition
from callscribe.storage import crypto
from callscribe.storage.keys import FileKek, KeyWrapper, TransitKek
from callscribe.storage.minio_ext import S3Client
from callscribe.storage.recordkeys import RecordingKeys
from callscribe.storage.transform import PLAIN, BodyCodec

ENCRYPTION_META = "x-amz-meta-encryption"
KEY_ID_META = "x-amz-meta-key-id"
DEFAULT_KEYS_BUCKET = "callscribe-keys"


class EncryptionSettings(BaseModel):
    kek_file: Path | None = Field(
        None,
        description="KEK keyring file (JSON, mode 0600; a mounted Kubernetes Secret): set, new recordings are "
        "encrypted at rest; make one with `python -m callscribe.ingest keys init --kek-file PATH`",
    )
    kek_transit_url: str | None = Field(
        None, description="OpenBao / Vault address whose Transit engine holds the KEK (instead of kek_file)"
    )
    kek_transit_token_file: Path | None = Field(None, description="file holding the OpenBao / Vault token")
    kek_transit_key: str = Field("callscribe", description="name of the Transit key (created derived if missing)")
    kek_transit_mount: str = Field("transit", description="mount point of the Transit engine")
    keys_bucket: str = Field(
        DEFAULT_KEYS_BUCKET,
        description="bucket (hot tier's S3) of the wrapped data keys: no versioning, no Object Lock",
    )

    @model_validator(mode="after")
    def _one_kek(self) -> EncryptionSettings:
        if self.kek_file and self.kek_transit_url:
            raise ValueError("set kek_file or kek_transit_url, not both")
        if self.kek_transit_url and not self.kek_transit_token_file:
            raise ValueError("kek_transit_url needs kek_transit_token_file (the token's file)")
        return self

    @property
    def encryption_on(self) -> bool:
        return bool(self.kek_file or self.kek_transit_url)

    def kek(self) -> KeyWrapper | None:
        if self.kek_file is not None:
            return FileKek(self.kek_file)
        if self.kek_transit_url:
            import hvac  # only deployments with a Transit KEK need it

            assert self.kek_transit_token_file is not None  # checked above
            token = self.kek_transit_token_file.read_text(encoding="utf-8").strip()
            transit = TransitKek(hvac.Client(url=self.kek_transit_url, token=token), self.kek_transit_key,
                                 self.kek_transit_mount)  # fmt: skip
            transit.ensure_key()
            return transit
        return None

    def recording_keys(self, client: S3Client) -> RecordingKeys | None:
        """The key store on the hot tier's S3 `client`; None without a KEK."""
        kek = self.kek()
        return None if kek is None else RecordingKeys(client, self.keys_bucket, kek)


def codec_chooser(keys: RecordingKeys | None, service: str) -> Callable[[Mapping[str, str]], BodyCodec]:
    """For `read_verified(codec_for=...)`: the codec an object's headers call for (its data key opened for this
    read only). An encrypted object and no KEK here is FailedPrecondition naming the setting."""

    def choose(headers: Mapping[str, str]) -> BodyCodec:
        scheme = headers.get(ENCRYPTION_META, "")
        if not scheme:
            return PLAIN
        if scheme != crypto.NAME:
            raise FailedPrecondition(f"the recording is stored with encryption {scheme!r}, unknown to this {service}")
        if keys is None:
            raise FailedPrecondition(
                f"the recording is encrypted at rest and this {service} has no KEK: set {service.upper()}_KEK_FILE "
                f"or {service.upper()}_KEK_TRANSIT_URL as for the ingest"
            )
        tenant = unquote(headers.get("x-amz-meta-tenant", ""))
        rec_id = headers.get("x-amz-meta-recording-id", "")
        return keys.open(tenant, rec_id, headers.get(KEY_ID_META, "")).codec

    return choose
