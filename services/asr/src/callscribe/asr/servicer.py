"""gRPC entry point of the ASR: validate, cut the audio, queue the segments, answer.

Everything a request can get wrong is checked before anything is queued (a refused request leaves
no work behind): the segment list, each segment's audio and length, engine, model, language,
hotwords, the tenant wall on object keys; then each referenced recording is read ONCE (SHA-256
verified while spooling) and every segment's channel span is decoded from it. The segments then go
to the batcher together (all or none) and the handler thread waits for their futures. A call that
ends early (cancelled, deadline) cancels its segments still in the queue.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, as_completed
from dataclasses import dataclass

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callscribe.asr.batching import Batcher, Job
from callscribe.asr.engines.base import AsrInput, AsrOutput, Hotword, InferOptions
from callscribe.asr.hotwords import HotwordCorrector
from callscribe.asr.pool import ReplicaPool
from callscribe.audio.decode import AudioClips, pcm16_to_float32
from callscribe.audio.policy import check_raw_format
from callscribe.audio.source import AudioSource, check_ref
from callscribe.kit.errors import Cancelled, DomainError, ErrorKind, InvalidArgument, Unavailable
from callscribe.kit.interceptors import caller_tenant
from callscribe.kit.limits import MAX_HOTWORD_CHARS, MAX_HOTWORDS
from callscribe.kit.names import LANGUAGE_NAMES, LANGUAGES
from callscribe.storage.location import ObjectRef
from callscribe.v1 import asr_pb2 as pb
from callscribe.v1 import asr_pb2_grpc
from callscribe.v1 import common_pb2 as c

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_ENGINES = {pb.ASR_ENGINE_FUNASR: "funasr", pb.ASR_ENGINE_WHISPER: "whisper"}


class InferenceFailed(DomainError):
    """The engine failed on this segment alone (after the batch was split down to it)."""

    kind = ErrorKind.INTERNAL


class AsrMetrics:
    """Prometheus series of the ASR; also the batcher's observer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth_gauge = Gauge(
            "callscribe_asr_queue_depth", "segments waiting for a replica (the autoscaling signal)", registry=registry
        )
        self.batch_size = Histogram(
            "callscribe_asr_batch_size",
            "segments per batch handed to a replica",
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.inference_seconds = Histogram(
            "callscribe_asr_inference_seconds",
            "seconds per engine call (one batch, or a half of a failed one)",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.audio_seconds = Counter("callscribe_asr_audio_seconds", "seconds of speech transcribed", registry=registry)
        self.segments = Counter(
            "callscribe_asr_segments", "segments transcribed and answered", ["engine"], registry=registry
        )
        self.errors = Counter("callscribe_asr_errors", "refused or failed requests", ["reason"], registry=registry)

    # BatchObserver
    def queue_depth(self, depth: int) -> None:
        self.queue_depth_gauge.set(depth)

    def batch_formed(self, size: int) -> None:
        self.batch_size.observe(size)

    def inference(self, size: int, seconds: float, audio_seconds: float, ok: bool) -> None:
        self.inference_seconds.observe(seconds)
        if ok:
            self.audio_seconds.inc(audio_seconds)


@dataclass(frozen=True)
class Prepared:
    """A validated request: one job per segment, in request order."""

    jobs: list[Job]
    ids: list[str]
    offsets_ms: list[int]
    corrector: HotwordCorrector | None


@dataclass(frozen=True)
class _Span:
    index: int
    channel: int
    start_ms: int
    end_ms: int


class AsrServicer(asr_pb2_grpc.AsrServiceServicer):
    def __init__(
        self,
        pool: ReplicaPool,
        batcher: Batcher,
        source: AudioSource | None,
        *,
        engine: str,
        model: str,
        default_language: str,
        max_segment_seconds: float,
        hotword_correction: bool,
        buckets: tuple[str, ...],
        metrics: AsrMetrics,
    ) -> None:
        self._pool = pool
        self._batcher = batcher
        self._source = source
        self._engine = engine
        self._model = model
        self._default_language = default_language
        self._max_segment_ms = int(max_segment_seconds * 1000)
        self._hotword_correction = hotword_correction
        self._buckets = buckets
        self._metrics = metrics

    # ------------------------------------------------------------------ RPCs

    def Transcribe(self, request: pb.TranscribeRequest, context: grpc.ServicerContext) -> pb.TranscribeResponse:
        with self._counted():
            prepared, futures = self._start(request, context)
            results = [self._result(i, future, prepared) for i, future in enumerate(futures)]
            return pb.TranscribeResponse(results=results)

    def TranscribeStream(
        self, request: pb.TranscribeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SegmentResult]:
        with self._counted():
            prepared, futures = self._start(request, context)
            index = {id(f): i for i, f in enumerate(futures)}
            for future in as_completed(futures):
                yield self._result(index[id(future)], future, prepared)

    # ------------------------------------------------------------------ steps

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        try:
            yield
        except DomainError as exc:
            self._metrics.errors.labels(exc.kind.name.lower()).inc()
            raise
        except Exception:
            self._metrics.errors.labels("internal").inc()
            raise

    def _start(
        self, request: pb.TranscribeRequest, context: grpc.ServicerContext
    ) -> tuple[Prepared, list[Future[AsrOutput]]]:
        tenant = caller_tenant()
        if not self._pool.ready:
            raise Unavailable("the ASR model replicas are still loading; retry shortly")
        prepared = self._prepare(request, tenant.name)
        futures = self._batcher.submit(prepared.jobs)

        def cancel_all() -> None:  # runs when the call ends, however: a no-op for finished futures
            for future in futures:
                future.cancel()

        if not context.add_callback(cancel_all):
            cancel_all()
            raise Cancelled("the call ended before its segments were queued")
        return prepared, futures

    def _result(self, index: int, future: Future[AsrOutput], prepared: Prepared) -> pb.SegmentResult:
        segment_id = prepared.ids[index]
        try:
            output = future.result()
        except CancelledError as exc:
            raise Cancelled(f"segment {index} ({segment_id!r}) was cancelled: the call ended") from exc
        except DomainError as exc:
            raise type(exc)(f"segment {index} ({segment_id!r}): {exc.message}") from exc
        except Exception as exc:  # noqa: BLE001 - any engine failure becomes this segment's status
            raise InferenceFailed(
                f"segment {index} ({segment_id!r}) could not be transcribed by the {self._engine} engine "
                f"({type(exc).__name__}: {exc}); the other segments of the batch were not affected"
            ) from exc
        text = output.text
        if prepared.corrector is not None and text:
            text, replacements = prepared.corrector.correct(text)
            if replacements:
                log.debug(
                    "segment %d: hotword corrections %s",
                    index,
                    ", ".join(f"{r.original!r}->{r.replacement!r}" for r in replacements),
                )
        offset = prepared.offsets_ms[index]
        engine = self._pool.engine
        self._metrics.segments.labels(engine.name).inc()
        return pb.SegmentResult(
            segment_id=segment_id,
            index=index,
            text=text,
            language=LANGUAGES.get(output.language, c.LANGUAGE_UNSPECIFIED),
            confidence=output.confidence,
            avg_logprob=output.avg_logprob,
            tokens=[
                c.Token(text=t.text, start_ms=t.start_ms + offset, end_ms=t.end_ms + offset, confidence=t.confidence)
                for t in output.tokens
            ],
            engine=engine.name,
            model=engine.model,
        )

    # ------------------------------------------------------------------ validation and audio

    def _prepare(self, request: pb.TranscribeRequest, tenant: str) -> Prepared:
        options = self._options(request)
        segments = request.segments
        if not segments:
            raise InvalidArgument("segments is empty: send at least one segment to transcribe")
        if len(segments) > self._batcher.max_queue:
            raise InvalidArgument(
                f"{len(segments)} segments in one request: this server queues at most {self._batcher.max_queue}; "
                "split the request"
            )
        samples: list[np.ndarray | None] = [None] * len(segments)
        by_ref: dict[tuple[ObjectRef, str], list[_Span]] = {}  # (object, raw_format): spans
        for i, seg in enumerate(segments):
            which = seg.WhichOneof("audio")
            where = f"segment {i} ({seg.segment_id!r})"
            if which == "pcm":
                try:
                    audio = pcm16_to_float32(seg.pcm.data, seg.pcm.sample_rate_hz)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"{where}: {exc.message}") from exc
                self._check_length(where, len(audio) * 1000 // SAMPLE_RATE)
                samples[i] = audio
            elif which == "object":
                if seg.end_ms <= seg.start_ms:
                    raise InvalidArgument(
                        f"{where}: [start_ms, end_ms) = [{seg.start_ms}, {seg.end_ms}) is empty: "
                        "end_ms must be after start_ms"
                    )
                self._check_length(where, seg.end_ms - seg.start_ms)
                o = seg.object
                ref = ObjectRef(o.bucket, o.key, o.version_id, o.sha256.lower())
                try:
                    check_ref(ref, tenant, self._buckets)
                    check_raw_format(o.raw_format)
                except DomainError as exc:
                    raise type(exc)(f"{where}: {exc.message}") from exc
                by_ref.setdefault((ref, o.raw_format), []).append(_Span(i, seg.channel, seg.start_ms, seg.end_ms))
            else:
                raise InvalidArgument(f"{where}: set its audio: object (a stored recording) or pcm (16 kHz PCM)")
        for (ref, raw_format), spans in by_ref.items():
            for span, audio in zip(spans, self._cut(ref, raw_format, spans), strict=True):
                samples[span.index] = audio
        # Batches never mix tenants, and packed windows never mix calls or channels: text can only
        # land on a segment of the same call and speaker.
        request_id = uuid.uuid4().hex
        jobs = []
        for seg, audio in zip(segments, samples, strict=True):
            assert audio is not None
            pack_group = (tenant, request_id, seg.WhichOneof("audio"), seg.object.key, seg.channel)
            jobs.append(Job(AsrInput(audio, pack_group=pack_group), options, group=tenant))
        corrector = (
            HotwordCorrector(options.hotwords, options.language)
            if self._hotword_correction and options.hotwords
            else None
        )
        return Prepared(jobs, [s.segment_id for s in segments], [s.start_ms for s in segments], corrector)

    def _check_length(self, where: str, duration_ms: int) -> None:
        if duration_ms <= 0:
            raise InvalidArgument(f"{where}: the segment is empty (0 ms of audio)")
        if duration_ms > self._max_segment_ms:
            raise InvalidArgument(
                f"{where}: {duration_ms / 1000:.1f} s is longer than the {self._max_segment_ms / 1000:.0f} s "
                "a segment may last: split it (the VAD caps its segments)"
            )

    def _cut(self, ref: ObjectRef, raw_format: str, spans: list[_Span]) -> list[np.ndarray]:
        """Read the recording once, check every span, then decode each (in file order). `raw_format`:
        how to read a headerless recording (ObjectRef.raw_format), "" for all others."""
        if self._source is None:
            raise Unavailable("this ASR has no S3 configured: send pcm segments, or set ASR_S3_ENDPOINT")
        out: dict[int, np.ndarray] = {}
        with self._source.stored(ref) as path, AudioClips(path, raw_format=raw_format) as clips:
            for span in spans:
                try:
                    clips.check_span(span.channel, span.start_ms, span.end_ms)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"segment {span.index}: {exc.message}") from exc
            for span in sorted(spans, key=lambda s: s.start_ms):
                try:
                    out[span.index] = clips.clip(span.channel, span.start_ms, span.end_ms)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"segment {span.index}: {exc.message}") from exc
        return [out[span.index] for span in spans]

    def _options(self, request: pb.TranscribeRequest) -> InferOptions:
        engine = self._pool.engine
        if request.engine != pb.ASR_ENGINE_UNSPECIFIED:
            wanted = _ENGINES.get(request.engine)
            if wanted is None:
                raise InvalidArgument(f"engine {request.engine} is not a known AsrEngine value")
            if wanted != engine.name:
                raise InvalidArgument(
                    f"engine {wanted} is not served here: this ASR runs {engine.name} ({engine.model}); "
                    "leave engine unspecified or send the request to a pool running that engine"
                )
        if request.model and request.model not in (self._model, engine.model):
            raise InvalidArgument(
                f"model {request.model!r} is not loaded here: this ASR runs {engine.name} {self._model!r}; "
                "leave model empty for the server's model"
            )
        if request.language == c.LANGUAGE_UNSPECIFIED:
            language = self._default_language
        elif request.language in LANGUAGE_NAMES:
            language = LANGUAGE_NAMES[request.language]
        else:
            raise InvalidArgument(f"language {request.language} is not a known Language value (AUTO, ZH or EN)")
        hotwords = []
        for h in request.hotwords:
            text = h.text.strip()
            if not text:
                continue
            if len(text) > MAX_HOTWORD_CHARS:
                raise InvalidArgument(f"hotword {text[:20]!r}... is over {MAX_HOTWORD_CHARS} characters")
            if not math.isfinite(h.weight) or h.weight < 0:
                raise InvalidArgument(f"hotword {text!r} has weight {h.weight}: use 0 (default) or a positive boost")
            hotwords.append(Hotword(text, float(h.weight)))
        if len(hotwords) > MAX_HOTWORDS:
            raise InvalidArgument(f"{len(hotwords)} hotwords: at most {MAX_HOTWORDS} per request")
        return InferOptions(
            language=language, hotwords=tuple(dict.fromkeys(hotwords)), word_timestamps=request.word_timestamps
        )
