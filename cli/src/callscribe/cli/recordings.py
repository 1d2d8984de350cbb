"""`callscribe upload | list | hold | segments`: talk to IngestService (`status` is in status.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from callscribe.cli.connect import (
    CliError,
    Target,
    add_connection_args,
    auth_metadata,
    channel,
    check_recording_id,
    resolve,
)
from callscribe.cli.messages import flag_names, unreachable
from callscribe.cli.status import add_status_parser, lock_text
from callscribe.cli.uploads import Upload, upload_messages, upload_method
from callscribe.kit.names import LANGUAGES
from callscribe.kit.tenants import ZH_SCRIPTS
from callscribe.kit.text import shown
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc, vad_pb2_grpc
from callscribe.v1 import vad_pb2 as vad_pb

_LAYOUTS = {
    None: c.CHANNEL_LAYOUT_UNSPECIFIED,
    "mono": c.CHANNEL_LAYOUT_MONO,
    "left": c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT,
    "right": c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT,
}


def add_recording_parsers(subparsers: Any) -> None:
    up = subparsers.add_parser("upload", help="archive recordings (WORM + SHA-256) and queue them")
    up.add_argument("files", nargs="+", type=Path, metavar="FILE")
    up.add_argument("--call-id", default=None, help="call id (one file only; default: the file name)")
    up.add_argument("--agent", default="unassigned", help="agent id")
    up.add_argument("--customer", default="", help="customer id")
    up.add_argument(
        "--started-at",
        default=None,
        metavar="ISO-8601",
        help="when the call started, with its offset: 2024-05-01T09:30:00+08:00 or 2024-05-01T01:30:00Z",
    )
    up.add_argument(
        "--agent-channel",
        choices=["left", "right", "mono"],
        default=None,
        help="which channel is the agent (stereo files need left or right)",
    )
    up.add_argument("--language", choices=sorted(LANGUAGES), default="auto")
    up.add_argument(
        "--zh-script",
        choices=ZH_SCRIPTS,
        default="",
        help="script of these calls' Chinese normalized text (default: the tenant's setting)",
    )
    up.add_argument("--hotword", action="append", default=[], metavar="W", help="domain term (repeatable)")
    up.add_argument("--label", action="append", default=[], metavar="K=V", help="free label (repeatable)")
    add_connection_args(up)
    up.set_defaults(func=upload)

    add_status_parser(subparsers)

    ls = subparsers.add_parser("list", help="list recordings of the tenant")
    ls.add_argument("--page-size", type=int, default=50)
    ls.add_argument("--all", action="store_true", help="follow every page")
    add_connection_args(ls)
    ls.set_defaults(func=list_recordings)

    seg = subparsers.add_parser("segments", help="speech segments per speaker of a recording (VAD service)")
    seg.add_argument("recording_id")
    seg.add_argument("--engine", choices=["fsmn", "silero"], default="fsmn")
    add_connection_args(seg)
    seg.add_argument("--vad-address", default=None, help="VAD HOST:PORT (default: the local stack's)")
    seg.set_defaults(func=segments)

    hold = subparsers.add_parser("hold", help="set or release a legal hold")
    hold.add_argument("recording_id")
    hold.add_argument("state", choices=["on", "off"])
    hold.add_argument("--reason", default="", help="why (a case number, ...): recorded in the access trail")
    add_connection_args(hold)
    hold.set_defaults(func=legal_hold)


def _stub(args: argparse.Namespace) -> tuple[ingest_pb2_grpc.IngestServiceStub, Target]:
    target = resolve(args, "ingest")
    return ingest_pb2_grpc.IngestServiceStub(channel(target, args.ca_cert)), target


def parse_started_at(text: str) -> Timestamp:
    """--started-at: an ISO 8601 time with its offset; a time without one is refused (whose 09:30 would it be?)."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--started-at {text!r}: expected an ISO 8601 time with its offset, "
            "such as 2024-05-01T09:30:00+08:00 or 2024-05-01T01:30:00Z"
        ) from None
    if when.utcoffset() is None:
        raise CliError(
            f"--started-at {text!r} has no time zone: add an offset like +08:00 or Z (e.g. {text.strip()}+08:00)"
        )
    stamp = Timestamp()
    stamp.FromDatetime(when.astimezone(dt.UTC))
    return stamp


def _base_metadata(args: argparse.Namespace) -> c.RecordingMetadata:
    """What every file of this upload shares; raises CliError on a bad flag before anything is sent."""
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    meta = c.RecordingMetadata(
        tenant=args.tenant,
        agent_id=args.agent,
        customer_id=args.customer,
        channel_layout=_LAYOUTS[args.agent_channel],
        language=LANGUAGES[args.language],
        hotwords=[c.Hotword(text=w) for w in args.hotword],
        labels=labels,
        zh_script=args.zh_script,
    )
    if args.started_at is not None:
        meta.started_at.CopyFrom(parse_started_at(args.started_at))
    return meta


def _metadata(base: c.RecordingMetadata, call_id: str | None, path: Path) -> c.RecordingMetadata:
    meta = c.RecordingMetadata()
    meta.CopyFrom(base)
    meta.call_id = call_id or path.stem
    meta.filename = path.name
    return meta


def send_file(
    upload: Upload, target: Target, meta: c.RecordingMetadata, path: Path, quiet: bool
) -> pb.UploadRecordingResponse:
    """Stream one file to UploadRecording (`upload_method`) with a progress bar; raises grpc.RpcError when refused."""
    with tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=path.name,
        leave=False,
        disable=quiet or not sys.stderr.isatty(),
    ) as bar:
        return upload(upload_messages(meta, path, bar.update), metadata=auth_metadata(target))


def _fatal_for_the_batch(exc: grpc.RpcError) -> bool:
    """A refused token or an unreachable server refuses every file alike: stop rather than repeat it per file."""
    return exc.code() == grpc.StatusCode.UNAUTHENTICATED or unreachable(exc)


def upload(args: argparse.Namespace) -> int:
    if args.call_id and len(args.files) > 1:
        raise CliError("--call-id names one call: upload one file at a time with it")
    base = _base_metadata(args)
    target = resolve(args, "ingest")
    upload_call = upload_method(channel(target, args.ca_cert))
    total = len(args.files)
    results: list[dict[str, Any]] = []
    for n, path in enumerate(args.files, start=1):
        row: dict[str, Any] = {"file": str(path)}
        if not path.is_file():
            row |= {"outcome": "refused", "reason": "no such file"}
        else:
            try:
                ack = send_file(upload_call, target, _metadata(base, args.call_id, path), path, args.json)
            except grpc.RpcError as exc:
                if _fatal_for_the_batch(exc):
                    _report(results, args.json, not_sent=total - n + 1)
                    raise
                row |= {"outcome": "refused", "reason": f"{exc.code().name}: {flag_names(exc.details() or '')}"}
            else:
                row |= {
                    "outcome": "duplicate" if ack.duplicate else "archived",
                    "recording_id": ack.recording_id,
                    "sha256": ack.sha256,
                    "duplicate": ack.duplicate,
                    "enqueued": ack.enqueued,
                    "version_id": ack.object.version_id,
                    "retain_until": ack.lock.retain_until.ToJsonString(),
                    "lock_mode": c.LockMode.Name(ack.lock.mode),
                }
        results.append(row)
        if not args.json:
            print(f"[{n}/{total}] {_file_line(row)}", flush=True)
    _report(results, args.json)
    return 1 if any(row["outcome"] == "refused" for row in results) else 0


def _file_line(row: dict[str, Any]) -> str:
    if row["outcome"] == "refused":
        return f"{shown(row['file'])} → refused: {shown(row['reason'])}"
    outcome = row["outcome"]
    if outcome == "archived" and not row["enqueued"]:
        outcome += ", not queued yet: the worker's reconciliation queues it"
    return f"{shown(row['file'])} → {row['recording_id']} ({outcome})"


def _report(results: list[dict[str, Any]], as_json: bool, not_sent: int = 0) -> None:
    """The JSON rows, or the summary table: how many archived, duplicates, refused (each with its reason)."""
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    refused = [row for row in results if row["outcome"] == "refused"]
    counts = [
        ("archived", sum(row["outcome"] == "archived" for row in results)),
        ("duplicates", sum(row["outcome"] == "duplicate" for row in results)),
        ("refused", len(refused)),
    ]
    if not_sent:
        counts.append(("not sent", not_sent))
    print()
    for label, count in counts:
        print(f"{label:<11} {count}")
    width = max((len(row["file"]) for row in refused), default=0)
    for row in refused:
        print(f"  {shown(row['file']):<{width}}  {shown(row['reason'])}")


def list_recordings(args: argparse.Namespace) -> int:
    stub, target = _stub(args)
    token, rows = "", []
    while True:
        request = pb.ListRecordingsRequest(tenant=args.tenant, page_size=args.page_size, page_token=token)
        page = stub.ListRecordings(request, metadata=auth_metadata(target))
        rows.extend(page.recordings)
        token = page.next_page_token
        if not token or not args.all:
            break
    if args.json:
        print(
            json.dumps([MessageToDict(r, preserving_proto_field_name=True) for r in rows], indent=2, ensure_ascii=False)
        )
        return 0
    for r in rows:
        print(
            f"{shown(r.recording_id)}  {r.archived_at.ToJsonString()}  call={shown(r.metadata.call_id)}  "
            f"{r.audio.duration_ms / 1000:.1f}s  {c.PipelineState.Name(r.state)}"
        )
    if token:
        print("(more: pass --all)", file=sys.stderr)
    return 0


def legal_hold(args: argparse.Namespace) -> int:
    check_recording_id(args.recording_id)
    stub, target = _stub(args)
    request = pb.SetLegalHoldRequest(
        tenant=args.tenant, recording_id=args.recording_id, legal_hold=args.state == "on", reason=args.reason
    )
    reply = stub.SetLegalHold(request, metadata=auth_metadata(target))
    if args.json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
    else:
        print(f"{reply.recording_id}: {lock_text(reply.lock)}")
    return 0


_VAD_ENGINES = {"fsmn": vad_pb.VAD_ENGINE_FSMN, "silero": vad_pb.VAD_ENGINE_SILERO}


def detect_speech(vad: Any, target: Target, rec: pb.Recording, engine: str = "fsmn") -> Any:
    """Ask the VAD service for the segments of an archived recording (it verifies the SHA-256)."""
    request = vad_pb.DetectSpeechRequest(
        object=rec.object, channel_layout=rec.metadata.channel_layout,
        options=vad_pb.VadOptions(engine=_VAD_ENGINES[engine]),
    )  # fmt: skip
    return vad.DetectSpeech(request, metadata=auth_metadata(target), timeout=600)


def format_segments(result: Any) -> str:
    lines = []
    for seg in result.segments:
        role = c.SpeakerRole.Name(seg.role).removeprefix("SPEAKER_ROLE_").lower()
        lines.append(f"  {seg.start_ms / 1000:7.2f}-{seg.end_ms / 1000:7.2f}s  {role}")
    totals = ", ".join(
        f"{c.SpeakerRole.Name(ch.role).removeprefix('SPEAKER_ROLE_').lower()} {ch.speech_ms / 1000:.1f}s"
        for ch in result.channels
    )
    lines.append(f"  speech: {totals} of {result.duration_ms / 1000:.1f}s")
    return "\n".join(lines)


def segments(args: argparse.Namespace) -> int:
    check_recording_id(args.recording_id)
    stub, target = _stub(args)
    rec = stub.GetRecording(
        pb.GetRecordingRequest(tenant=args.tenant, recording_id=args.recording_id), metadata=auth_metadata(target)
    )
    vad_target = resolve(argparse.Namespace(**{**vars(args), "address": args.vad_address}), "vad")
    vad = vad_pb2_grpc.VadServiceStub(channel(vad_target, args.ca_cert))
    result = detect_speech(vad, vad_target, rec, args.engine)
    if args.json:
        print(json.dumps(MessageToDict(result, preserving_proto_field_name=True), indent=2))
    else:
        print(format_segments(result))
    return 0
