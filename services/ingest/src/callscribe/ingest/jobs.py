"""The pipeline's job queue and progress, on Redis (a Stream plus one hash per recording).

Redis holds queue and progress only; the truth is in S3. Losing Redis loses nothing:
reconciliation re-enqueues every archived recording that has no progress record.
"""

from __future__ import annotations

import logging
import time

import redis

from callscribe.ingest.model import Job
from callscribe.kit.errors import Unavailable

log = logging.getLogger(__name__)

STATE_KEY = "callscribe:state:{}"

# Enqueue at most once per recording: the progress hash is the idempotency key.
_ENQUEUE_ONCE = """
if redis.call('HSETNX', KEYS[1], 'state', 'queued') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1], 'tenant', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'recording_id', ARGV[3], 'tenant', ARGV[2], 'bucket', ARGV[4],
           'key', ARGV[5], 'version_id', ARGV[6], 'sha256', ARGV[7])
return 1
"""


class RedisJobQueue:
    def __init__(self, url: str, stream: str, timeout: float) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self._stream = stream
        self._enqueue = self._redis.register_script(_ENQUEUE_ONCE)

    def enqueue(self, job: Job) -> bool:
        """True when this call queued the job, False when it was already known. Unavailable if Redis is down."""
        keys = [STATE_KEY.format(job.recording_id), self._stream]
        args = [f"{time.time():.3f}", job.tenant, job.recording_id, job.bucket, job.key, job.version_id, job.sha256]
        try:
            return bool(self._enqueue(keys=keys, args=args))
        except redis.RedisError as exc:
            raise Unavailable(f"job queue (Redis) unreachable: {exc}") from exc

    def state(self, recording_id: str) -> tuple[str, str] | None:
        """(state, detail) of the recording's progress, None when Redis has no record of it."""
        try:
            fields = self._redis.hgetall(STATE_KEY.format(recording_id))
        except redis.RedisError as exc:
            raise Unavailable(f"job queue (Redis) unreachable: {exc}") from exc
        if not fields:
            return None
        return str(fields.get("state", "")), str(fields.get("detail", ""))

    def unknown(self, recording_ids: list[str]) -> list[str]:
        """The ids Redis has no progress record for (never queued, or Redis lost its data)."""
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for rec_id in recording_ids:
                    pipe.exists(STATE_KEY.format(rec_id))
                found = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"job queue (Redis) unreachable: {exc}") from exc
        return [rec_id for rec_id, exists in zip(recording_ids, found, strict=True) if not exists]

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False
