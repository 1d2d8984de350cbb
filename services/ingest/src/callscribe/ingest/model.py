"""Plain data of the ingest domain; no client library, no protobuf."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from callscribe.kit.errors import InvalidArgument, ResourceExhausted
from callscribe.kit.limits import MAX_HOTWORD_CHARS, MAX_HOTWORDS
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.kit.text import unsafe_character

CHANNEL_LAYOUTS = ("MONO", "STEREO_AGENT_LEFT", "STEREO_AGENT_RIGHT")
LANGUAGES = ("auto", "zh", "en")
# Bounds of what an upload's metadata may hold (README "Limits"): everything here is stored under the
# recording's lock for years and returned by every read, so nothing is unbounded.
MAX_ID_CHARS = 256  # call_id, agent_id, customer_id
MAX_LABELS = 64
MAX_LABEL_KEY_CHARS = 64
MAX_LABEL_VALUE_CHARS = 512
MAX_FILENAME_CHARS = 255
MAX_METADATA_BYTES = 32 * 1024  # ids, labels, file name and hotwords together, UTF-8


@dataclass(frozen=True)
class AudioFacts:
    """container: WAV/MP3/FLAC/OGG (WAVEX and RF64 reported as WAV); codec: libsndfile subtype."""

    container: str
    codec: str
    sample_rate_hz: int
    channels: int
    frames: int
    duration_ms: int


@dataclass(frozen=True)
class StageAdvance:
    """How far a job is inside its current stage: ms of audio (VAD) or of speech (ASR)."""

    done_ms: int
    total_ms: int
    eta_s: float = 0.0  # 0: not known yet
    chunks_done: int = 0
    chunks_total: int = 0

    def fields(self) -> dict[str, str]:
        return {
            "p_done_ms": str(self.done_ms),
            "p_total_ms": str(self.total_ms),
            "p_eta_s": f"{self.eta_s:.1f}",
            "p_chunks_done": str(self.chunks_done),
            "p_chunks_total": str(self.chunks_total),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> StageAdvance | None:
        if "p_total_ms" not in fields:
            return None
        return cls(
            int(fields["p_done_ms"]),
            int(fields["p_total_ms"]),
            float(fields.get("p_eta_s") or 0),
            int(fields.get("p_chunks_done") or 0),
            int(fields.get("p_chunks_total") or 0),
        )


@dataclass(frozen=True)
class RecordingInfo:
    """What the call-center system says about a recording (the upload's first message)."""

    tenant: str
    call_id: str
    agent_id: str
    customer_id: str = ""
    started_at: datetime | None = None
    channel_layout: str = ""  # "" = not given: inferred from the audio where unambiguous
    language: str = "auto"
    hotwords: tuple[tuple[str, float], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    zh_script: str = ""  # "" = the tenant's setting; else one of kit.tenants.ZH_SCRIPTS

    def check(self) -> None:
        """Raise InvalidArgument naming the first field a person must fix."""
        _check_id("call_id", self.call_id, required=True)
        _check_id("agent_id", self.agent_id, required=True)
        _check_id("customer_id", self.customer_id, required=False)
        if self.channel_layout and self.channel_layout not in CHANNEL_LAYOUTS:
            raise InvalidArgument(f"channel_layout {self.channel_layout!r} unknown; use one of {CHANNEL_LAYOUTS}")
        if self.language not in LANGUAGES:
            raise InvalidArgument(f"language {self.language!r} unknown; use one of {LANGUAGES}")
        if len(self.hotwords) > MAX_HOTWORDS:
            raise InvalidArgument(f"{len(self.hotwords)} hotwords; at most {MAX_HOTWORDS} per recording")
        for text, weight in self.hotwords:
            if not text.strip():
                raise InvalidArgument("a hotword is empty; remove it or give its text")
            if len(text.strip()) > MAX_HOTWORD_CHARS:
                raise InvalidArgument(f"hotword {text[:20]!r}... is over {MAX_HOTWORD_CHARS} characters")
            if not math.isfinite(weight) or weight < 0:
                raise InvalidArgument(f"hotword {text!r} has weight {weight}: use 0 (default) or a positive boost")
            _check_text("a hotword", text)
        if len(self.labels) > MAX_LABELS:
            raise InvalidArgument(f"{len(self.labels)} labels; at most {MAX_LABELS} per recording")
        for key, value in self.labels.items():
            if not key.strip():
                raise InvalidArgument("a label has an empty key; give every label a key (key=value)")
            if len(key) > MAX_LABEL_KEY_CHARS:
                raise InvalidArgument(
                    f"label key {key[:20]!r}... is {len(key)} characters; at most {MAX_LABEL_KEY_CHARS}"
                )
            if len(value) > MAX_LABEL_VALUE_CHARS:
                raise InvalidArgument(
                    f"label {key!r} has a value of {len(value)} characters; at most {MAX_LABEL_VALUE_CHARS}"
                )
            _check_text(f"label key {key[:40]!r}", key)
            _check_text(f"label {key[:40]!r}", value)
        if self.zh_script and self.zh_script not in ZH_SCRIPTS:
            raise InvalidArgument(
                f"zh_script {self.zh_script!r} unknown; use one of {', '.join(ZH_SCRIPTS)}, "
                "or leave it empty for the tenant's setting"
            )
        if len(self.filename) > MAX_FILENAME_CHARS:
            raise InvalidArgument(f"filename is {len(self.filename)} characters; at most {MAX_FILENAME_CHARS}")
        _check_text("filename", self.filename)
        size = self.metadata_bytes()
        if size > MAX_METADATA_BYTES:
            raise InvalidArgument(
                f"the metadata is {size} bytes (ids, labels, file name, hotwords); at most {MAX_METADATA_BYTES}"
            )

    def metadata_bytes(self) -> int:
        texts = [self.call_id, self.agent_id, self.customer_id, self.filename, *(t for t, _ in self.hotwords)]
        texts += [part for item in self.labels.items() for part in item]
        return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)

    def layout_for(self, channels: int) -> str:
        """The channel layout, checked against the audio's channel count."""
        if not self.channel_layout:
            if channels == 1:
                return "MONO"
            raise InvalidArgument(
                "the recording is stereo: set channel_layout to STEREO_AGENT_LEFT or STEREO_AGENT_RIGHT "
                "(which side is the agent)"
            )
        expected = 1 if self.channel_layout == "MONO" else 2
        if channels != expected:
            raise InvalidArgument(
                f"channel_layout {self.channel_layout} needs {expected} channel(s) but the audio has {channels}"
            )
        return self.channel_layout


def _check_id(name: str, value: str, *, required: bool) -> None:
    if required and not value.strip():
        raise InvalidArgument(f"{name} is required in the first (metadata) message")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{name} is {len(value)} characters; at most {MAX_ID_CHARS}")
    _check_text(name, value)


def _check_text(what: str, value: str) -> None:
    bad = unsafe_character(value)
    if bad is not None:
        raise InvalidArgument(
            f"{what} contains {bad}: control characters, format characters (bidi, zero-width) and unassigned "
            "code points are refused"
        )


@dataclass(frozen=True)
class LockPolicy:
    """A recording's retention: `mode` until `retain_until` (when it was archived + the tenant's retention_days).

    With tiering on, its hot copies are locked only until `hot_until` (hot_days + a grace period): the
    lifecycle moves it to the cold tier, locked until `retain_until`, before then (README, "Storage lifecycle").
    """

    mode: str  # COMPLIANCE or GOVERNANCE
    retain_until: datetime
    hot_until: datetime | None = None

    @property
    def hot_lock_until(self) -> datetime:
        return self.hot_until or self.retain_until


@dataclass(frozen=True)
class LockState:
    mode: str
    retain_until: datetime | None
    legal_hold: bool


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str
    sha256: str


@dataclass(frozen=True)
class Job:
    """What the pipeline worker needs to process a recording."""

    recording_id: str
    tenant: str
    bucket: str
    key: str
    version_id: str
    sha256: str


def recording_id(tenant: str, sha256_hex: str) -> str:
    """Deterministic id: the same bytes for the same tenant always give the same id."""
    return hashlib.sha256(f"{tenant}\n{sha256_hex}".encode()).hexdigest()[:32]


def recording_prefix(tenant: str, rec_id: str) -> str:
    return f"recordings/{tenant}/{rec_id}/"


SEALED_OPEN = "open"  # decrypted with its data key
SEALED_LOCKED = "locked"  # this process has no KEK: only the public part of the record is known
SEALED_ERASED = "erased"  # its data key was destroyed: no one can read the audio or the private part again


@dataclass(frozen=True)
class Sealed:
    """How an encrypted recording is stored (issue 19): the scheme, its data key's id, the SHA-256 and size of
    the stored ciphertext (what the integrity audit and the lifecycle check, with no key), and the private part
    of its record (what the call-center system said: ids, labels, file name, hotwords; the audio facts),
    encrypted with the recording's data key and kept verbatim in every copy."""

    scheme: str
    key_id: str
    stored_sha256: str
    stored_size: int
    protected: bytes
    state: str = SEALED_OPEN


@dataclass(frozen=True)
class ArchivedRecording:
    """A recording as archived: what was said about it, what the audio is, where and how it is locked."""

    recording_id: str
    tenant: str
    info: RecordingInfo
    audio: AudioFacts
    channel_layout: str
    size_bytes: int
    sha256: str
    archived_at: datetime
    object: StoredObject | None = None
    lock: LockState | None = None
    tier: str = "HOT"
    # The retention promised when it was archived (None in records made before it was kept: their lock is it).
    retention: LockPolicy | None = None
    moved_at: datetime | None = None  # when the cold copy became the one read (tier COLD)
    sealed: Sealed | None = None  # encrypted at rest (None: stored as it came)

    @property
    def stored_sha256(self) -> str:
        """The SHA-256 of the bytes in S3: the ciphertext's when encrypted, else the recording's own."""
        return self.sealed.stored_sha256 if self.sealed is not None else self.sha256

    @property
    def stored_size(self) -> int:
        return self.sealed.stored_size if self.sealed is not None else self.size_bytes

    @property
    def erased(self) -> bool:
        return self.sealed is not None and self.sealed.state == SEALED_ERASED

    def retention_end(self) -> tuple[str, datetime | None]:
        """(mode, until) of the recording's retention: the record's, else its lock's."""
        if self.retention is not None:
            return self.retention.mode, self.retention.retain_until
        if self.lock is not None:
            return self.lock.mode, self.lock.retain_until
        return "", None


@dataclass(frozen=True)
class Location:
    """Where a moved recording's audio is read from: its verified, locked copy in the cold tier.

    Written (as a new locked version of `location.json` beside the recording's hot objects) only once the
    copy was read back and hashed to the recording's SHA-256; until then the hot copy is the one read."""

    tier: str  # "COLD"
    bucket: str
    key: str
    version_id: str
    sha256: str
    size_bytes: int  # of the stored object (an encrypted recording's ciphertext)
    moved_at: datetime
    mode: str
    retain_until: datetime
    archived_at: datetime  # the recording's (what ListRecordings filters on once the hot copy is gone)
    stored_sha256: str = ""  # encrypted: the ciphertext's SHA-256 (the audit hashes it without a key); "": sha256


@dataclass(frozen=True)
class UploadLimits:
    spool_dir: Path
    max_bytes: int
    memory_bytes: int = 0  # uploads up to this size are kept in memory instead of the spool dir


@dataclass(frozen=True)
class Declared:
    """What the client said of the whole file up front (optional): lets parts go to S3 while receiving."""

    sha256: str = ""
    size_bytes: int = 0

    def check(self, max_bytes: int) -> None:
        if self.sha256 and (len(self.sha256) != 64 or any(ch not in "0123456789abcdef" for ch in self.sha256)):
            raise InvalidArgument("sha256 must be 64 lowercase hex characters (the SHA-256 of the whole file)")
        if self.size_bytes > max_bytes:
            raise ResourceExhausted(
                f"recording of {self.size_bytes} bytes exceeds the size limit of {max_bytes // (1024 * 1024)} MiB; "
                "split it or ask the operator to raise INGEST_MAX_UPLOAD_MB"
            )

    def verify(self, sha256: str, size: int) -> None:
        if self.size_bytes and size != self.size_bytes:
            raise InvalidArgument(f"received {size} bytes but the upload declared {self.size_bytes}; nothing stored")
        if sha256 != self.sha256:
            raise InvalidArgument(
                f"the received bytes have SHA-256 {sha256}, not the declared {self.sha256}: "
                "the file changed or was corrupted in transit; nothing was stored"
            )


class AudioWriter(Protocol):
    @property
    def single_put(self) -> bool: ...
    @property
    def streaming(self) -> bool: ...
    def can_stream(self, size: int) -> bool: ...
    def stream(self, extra_headers: dict[str, str], size: int, sha256: str) -> None: ...
    def write(self, chunk: bytes) -> None: ...
    def commit(self, extra_headers: dict[str, str] | None = None, sha256: str | None = None) -> str: ...
    def abort(self) -> None: ...
    def finish_encoding(self) -> tuple[str, int]: ...


class AlreadyArchived(Exception):
    """The store refused to write a recording because it is already there (a duplicate found at commit)."""
