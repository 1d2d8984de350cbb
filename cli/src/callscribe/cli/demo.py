"""`callscribe demo`: sample calls through the local stack, and WORM shown at work."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import grpc
from minio import Minio
from minio.error import S3Error

from callscribe.cli.connect import CliError, Target, auth_metadata, channel
from callscribe.cli.recordings import detect_speech, format_segments, send_file
from callscribe.cli.samples import HOURS_CALL_EN, REFUND_CALL_EN, REFUND_CALL_ZH, ToolMissing, synthesize_call
from callscribe.stack import stack
from callscribe.v1 import asr_pb2 as asr_pb
from callscribe.v1 import asr_pb2_grpc, ingest_pb2_grpc, vad_pb2_grpc
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as ingest_pb

TENANT = "acme"
SAMPLES = (
    # file, turns, language, agent side, telephone (8 kHz mu-law)
    ("refund-en.wav", REFUND_CALL_EN, "en", "left", False),
    ("refund-zh-telephone.wav", REFUND_CALL_ZH, "zh", "right", True),
    ("hours-en-mono.wav", HOURS_CALL_EN, "en", "mono", False),
)
_LAYOUT = {
    "left": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
    "right": c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
    "mono": c.CHANNEL_LAYOUT_MONO,
}
_LANG = {"en": c.LANGUAGE_EN, "zh": c.LANGUAGE_ZH}


def add_demo_parser(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="push sample calls through the running local stack")
    demo.add_argument("--home", type=Path, default=None, help="local stack directory (default: ./.stack)")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    state = stack.status(args.home)
    if not state.get("running") or "ingest" not in state.get("grpc", {}):
        raise CliError("the local stack is not running: start it with 'callscribe stack up' (or 'make demo')")
    target = Target(state["grpc"]["ingest"], state["tenants"][TENANT], TENANT)
    stub = ingest_pb2_grpc.IngestServiceStub(channel(target, None))
    files = _generate(Path(state["home"]) / "demo")
    print(f"\n== Uploading {len(files)} sample calls as tenant {TENANT!r} to ingest at {target.address}")
    acks = [_upload(stub, target, path, spec) for path, spec in files]
    print("\n== Re-sending the first call: idempotent, nothing new is stored")
    again = _upload(stub, target, *files[0])
    print(f"   duplicate={again.duplicate}  same id={again.recording_id == acks[0].recording_id}")
    _show_worm(state, acks[0])
    if "vad" in state.get("grpc", {}):
        _show_segments(state, target, stub, acks)
    print(
        "\nNext: 'callscribe status <id> --tenant acme', 'callscribe list --tenant acme', "
        "'callscribe stack status', and 'callscribe stack down' (or 'make demo-down') when done."
    )
    return 0


def _generate(directory: Path) -> list[tuple[Path, tuple]]:
    print(f"== Generating sample calls with espeak-ng and sox in {directory}")
    files = []
    for name, turns, language, side, telephone in SAMPLES:
        path = directory / name
        if not path.exists():
            try:
                synthesize_call(path, list(turns), language, agent_side=side, telephone=telephone)
            except ToolMissing as exc:
                raise CliError(str(exc)) from exc
        files.append((path, (name, turns, language, side, telephone)))
        print(f"   {name}: {language}, {'telephone 8 kHz mu-law' if telephone else '16 kHz PCM'}, agent {side}")
    return files


def _upload(stub: ingest_pb2_grpc.IngestServiceStub, target: Target, path: Path, spec: tuple) -> Any:
    name, _, language, side, _ = spec
    meta = c.RecordingMetadata(
        call_id=Path(name).stem,
        agent_id="agent-dana",
        channel_layout=_LAYOUT[side],
        language=_LANG[language],
        hotwords=[c.Hotword(text="refund policy"), c.Hotword(text="退费政策")],
        filename=name,
        labels={"source": "demo"},
    )
    try:
        ack = send_file(stub, target, meta, path, quiet=False)
    except grpc.RpcError as exc:
        raise CliError(f"upload of {name} refused: {exc.code().name}: {exc.details()}") from exc
    print(
        f"   {name}: id={ack.recording_id} sha256={ack.sha256[:16]}... {ack.audio.codec} "
        f"{ack.audio.sample_rate_hz} Hz x{ack.audio.channels} {ack.audio.duration_ms / 1000:.1f}s "
        f"lock={c.LockMode.Name(ack.lock.mode)} until {ack.lock.retain_until.ToJsonString()[:10]} "
        f"duplicate={ack.duplicate}"
    )
    return ack


def _show_segments(state: dict, target: Target, stub: ingest_pb2_grpc.IngestServiceStub, acks: list) -> None:
    vad_target = Target(state["grpc"]["vad"], target.token, target.tenant)
    vad = vad_pb2_grpc.VadServiceStub(channel(vad_target, None))
    for ack in acks:
        rec = stub.GetRecording(
            ingest_pb.GetRecordingRequest(recording_id=ack.recording_id), metadata=auth_metadata(target)
        )
        print(f"\n== Speech segments of {rec.metadata.call_id} (VAD service, SHA-256 verified on read)")
        found = detect_speech(vad, vad_target, rec)
        print(format_segments(found))
        if "asr" in state.get("grpc", {}):
            _show_transcript(Target(state["grpc"]["asr"], target.token, target.tenant), rec, found)


def _show_transcript(asr_target: Target, rec: Any, found: Any) -> None:
    asr = asr_pb2_grpc.AsrServiceStub(channel(asr_target, None))
    request = asr_pb.TranscribeRequest(
        segments=[
            asr_pb.AsrSegment(segment_id=str(i), object=rec.object, start_ms=seg.start_ms, end_ms=seg.end_ms,
                              channel=seg.channel, role=seg.role)
            for i, seg in enumerate(found.segments)
        ],
        language=rec.metadata.language, hotwords=rec.metadata.hotwords,
    )  # fmt: skip
    print(f"   transcript (ASR service, {len(request.segments)} segments batched):")
    reply = asr.Transcribe(request, metadata=auth_metadata(asr_target), timeout=900)
    for seg, result in zip(found.segments, reply.results, strict=True):
        role = c.SpeakerRole.Name(seg.role).removeprefix("SPEAKER_ROLE_").lower()
        print(f"   [{seg.start_ms / 1000:6.1f}s] {role:>8}: {result.text.strip()}")


def _show_worm(state: dict, ack: Any) -> None:
    s3 = state["s3"]
    client = Minio(
        s3["endpoint"].split("://", 1)[1],
        access_key=s3["access_key"],
        secret_key=s3["secret_key"],
        secure=s3["endpoint"].startswith("https"),
    )
    ref = ack.object
    print(f"\n== WORM: trying to delete the locked version {ref.version_id} of {ref.key}")
    try:
        client.remove_object(ref.bucket, ref.key, version_id=ref.version_id)
    except S3Error as exc:
        print(f"   refused by S3: {exc.code} (Object Lock {c.LockMode.Name(ack.lock.mode)})")
    else:
        raise CliError("S3 deleted a locked version: the bucket is NOT enforcing Object Lock")
    stat = client.stat_object(ref.bucket, ref.key, version_id=ref.version_id)
    print(f"   still there: {stat.size} bytes, x-amz-meta-sha256={(stat.metadata or {}).get('x-amz-meta-sha256')}")
