"""The pipeline's job queue and progress, on Redis (a Stream plus one hash per recording): the one
adapter both ingest programs use, and the only module that imports redis.

Redis holds queue and progress only; the truth is in S3. Losing Redis loses nothing:
reconciliation re-enqueues every archived recording that has no indexed call and no live job.
Every failure to reach Redis becomes the kit's `Unavailable`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from callscribe.ingest.model import Job, StageAdvance
from callscribe.kit.errors import Unavailable

log = logging.getLogger(__name__)

STATE_KEY = "callscribe:state:{}"
# A job's finished work (VAD segments, ASR results per chunk), kept between tries; dropped when done.
WORK_KEY = "callscribe:work:{}:{}"  # recording id, SHA-256
WORK_TTL_S = 7 * 24 * 3600
MAX_WORK_VALUE_BYTES = 8 * 1024 * 1024  # larger results are simply computed again on a retry
_ADVANCE_FIELDS = tuple(StageAdvance(0, 0).fields())

# Enqueue at most once per recording: the progress hash is the idempotency key.
_ENQUEUE_ONCE = """
if redis.call('HSETNX', KEYS[1], 'state', 'queued') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1], 'tenant', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'recording_id', ARGV[3], 'tenant', ARGV[2], 'bucket', ARGV[4],
           'key', ARGV[5], 'version_id', ARGV[6], 'sha256', ARGV[7])
return 1
"""


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise Unavailable(f"job queue (Redis) unreachable: {exc}") from exc


def _connect(url: str, timeout: float) -> Any:
    """A Redis client answering str (decode_responses), which redis-py's annotations cannot express: typed Any."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)


# ---------------------------------------------------------------------------------------------
# The worker's side: consumer group, retries with backoff, dead letters.
#
# Keys: the job stream (entries: recording_id, tenant, bucket, key, version_id, sha256, attempts),
# `<stream>:retry` (sorted set: job JSON scored by the time it is due again) and `<stream>:dead`
# (a stream of jobs the pipeline gave up on, with stage and reason). Every move between them is
# one atomic Redis step (MULTI or a script), so no job is ever in none of them while unacknowledged.
# ---------------------------------------------------------------------------------------------

JOB_FIELDS = ("recording_id", "tenant", "bucket", "key", "version_id", "sha256")

# Due retries back onto the stream, atomically per job.
_PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, raw in ipairs(due) do
  local job = cjson.decode(raw)
  if redis.call('ZREM', KEYS[1], raw) == 1 then
    redis.call('XADD', KEYS[2], '*', 'recording_id', job.recording_id, 'tenant', job.tenant, 'bucket', job.bucket,
               'key', job.key, 'version_id', job.version_id, 'sha256', job.sha256, 'attempts', job.attempts)
    redis.call('HSET', 'callscribe:state:' .. job.recording_id, 'state', 'queued', 'updated_at', ARGV[3])
  end
end
return #due
"""

# A dead letter back onto the stream with fresh attempts (only if it is still a dead letter).
_REQUEUE_DEAD = """
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
local f = {}
local fields = entry[1][2]
for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
if f.tenant ~= ARGV[2] then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'recording_id', f.recording_id, 'tenant', f.tenant, 'bucket', f.bucket,
           'key', f.key, 'version_id', f.version_id, 'sha256', f.sha256, 'attempts', 0)
redis.call('HSET', 'callscribe:state:' .. f.recording_id, 'state', 'queued', 'detail', 'requeued from dead letters',
           'updated_at', ARGV[3], 'tenant', f.tenant)
return 1
"""


def job_from_fields(fields: dict[str, str]) -> tuple[Job, int]:
    job = Job(**{name: str(fields.get(name, "")) for name in JOB_FIELDS})
    return job, int(fields.get("attempts") or 0)


def job_fields(job: Job, attempts: int) -> dict[str, str | int]:
    return {**{name: getattr(job, name) for name in JOB_FIELDS}, "attempts": attempts}


class DeadLetterEntry:
    __slots__ = ("entry_id", "job", "attempts", "stage", "reason", "failed_at")

    def __init__(self, entry_id: str, fields: dict[str, str]) -> None:
        self.entry_id = entry_id
        self.job, self.attempts = job_from_fields(fields)
        self.stage = str(fields.get("stage", ""))
        self.reason = str(fields.get("reason", ""))
        self.failed_at = float(fields.get("failed_at") or 0)


class RedisJobs:
    """The job stream, its retry set and dead letters, and the progress hashes.

    The upload API enqueues, reads progress and pages/requeues dead letters; the worker (given its
    consumer group and name) reads, keeps alive, acknowledges, retries and dead-letters.
    """

    def __init__(self, url: str, stream: str, timeout: float, group: str = "", consumer: str = "") -> None:
        self._redis = _connect(url, timeout)
        self._raw: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.stream = stream
        self.retry_key = f"{stream}:retry"
        self.dead_stream = f"{stream}:dead"
        self.group = group
        self.consumer = consumer
        self._enqueue = self._redis.register_script(_ENQUEUE_ONCE)
        self._promote = self._redis.register_script(_PROMOTE_DUE)
        self._requeue = self._redis.register_script(_REQUEUE_DEAD)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    # -- the upload API's side ------------------------------------------------------------------
    def enqueue(self, job: Job) -> bool:
        """True when this call queued the job, False when it was already known. Unavailable if Redis is down."""
        keys = [STATE_KEY.format(job.recording_id), self.stream]
        args = [f"{time.time():.3f}", job.tenant, job.recording_id, job.bucket, job.key, job.version_id, job.sha256]
        with _reachable():
            return bool(self._enqueue(keys=keys, args=args))

    def state(self, recording_id: str) -> tuple[str, str, StageAdvance | None] | None:
        """(state, detail, progress inside the stage) of the recording, None when Redis has no record of it."""
        with _reachable():
            fields = self._redis.hgetall(STATE_KEY.format(recording_id))
        if not fields:
            return None
        return str(fields.get("state", "")), str(fields.get("detail", "")), StageAdvance.from_fields(fields)

    def dead_letters(self, tenant: str, size: int, after: str) -> tuple[list[DeadLetterEntry], str]:
        """The tenant's dead letters after entry id ``after`` (exclusive); returns (entries, next token or "")."""
        found: list[DeadLetterEntry] = []
        start = f"({after}" if after else "-"
        with _reachable():
            while len(found) < size:
                batch = self._redis.xrange(self.dead_stream, min=start, max="+", count=500)
                if not batch:
                    return found, ""
                for entry_id, fields in batch:
                    start = f"({entry_id}"
                    if fields.get("tenant") == tenant:
                        found.append(DeadLetterEntry(entry_id, fields))
                        if len(found) == size:
                            more = self._redis.xrange(self.dead_stream, min=start, max="+", count=1)
                            return found, entry_id if more else ""
        return found, ""

    def requeue_dead(self, tenant: str, recording_id: str) -> list[str]:
        """Requeue the tenant's dead letters (all, or those of one recording); returns the recording ids."""
        requeued: list[str] = []
        after = ""
        while True:
            entries, after = self.dead_letters(tenant, 500, after)
            for entry in entries:
                if recording_id and entry.job.recording_id != recording_id:
                    continue
                with _reachable():
                    moved = self._requeue(
                        keys=[self.dead_stream, self.stream], args=[entry.entry_id, tenant, f"{time.time():.3f}"]
                    )
                if moved and entry.job.recording_id not in requeued:
                    requeued.append(entry.job.recording_id)
            if not after:
                return requeued

    # -- the worker's side ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) unless it exists; also after Redis lost its data."""
        with _reachable():
            try:
                self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
                log.info("created consumer group %s on %s", self.group, self.stream)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, count: int, block_ms: int) -> list[tuple[str, dict[str, str]]]:
        """New entries for this consumer (blocking up to block_ms)."""
        with _reachable():
            try:
                reply = self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
                )
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group %s is gone (Redis lost its data?): recreating it", self.group)
                self.ensure_group()
                return []
        entries: list[tuple[str, dict[str, str]]] = []
        for _stream, items in reply or []:
            entries.extend((entry_id, fields) for entry_id, fields in items if fields)
        return entries

    def claim_stale(self, min_idle_ms: int, count: int) -> list[tuple[str, dict[str, str], int]]:
        """Entries another consumer took and stopped keeping alive (it died): (id, fields, times delivered)."""
        with _reachable():
            try:
                reply = self._redis.xautoclaim(self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.ensure_group()
                return []
            claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields]
            deliveries: dict[str, int] = {}
            for entry_id, _ in claimed:
                pending = self._redis.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
                deliveries[entry_id] = int(pending[0]["times_delivered"]) if pending else 1
        return [(entry_id, fields, deliveries[entry_id]) for entry_id, fields in claimed]

    def keep_alive(self, entry_ids: list[str]) -> None:
        """Reset the idle time of entries still being worked on, so no other worker reclaims them."""
        if entry_ids:
            with _reachable():
                self._redis.xclaim(self.stream, self.group, self.consumer, 0, entry_ids, justid=True)

    def set_state(
        self,
        recording_id: str,
        state: str,
        detail: str = "",
        attempts: int | None = None,
        advance: StageAdvance | None = None,
    ) -> None:
        """Record the state; the progress inside the stage is `advance`'s, or none (cleared)."""
        mapping: dict[str, str | int] = {"state": state, "detail": detail, "updated_at": f"{time.time():.3f}"}
        if attempts is not None:
            mapping["attempts"] = attempts
        key = STATE_KEY.format(recording_id)
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            if advance is None:
                pipe.hdel(key, *_ADVANCE_FIELDS)
            else:
                mapping.update(advance.fields())
            pipe.hset(key, mapping=mapping)
            pipe.execute()

    def load_work(self, recording_id: str, sha256: str) -> dict[str, bytes]:
        """What earlier tries of this recording finished (name -> serialized result)."""
        with _reachable():
            found = self._raw.hgetall(WORK_KEY.format(recording_id, sha256))
        return {bytes(name).decode(): bytes(value) for name, value in found.items()}

    def audit_of(self, recording_id: str) -> dict[str, str]:
        """The integrity audit's last finding on the recording (the lifecycle writes it): a re-indexed call
        carries it, so the index keeps it."""
        with _reachable():
            return dict(self._redis.hgetall(AUDIT_KEY.format(recording_id)))

    def save_work(self, recording_id: str, sha256: str, name: str, value: bytes) -> None:
        if len(value) > MAX_WORK_VALUE_BYTES:
            log.info("%s: %s not kept (%d bytes); a retry computes it again", recording_id, name, len(value))
            return
        key = WORK_KEY.format(recording_id, sha256)
        with _reachable(), self._raw.pipeline(transaction=True) as pipe:
            pipe.hset(key, name, value)
            pipe.expire(key, WORK_TTL_S)
            pipe.execute()

    def done(self, entry_id: str, job: Job, detail: str) -> None:
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.delete(WORK_KEY.format(job.recording_id, job.sha256))
            pipe.hdel(STATE_KEY.format(job.recording_id), *_ADVANCE_FIELDS)
            pipe.hset(
                STATE_KEY.format(job.recording_id),
                mapping={"state": "done", "detail": detail, "updated_at": f"{time.time():.3f}", "tenant": job.tenant},
            )
            pipe.execute()

    def retry_later(
        self, entry_id: str, job: Job, attempts: int, delay_s: float, stage: str, reason: str, detail: str = ""
    ) -> None:
        """Acknowledge the entry and park the job in the retry set, in one transaction. `attempts` is what
        the job has used so far (a retry after pressure or a release passes it unchanged)."""
        raw = json.dumps(job_fields(job, attempts), sort_keys=True)
        detail = detail or f"attempt {attempts} failed at {stage}: {reason}; retrying in {delay_s:.0f} s"
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.retry_key, {raw: time.time() + delay_s})
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.hdel(STATE_KEY.format(job.recording_id), *_ADVANCE_FIELDS)
            pipe.hset(
                STATE_KEY.format(job.recording_id),
                mapping={"state": "queued", "detail": detail, "attempts": attempts, "updated_at": f"{time.time():.3f}"},
            )
            pipe.execute()

    def dead_letter(self, entry_id: str, job: Job, attempts: int, stage: str, reason: str) -> None:
        """Acknowledge the entry and move the job to the dead-letter stream with its reason, in one transaction."""
        now = f"{time.time():.3f}"
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_stream,
                {**job_fields(job, attempts), "stage": stage, "reason": reason[:2000], "failed_at": now},
            )
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.hdel(STATE_KEY.format(job.recording_id), *_ADVANCE_FIELDS)
            pipe.hset(
                STATE_KEY.format(job.recording_id),
                mapping={
                    "state": "failed",
                    "detail": f"{stage}: {reason}"[:2000],
                    "attempts": attempts,
                    "updated_at": now,
                    "tenant": job.tenant,
                },
            )
            pipe.execute()

    def not_analysable(self, entry_id: str, job: Job, attempts: int, stage: str, reason: str) -> None:
        """Acknowledge the entry: the recording stays archived as sent, and its state says why no service
        can analyse it. Final; not a dead letter (nothing to retry, nothing wrong with the system)."""
        now = f"{time.time():.3f}"
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.hdel(STATE_KEY.format(job.recording_id), *_ADVANCE_FIELDS)
            pipe.hset(
                STATE_KEY.format(job.recording_id),
                mapping={
                    "state": "unanalysable",
                    "detail": f"archived, not analysable ({stage}): {reason}"[:2000],
                    "attempts": attempts,
                    "updated_at": now,
                    "tenant": job.tenant,
                },
            )
            pipe.delete(WORK_KEY.format(job.recording_id, job.sha256))
            pipe.execute()

    def promote_due(self, limit: int = 100) -> int:
        """Move retries whose time has come back onto the stream; returns how many moved."""
        with _reachable():
            return int(
                self._promote(keys=[self.retry_key, self.stream], args=[f"{time.time():.3f}", limit, time.time()])
            )

    def requeue(self, job: Job) -> None:
        """Put a job on the stream whatever its recorded state (the reconciler found it unindexed)."""
        with _reachable(), self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.stream, job_fields(job, 0))
            pipe.hdel(STATE_KEY.format(job.recording_id), *_ADVANCE_FIELDS)
            pipe.hset(
                STATE_KEY.format(job.recording_id),
                mapping={
                    "state": "queued",
                    "detail": "requeued by reconciliation",
                    "updated_at": f"{time.time():.3f}",
                    "tenant": job.tenant,
                },
            )
            pipe.execute()

    def states(self, recording_ids: list[str]) -> dict[str, dict[str, str]]:
        with _reachable(), self._redis.pipeline(transaction=False) as pipe:
            for rec_id in recording_ids:
                pipe.hgetall(STATE_KEY.format(rec_id))
            found = pipe.execute()
        return {rec_id: fields for rec_id, fields in zip(recording_ids, found, strict=True) if fields}


# ---------------------------------------------------------------------------------------------
# The storage lifecycle's side (issue 18): leases per recording, updates the index has not taken yet,
# the integrity audit's checkpoint and findings. Like the job queue this is bookkeeping: the truth (where a
# recording is, its locks) is in S3; losing it repeats work, never loses a recording.

LEASE_KEY = "callscribe:lifecycle:lease:{}"  # recording id -> the replica working on it
PENDING_KEY = "callscribe:lifecycle:{}-pending"  # index / delete: set of "tenant/recording_id"
AUDIT_KEY = "callscribe:audit:{}"  # recording id -> hash: integrity, verified_at, detail
AUDIT_CHECKPOINT_KEY = "callscribe:lifecycle:audit-checkpoint"  # "tenant/recording_id" last audited in the round
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LifecycleRedis:
    """The lifecycle's bookkeeping in Redis; every failure to reach it is `Unavailable`."""

    def __init__(self, url: str, timeout: float) -> None:
        self._r = _connect(url, timeout)
        self._release = self._r.register_script(_RELEASE_LEASE)

    def ping(self) -> None:
        with _reachable():
            self._r.ping()

    # -- leases: one replica works on a recording at a time ------------------------------------------
    def acquire(self, rec_id: str, owner: str, ttl_s: float) -> bool:
        with _reachable():
            return bool(self._r.set(LEASE_KEY.format(rec_id), owner, nx=True, px=max(1, int(ttl_s * 1000))))

    def release(self, rec_id: str, owner: str) -> None:
        with _reachable():
            self._release(keys=[LEASE_KEY.format(rec_id)], args=[owner])

    # -- index updates that did not go through yet ----------------------------------------------------
    # kind "index": a moved call's new location; "delete": an expired call's documents.
    def pending(self, kind: str, tenant: str, rec_id: str, on: bool) -> None:
        with _reachable():
            key, member = PENDING_KEY.format(kind), f"{tenant}/{rec_id}"
            if on:
                self._r.sadd(key, member)
            else:
                self._r.srem(key, member)

    def is_pending(self, kind: str, tenant: str, rec_id: str) -> bool:
        with _reachable():
            return bool(self._r.sismember(PENDING_KEY.format(kind), f"{tenant}/{rec_id}"))

    def all_pending(self, kind: str) -> list[tuple[str, str]]:
        with _reachable():
            members = self._r.smembers(PENDING_KEY.format(kind))
        return [(m.split("/", 1)[0], m.split("/", 1)[1]) for m in sorted(members) if "/" in m]

    def index_pending(self, tenant: str, rec_id: str, pending: bool) -> None:
        self.pending("index", tenant, rec_id, pending)

    def is_index_pending(self, tenant: str, rec_id: str) -> bool:
        return self.is_pending("index", tenant, rec_id)

    def all_index_pending(self) -> list[tuple[str, str]]:
        return self.all_pending("index")

    # -- the integrity audit ------------------------------------------------------------------------
    def audit_checkpoint(self) -> str:
        with _reachable():
            return str(self._r.get(AUDIT_CHECKPOINT_KEY) or "")

    def set_audit_checkpoint(self, value: str) -> None:
        with _reachable():
            if value:
                self._r.set(AUDIT_CHECKPOINT_KEY, value)
            else:
                self._r.delete(AUDIT_CHECKPOINT_KEY)

    def record_audit(self, rec_id: str, integrity: str, verified_at: float, detail: str) -> None:
        with _reachable():
            self._r.hset(
                AUDIT_KEY.format(rec_id), mapping={"integrity": integrity, "verified_at": verified_at, "detail": detail}
            )

    def forget(self, rec_id: str) -> None:
        """Drop what is kept of an expired recording (its audit findings, its pipeline state)."""
        with _reachable():
            self._r.delete(AUDIT_KEY.format(rec_id), STATE_KEY.format(rec_id))
