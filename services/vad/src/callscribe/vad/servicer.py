"""gRPC entry point of the VAD: translates messages to a job on the pool, nothing more."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscribe.audio.policy import check_raw_format
from callscribe.audio.source import AudioSource, check_ref
from callscribe.kit.errors import DomainError, InvalidArgument
from callscribe.kit.interceptors import caller_tenant
from callscribe.storage.location import ObjectRef
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import vad_pb2 as pb
from callscribe.v1 import vad_pb2_grpc
from callscribe.vad import detect as core
from callscribe.vad.engines import VadParams
from callscribe.vad.pool import Job, Outcome, VadPool

log = logging.getLogger(__name__)

_LAYOUTS = {
    c.CHANNEL_LAYOUT_UNSPECIFIED: core.UNSPECIFIED,
    c.CHANNEL_LAYOUT_MONO: core.MONO,
    c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT: core.STEREO_AGENT_LEFT,
    c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT: core.STEREO_AGENT_RIGHT,
}
_ROLES = {core.AGENT: c.SPEAKER_ROLE_AGENT, core.CUSTOMER: c.SPEAKER_ROLE_CUSTOMER, core.MIXED: c.SPEAKER_ROLE_MIXED}
_ENGINES = {pb.VAD_ENGINE_FSMN: "fsmn", pb.VAD_ENGINE_SILERO: "silero"}
_DIARIZATION = {
    core.OFF: c.DIARIZATION_STATUS_OFF,
    core.DIARIZED: c.DIARIZATION_STATUS_DIARIZED,
    core.MIXED: c.DIARIZATION_STATUS_MIXED,
}

# Accepted ranges of the per-request options (0 / unset: the engine default).
MAX_SEGMENT_RANGE_MS = (1000, 600_000)
END_SILENCE_RANGE_MS = (50, 10_000)
# Both engines read it as "speech exceeds noise by this much" (Silero: probability >= (1 + t) / 2).
THRESHOLD_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class Request:
    engine: str
    params: Any
    layout: str
    diarize: bool | None  # None: the service's default


class VadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.audio_seconds = Counter(
            "callscribe_vad_audio_seconds", "audio processed (seconds of recording)", registry=registry
        )
        self.rtf = Histogram(
            "callscribe_vad_rtf",
            "real-time factor per request: worker seconds / audio seconds",
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
        )
        self.segments = Counter("callscribe_vad_segments", "speech segments found", registry=registry)
        self.errors = Counter("callscribe_vad_errors", "refused or failed requests", ["reason"], registry=registry)
        self.queue_depth = Gauge("callscribe_vad_queue_depth", "requests waiting for a worker", registry=registry)


class VadServicer(vad_pb2_grpc.VadServiceServicer):
    def __init__(
        self,
        pool: VadPool,
        source: AudioSource,
        default_engine: str,
        buckets: tuple[str, ...],
        metrics: VadMetrics,
    ) -> None:
        self._pool = pool
        self._source = source
        self._default_engine = default_engine
        self._buckets = buckets
        self._metrics = metrics
        metrics.queue_depth.set_function(lambda: pool.queued)

    def DetectSpeech(self, request: pb.DetectSpeechRequest, context: grpc.ServicerContext) -> pb.DetectSpeechResponse:
        try:
            return self._detect(request)
        except DomainError as exc:
            self._metrics.errors.labels(exc.kind.name.lower()).inc()
            raise
        except Exception:
            self._metrics.errors.labels("internal").inc()
            raise

    def _detect(self, request: pb.DetectSpeechRequest) -> pb.DetectSpeechResponse:
        tenant = caller_tenant()
        req = self._parse(request)
        which = request.WhichOneof("source")
        ref: ObjectRef | None = None
        raw_format = ""
        if which == "object":
            o = request.object
            ref = ObjectRef(o.bucket, o.key, o.version_id, o.sha256.lower())
            check_ref(ref, tenant.name, self._buckets)
            check_raw_format(o.raw_format)
            raw_format = o.raw_format
        elif which != "inline_audio":
            raise InvalidArgument("set the audio: object (an archived recording) or inline_audio (a small clip)")
        with self._pool.admitted():
            spooled = self._source.stored(ref) if ref is not None else self._source.inline(request.inline_audio)
            with spooled as sealed:
                outcome = self._pool.run(
                    Job(sealed, req.layout, req.engine, req.params, raw_format=raw_format, diarize=req.diarize)
                )
        self._observe(outcome)
        return _response(outcome)

    def _parse(self, request: pb.DetectSpeechRequest) -> Request:
        if request.channel_layout not in _LAYOUTS:
            raise InvalidArgument(f"channel_layout {request.channel_layout} is not a known value")
        opts = request.options
        if opts.engine == pb.VAD_ENGINE_UNSPECIFIED:
            engine = self._default_engine
        elif opts.engine in _ENGINES:
            engine = _ENGINES[opts.engine]
        else:
            raise InvalidArgument(f"options.engine {opts.engine} is not a known engine (FSMN or SILERO)")
        overrides: dict[str, Any] = {}
        if opts.max_single_segment_ms:
            overrides["max_single_segment_ms"] = _in_range(
                "options.max_single_segment_ms", opts.max_single_segment_ms, MAX_SEGMENT_RANGE_MS
            )
        if opts.max_end_silence_ms:
            overrides["max_end_silence_ms"] = _in_range(
                "options.max_end_silence_ms", opts.max_end_silence_ms, END_SILENCE_RANGE_MS
            )
        if opts.HasField("speech_noise_threshold"):
            value = opts.speech_noise_threshold
            low, high = THRESHOLD_RANGE
            if not math.isfinite(value) or not low <= value <= high:
                raise InvalidArgument(
                    f"options.speech_noise_threshold {value} is out of range for {engine}: use {low} to {high}, "
                    "or leave it unset for the default"
                )
            overrides["speech_noise_threshold"] = float(value)
        diarize = opts.diarize if opts.HasField("diarize") else None
        return Request(engine, replace(VadParams(), **overrides), _LAYOUTS[request.channel_layout], diarize)

    def _observe(self, outcome: Outcome) -> None:
        seconds = outcome.duration_ms / 1000
        self._metrics.audio_seconds.inc(seconds)
        if seconds > 0:
            self._metrics.rtf.observe(outcome.seconds / seconds)
        self._metrics.segments.inc(len(outcome.detection.segments))
        diarization = outcome.detection.diarization
        log.info(
            "%d segment(s) in %.1fs of %s/%s audio (%d ch, %d Hz) in %.2fs (RTF %.4f)%s",
            len(outcome.detection.segments),
            seconds,
            outcome.info.container,
            outcome.info.codec,
            outcome.info.channels,
            outcome.info.sample_rate_hz,
            outcome.seconds,
            outcome.seconds / seconds if seconds else 0.0,
            f"; diarization {diarization.status.lower()}"
            + (f": {diarization.reason}" if diarization.reason else f", similarity {diarization.similarity:.2f}")
            if outcome.info.channels == 1
            else "",
        )


def _in_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidArgument(f"{name} {value} is out of range: use {low} to {high}, or 0 for the default")
    return int(value)


def _response(outcome: Outcome) -> pb.DetectSpeechResponse:
    det = outcome.detection
    info = outcome.info
    return pb.DetectSpeechResponse(
        segments=[
            c.Segment(
                channel=s.channel,
                role=_ROLES[s.role],
                start_ms=s.start_ms,
                end_ms=s.end_ms,
                speaker=s.speaker,
                role_confidence=s.confidence,
            )
            for s in det.segments
        ],
        duration_ms=outcome.duration_ms,
        channels=[
            pb.ChannelSpeech(
                channel=ch.channel, role=_ROLES[ch.role], speech_ms=ch.speech_ms, segment_count=ch.segment_count
            )
            for ch in det.channels
        ],
        audio=c.AudioFacts(
            container=info.container,
            codec=info.codec,
            sample_rate_hz=info.sample_rate_hz,
            channels=info.channels,
            duration_ms=outcome.duration_ms,
            size_bytes=info.size_bytes,
        ),
        diarization=_diarization(det.diarization),
    )


def _diarization(d: core.Diarization) -> c.Diarization:
    return c.Diarization(
        status=_DIARIZATION[d.status],
        reason=d.reason,
        agent_rule=d.agent_rule,
        voice_similarity=d.similarity,
        speakers=[
            c.SpeakerSpeech(
                speaker=s.speaker, role=_ROLES[s.role], speech_ms=s.speech_ms, segment_count=s.segment_count
            )
            for s in d.speakers
        ],
        model=d.model,
    )
