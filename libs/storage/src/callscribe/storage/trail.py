"""The access trail: per tenant, an append-only and hash-chained log of who read audio or unredacted text, set
or released a legal hold, erased or exported, stored in the hot bucket under Object Lock.

Layout: `trail/<tenant>/<seq:012d>.json`, seq 1, 2, 3, ... Each object is one entry's canonical JSON (keys
sorted, no spaces, UTF-8)::

    {"action": "hold.set", "actor": {"kind": "token", "name": "legal-team", "role": "admin"},
     "details": {"reason": "case 42"}, "prev": "<SHA-256 of entry seq-1's stored bytes>", "seq": 7,
     "targets": ["<recording id>"], "tenant": "acme", "time": "2025-01-31T12:00:00.123456+00:00", "v": 1}

The first entry's `prev` is GENESIS (64 zeros). Every entry is locked in COMPLIANCE mode for the tenant's
retention from the moment it exists, so no version can be changed or deleted; what an attacker with write
access can still do is add a version over an entry's key, or a delete marker. `verify` therefore reads the
versions of every key: exactly one version per entry, no delete marker, no gap, each entry's `prev` the
SHA-256 of the one before, each in canonical form under its own sequence number and tenant.

Appending (any number of writers: ingest replicas, indexers): the next entry is PUT with `If-None-Match: *` on
the next sequence number's key, so of two writers that read the same head only one gets the key; the other
gets 412, reads the head again (a versioned listing after the key it knew, and the head's original version)
and retries with the next number. The head each process last wrote or read is cached, so an uncontended append
is one PUT. An S3 that ignores `If-None-Match` could let two writers fork the chain: the trail refuses to append
there (UNAVAILABLE) instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from callscribe.kit.errors import DataLoss
from callscribe.kit.tenants import Tenant
from callscribe.storage.bucket import Lock, LockedBucket, Version
from callscribe.storage.errors import IntegrityError, ObjectExists, StorageUnavailable

log = logging.getLogger(__name__)

PREFIX = "trail/"
GENESIS = "0" * 64
SCHEMA = 1
LOCK_MODE = "COMPLIANCE"
# What the trail records. An action that was recorded and then failed is followed by "<action>.failed".
ACTIONS = (
    "audio.read",
    "transcript.read_unredacted",
    "hold.set",
    "hold.release",
    "erase.recording",
    "erase.customer",
    "export",
)
FAILED = ".failed"
MAX_ENTRY_BYTES = 64 * 1024
_FIELDS = frozenset({"v", "seq", "time", "tenant", "actor", "action", "targets", "details", "prev"})
_ACTOR_FIELDS = frozenset({"kind", "name", "role"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def is_action(action: str) -> bool:
    return action in ACTIONS or (action.endswith(FAILED) and action[: -len(FAILED)] in ACTIONS)


def tenant_prefix(tenant: str) -> str:
    return f"{PREFIX}{tenant}/"


def entry_key(tenant: str, seq: int) -> str:
    return f"{tenant_prefix(tenant)}{seq:012d}.json"


def _seq_of(prefix: str, key: str) -> int | None:
    """The sequence number a key under `prefix` names; None for a key that is no entry's."""
    name = key[len(prefix) :] if key.startswith(prefix) else ""
    if len(name) != 17 or not name.endswith(".json") or not name[:12].isdigit():
        return None
    seq = int(name[:12])
    return seq if seq > 0 else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class TrailEntry:
    seq: int
    time: str  # ISO 8601, UTC
    tenant: str
    actor: Mapping[str, str]  # kind, name, role (kit.roles.Actor.as_dict())
    action: str
    targets: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    prev: str = GENESIS

    def document(self) -> dict[str, Any]:
        return {
            "v": SCHEMA,
            "seq": self.seq,
            "time": self.time,
            "tenant": self.tenant,
            "actor": dict(self.actor),
            "action": self.action,
            "targets": list(self.targets),
            "details": dict(self.details),
            "prev": self.prev,
        }

    def canonical(self) -> bytes:
        """The bytes stored, and hashed into the next entry's `prev`."""
        return _canonical(self.document())

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @classmethod
    def parse(cls, data: bytes) -> TrailEntry:
        """An entry from its stored bytes; ValueError saying what is wrong with them."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"fields {found}, expected {sorted(_FIELDS)}")
        if doc["v"] != SCHEMA:
            raise ValueError(f"schema version {doc['v']!r}, expected {SCHEMA}")
        actor, targets = doc["actor"], doc["targets"]
        if (
            not isinstance(actor, dict)
            or set(actor) != _ACTOR_FIELDS
            or not all(isinstance(v, str) for v in actor.values())
        ):
            raise ValueError(f"actor {actor!r} is not {{kind, name, role}}")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError("targets is not a list of strings")
        if not isinstance(doc["details"], dict):
            raise ValueError("details is not an object")
        if not isinstance(doc["seq"], int) or isinstance(doc["seq"], bool):
            raise ValueError(f"seq {doc['seq']!r} is not a number")
        for name in ("time", "tenant", "action", "prev"):
            if not isinstance(doc[name], str):
                raise ValueError(f"{name} is not a string")
        if not _HEX64.fullmatch(doc["prev"]):
            raise ValueError("prev is not a SHA-256 (64 lowercase hex digits)")
        try:
            when = datetime.fromisoformat(doc["time"])
        except ValueError:
            raise ValueError(f"time {doc['time']!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise ValueError(f"time {doc['time']!r} has no UTC offset")
        return cls(
            doc["seq"], doc["time"], doc["tenant"], actor, doc["action"], tuple(targets), doc["details"], doc["prev"]
        )


@dataclass(frozen=True)
class Appended:
    """An entry made durable: it, the SHA-256 of its stored bytes, and where it is."""

    entry: TrailEntry
    sha256: str
    key: str
    version_id: str


@dataclass(frozen=True)
class StoredEntry:
    entry: TrailEntry
    sha256: str


@dataclass(frozen=True)
class TrailBreak:
    seq: int  # 0: an object under the trail's prefix that is no entry
    reason: str


@dataclass(frozen=True)
class Verification:
    tenant: str
    entries: int  # entry keys found
    verified: int  # entries 1..verified chain correctly
    head_sha256: str  # SHA-256 of entry `verified` (GENESIS when none)
    first_break: TrailBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


@dataclass(frozen=True)
class _Head:
    seq: int
    sha256: str


class Trail:
    """The access trails of every tenant in one bucket (the hot one: it has Object Lock)."""

    def __init__(
        self,
        bucket: LockedBucket,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_attempts: int = 64,
    ) -> None:
        self._bucket = bucket
        self._clock = clock
        self._max_attempts = max_attempts
        self._heads: dict[str, _Head] = {}  # the last entry this process wrote or read, per tenant
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._conditional: bool | None = None  # whether S3 honours If-None-Match (probed on first append)

    @property
    def bucket(self) -> str:
        return self._bucket.name

    # -- appending ---------------------------------------------------------------------------------
    def append(
        self,
        tenant: Tenant,
        actor: Mapping[str, str],
        action: str,
        targets: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> Appended:
        """Append one entry and return once it is durable (locked in S3). StorageUnavailable when it could not
        be written: the caller must then not perform (or acknowledge) the action."""
        if not is_action(action):
            raise ValueError(f"unknown trail action {action!r}: one of {', '.join(ACTIONS)} (or with {FAILED!r})")
        if set(actor) != _ACTOR_FIELDS:
            raise ValueError(f"actor must have exactly kind, name and role, got {sorted(actor)}")
        self._require_conditional_writes()
        name = tenant.name
        with self._lock_of(name):
            head = self._heads.get(name) or self._read_head(name, None)
            for attempt in range(self._max_attempts):
                now = self._clock()
                entry = TrailEntry(
                    head.seq + 1,
                    now.isoformat(timespec="microseconds"),
                    name,
                    {k: str(v) for k, v in actor.items()},
                    action,
                    tuple(str(t) for t in targets),
                    dict(details or {}),
                    head.sha256,
                )
                data = entry.canonical()
                if len(data) > MAX_ENTRY_BYTES:
                    raise ValueError(f"a trail entry of {len(data)} bytes: at most {MAX_ENTRY_BYTES}")
                key = entry_key(name, entry.seq)
                lock = Lock(LOCK_MODE, now + timedelta(days=tenant.retention_days))
                try:
                    version_id = self._bucket.put_locked_if_absent(key, data, "application/json", lock)
                except ObjectExists:
                    # Another writer appended entry seq first: chain after the head as it is now.
                    head = self._read_head(name, head)
                    if attempt:
                        time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                    continue
                except BaseException:
                    self._heads.pop(name, None)  # the PUT may have landed: read the head again next time
                    raise
                digest = sha256_hex(data)
                self._heads[name] = _Head(entry.seq, digest)
                log.info("trail %s #%d: %s by %s on %s", name, entry.seq, action, entry.actor.get("name"), targets)
                return Appended(entry, digest, key, version_id)
            self._heads.pop(name, None)
        raise StorageUnavailable(
            f"the access trail of tenant {name} is busy: {self._max_attempts} appends in a row found their sequence "
            "number taken by another writer; retry"
        )

    def _lock_of(self, tenant: str) -> threading.Lock:
        with self._guard:
            return self._tenant_locks.setdefault(tenant, threading.Lock())

    def _require_conditional_writes(self) -> None:
        with self._guard:
            if self._conditional is None:
                self._conditional = self._bucket.probe_conditional_writes()
            honoured = self._conditional
        if not honoured:
            raise StorageUnavailable(
                f"S3 bucket {self._bucket.name!r} ignores If-None-Match on PUT: the access trail cannot be appended "
                "safely (two writers could fork it), so nothing that must be recorded is done; upgrade S3"
            )

    def _read_head(self, tenant: str, known: _Head | None) -> _Head:
        """The last entry now: the highest sequence number under the tenant's prefix after `known`'s (delete
        markers count: a deleted entry's number is never used again), and the SHA-256 of its original version."""
        prefix = tenant_prefix(tenant)
        after = entry_key(tenant, known.seq) if known is not None else None
        last, versions = 0, list[Version]()
        for version in self._bucket.versions(prefix, start_after=after):
            seq = _seq_of(prefix, version.key)
            if seq is None:
                continue
            if seq > last:
                last, versions = seq, []
            if seq == last:
                versions.append(version)
        if last == 0:
            return known or _Head(0, GENESIS)
        original = _original(versions)
        if original is None:
            raise IntegrityError(
                f"the access trail of tenant {tenant} ends in entry {last}, which has no readable version (only a "
                "delete marker): nothing can be chained after it; run 'callscribe trail verify' and alert the operator"
            )
        raw, _ = self._bucket.read_with_lock(original.key, original.version_id)
        return _Head(last, sha256_hex(raw))

    # -- reading -----------------------------------------------------------------------------------
    def _listing(self, tenant: str) -> tuple[dict[int, list[Version]], list[str]]:
        """Every version of every entry key, by sequence number (newest first), and the keys that are no entry."""
        prefix = tenant_prefix(tenant)
        found: dict[int, list[Version]] = {}
        strays: list[str] = []
        for version in self._bucket.versions(prefix):
            seq = _seq_of(prefix, version.key)
            if seq is None:
                strays.append(version.key)
            else:
                found.setdefault(seq, []).append(version)
        return found, strays

    def verify(self, tenant: str) -> Verification:
        """Read every entry in order and check the chain; the first break says where and what is wrong."""
        found, strays = self._listing(tenant)
        prev, verified, first_break = GENESIS, 0, None
        for seq in range(1, max(found, default=0) + 1):
            problem, digest = self._check(tenant, seq, found.get(seq, []), prev)
            if problem is not None:
                first_break = TrailBreak(seq, problem)
                break
            prev, verified = digest, seq
        if first_break is None and strays:
            first_break = TrailBreak(
                0, f"{len(strays)} object(s) under {tenant_prefix(tenant)} that are no trail entry, e.g. {strays[0]}"
            )
        return Verification(tenant, len(found), verified, prev, first_break)

    def _check(self, tenant: str, seq: int, versions: list[Version], prev: str) -> tuple[str | None, str]:
        key = entry_key(tenant, seq)
        if not versions:
            return f"missing: there is no {key} (a gap in the sequence)", ""
        markers = [v for v in versions if v.delete_marker]
        data = [v for v in versions if not v.delete_marker]
        if markers:
            return f"deleted: {len(markers)} delete marker(s) on {key} hide the entry", ""
        if len(data) != 1:
            ids = ", ".join(v.version_id for v in data)
            return (
                f"{len(data)} versions of {key} (newest first: {ids}): the entry was written over after it was "
                "appended",
                "",
            )
        raw, lock = self._bucket.read_with_lock(key, data[0].version_id)
        if lock.mode != LOCK_MODE:
            return f"not locked in {LOCK_MODE} mode (lock mode {lock.mode or 'none'}): it could be removed", ""
        try:
            entry = TrailEntry.parse(raw)
        except ValueError as exc:
            return f"not a trail entry: {exc}", ""
        if entry.canonical() != raw:
            return "its bytes are not the canonical form of the entry they hold (not written by callscribe)", ""
        if entry.seq != seq or entry.tenant != tenant:
            return f"it says it is entry {entry.seq} of tenant {entry.tenant!r}, but is stored as {key}", ""
        if entry.prev != prev:
            before = "the genesis value" if seq == 1 else f"the SHA-256 of entry {seq - 1}"
            return f"its prev {entry.prev} is not {before} ({prev}): the chain is broken", ""
        return None, sha256_hex(raw)

    def last_entries(self, tenant: str, count: int) -> Iterator[StoredEntry]:
        """The tenant's last `count` entries, oldest first, each read from its original version. DataLoss for one
        that cannot be read as an entry (`verify` says more)."""
        found, _ = self._listing(tenant)
        for seq in sorted(found)[-count:] if count > 0 else []:
            original = _original(found[seq])
            if original is None:
                continue  # deleted: verify reports it
            raw, _ = self._bucket.read_with_lock(original.key, original.version_id)
            try:
                entry = TrailEntry.parse(raw)
            except ValueError as exc:
                raise DataLoss(
                    f"entry {seq} of the access trail of tenant {tenant} is not a trail entry ({exc}): run "
                    "'callscribe trail verify' and alert the operator"
                ) from exc
            yield StoredEntry(entry, sha256_hex(raw))


def _original(versions: list[Version]) -> Version | None:
    """The first version ever written of a key (a listing gives each key's versions newest first)."""
    data = [v for v in versions if not v.delete_marker]
    return data[-1] if data else None
