"""`callscribe status ID [--wait]`: a recording as a person reads it, and following it through the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from callscribe.cli.connect import Target, add_connection_args, auth_metadata, channel, check_recording_id, resolve
from callscribe.kit.text import shown
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

WAIT_POLL_S = 1.0  # how often `--wait` asks GetRecording
FINAL_STATES = (c.PIPELINE_STATE_DONE, c.PIPELINE_STATE_FAILED, c.PIPELINE_STATE_NOT_ANALYSABLE)
_STATE_WORDS = {
    c.PIPELINE_STATE_UNSPECIFIED: "unknown",
    c.PIPELINE_STATE_ARCHIVED: "archived (not queued yet)",
    c.PIPELINE_STATE_QUEUED: "queued",
    c.PIPELINE_STATE_VAD: "VAD",
    c.PIPELINE_STATE_ASR: "ASR",
    c.PIPELINE_STATE_INDEXING: "indexing",
    c.PIPELINE_STATE_DONE: "done",
    c.PIPELINE_STATE_FAILED: "FAILED",
    c.PIPELINE_STATE_NOT_ANALYSABLE: "archived, not analysable",
}
_LAYOUT_WORDS = {
    c.CHANNEL_LAYOUT_MONO: "mono",
    c.CHANNEL_LAYOUT_STEREO_AGENT_LEFT: "stereo, agent left",
    c.CHANNEL_LAYOUT_STEREO_AGENT_RIGHT: "stereo, agent right",
}


def add_status_parser(subparsers: Any) -> None:
    st = subparsers.add_parser("status", help="a recording's metadata, lock and pipeline state (--wait: follow it)")
    st.add_argument("recording_id")
    st.add_argument(
        "--wait",
        action="store_true",
        help="poll every second with a progress bar until the pipeline is done (exit 0) or failed (exit 1)",
    )
    add_connection_args(st)
    st.set_defaults(func=status)


def state_word(state: int) -> str:
    return _STATE_WORDS.get(state, f"state {state}")


def _when(stamp: Timestamp) -> str:
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else ""


def _duration(ms: int) -> str:
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
    return f"{clock} ({ms / 1000:.1f} s)"


def _rate(hz: int) -> str:
    return f"{hz} Hz" if hz else ""


def _seconds_left(eta: float) -> str:
    if eta >= 120:
        return f"about {eta / 60:.0f} min left"
    return f"about {eta:.0f} s left"


def progress_text(progress: pb.StageProgress) -> str:
    """"ASR 30% (chunk 4/10, 93 of 310 s of speech), about 72 s left"; "" when nothing is measured yet."""
    if progress.total_ms <= 0:
        return ""
    share = min(100, max(0, 100 * progress.done_ms // progress.total_ms))
    what = "speech" if progress.stage == c.PIPELINE_STATE_ASR else "audio"
    inside = f"{progress.done_ms / 1000:.0f} of {progress.total_ms / 1000:.0f} s of {what}"
    if progress.chunks_total:
        # chunks_done are finished; the one being sent is the next (as the worker's own detail counts them).
        inside = f"chunk {min(progress.chunks_done + 1, progress.chunks_total)}/{progress.chunks_total}, {inside}"
    text = f"{state_word(progress.stage)} {share}% ({inside})"
    if progress.eta_seconds > 0:
        text += f", {_seconds_left(progress.eta_seconds)}"
    return text


def _progress_of(rec: pb.Recording) -> pb.StageProgress | None:
    if rec.state in FINAL_STATES or not rec.HasField("progress") or rec.progress.stage != rec.state:
        return None  # a stage's progress says nothing once the recording has moved on
    return rec.progress


def state_line(rec: pb.Recording) -> str:
    """The state with its detail, or the progress inside the stage when there is one."""
    progress = _progress_of(rec)
    text = progress_text(progress) if progress is not None else ""
    detail = shown(rec.state_detail.strip())
    if not text:
        return f"{state_word(rec.state)} — {detail}" if detail else state_word(rec.state)
    # The worker's detail for a chunk is the progress line in other words; a wait or a retry is news.
    return f"{text} — {detail}" if detail and not detail.startswith("chunk ") else text


def lock_text(lock: c.LockInfo) -> str:
    mode = c.LockMode.Name(lock.mode).removeprefix("LOCK_MODE_") if lock.mode in c.LockMode.values() else "?"
    until = _when(lock.retain_until) or "(no date)"
    return f"{mode} until {until}, legal hold {'on' if lock.legal_hold else 'off'}"


_INTEGRITY_WORDS = {c.INTEGRITY_OK: "OK", c.INTEGRITY_MISMATCH: "MISMATCH", c.INTEGRITY_MISSING: "MISSING"}


def tier_text(rec: pb.Recording) -> str:
    if rec.tier == c.STORAGE_TIER_COLD:
        return f"cold (moved {_when(rec.moved_at)})" if rec.HasField("moved_at") else "cold"
    return "hot" if rec.tier == c.STORAGE_TIER_HOT else ""


def audit_text(rec: pb.Recording) -> str:
    """The integrity audit's last finding: "OK at <when>", or the failure and what was seen."""
    if rec.integrity == c.INTEGRITY_UNSPECIFIED:
        return "not audited yet" if rec.object.key else ""
    word = _INTEGRITY_WORDS.get(rec.integrity, "?")
    text = f"{word} at {_when(rec.verified_at)}"
    return text if rec.integrity == c.INTEGRITY_OK else f"{text}: {shown(rec.integrity_detail)}"


def format_tombstone(rec: pb.Recording) -> str:
    t = rec.tombstone
    facts = [
        ("state", f"expired: {shown(t.reason)}, deleted {_when(t.deleted_at)}"),
        ("sha256", t.sha256),
        ("archived at", _when(t.archived_at)),
        ("retained to", _when(t.retain_until)),
        ("deleted", f"{t.versions_deleted} object versions, in every tier; this tombstone is kept"),
    ]
    head = f"recording {shown(rec.recording_id)}" + (f"  tenant {shown(rec.tenant)}" if rec.tenant else "")
    return "\n".join([head, *(f"  {name:<12} {value}" for name, value in facts if value)])


def format_recording(rec: pb.Recording) -> str:
    if rec.HasField("tombstone"):
        return format_tombstone(rec)
    meta, audio, ref = rec.metadata, rec.audio, rec.object
    language = c.Language.Name(meta.language).removeprefix("LANGUAGE_").lower() if meta.language else "auto"
    layout = _LAYOUT_WORDS.get(meta.channel_layout, "")
    channels = " ".join(part for part in (str(audio.channels or ""), f"({layout})" if layout else "") if part)
    facts = [
        ("state", state_line(rec)),
        ("call", shown(meta.call_id)),
        ("agent", shown(meta.agent_id)),
        ("customer", shown(meta.customer_id)),
        ("started at", _when(meta.started_at) or "(not given)"),
        ("duration", _duration(audio.duration_ms) if audio.duration_ms else ""),
        ("audio", " ".join(part for part in (audio.container, audio.codec, _rate(audio.sample_rate_hz)) if part)),
        ("channels", channels),
        ("language", language),
        ("labels", ", ".join(f"{shown(k)}={shown(v)}" for k, v in sorted(meta.labels.items()))),
        ("file", shown(meta.filename)),
        ("lock", lock_text(rec.lock)),
        ("tier", tier_text(rec)),
        ("object", f"{ref.bucket}/{ref.key}" if ref.key else ""),
        ("version", ref.version_id),
        ("sha256", ref.sha256),
        ("archived at", _when(rec.archived_at)),
        ("last audit", audit_text(rec)),
        ("protection", protection_text(rec.protection)),
    ]
    head = f"recording {shown(rec.recording_id)}" + (f"  tenant {shown(rec.tenant)}" if rec.tenant else "")
    return "\n".join([head, *(f"  {name:<12} {value}" for name, value in facts if value)])


def protection_text(protection: pb.Protection) -> str:
    """How the recording is stored: encrypted (and erased), or as it came."""
    if not protection.encrypted:
        return ""  # stored as uploaded: no line
    text = f"encrypted at rest ({protection.scheme}), ciphertext sha256 {protection.stored_sha256}"
    if protection.erased:
        return "ERASED: its data key was destroyed; the locked ciphertext can never be decrypted. " + text
    if protection.metadata_unavailable:
        text += "; metadata not decryptable by this ingest (no KEK configured)"
    return text


def _stub(args: argparse.Namespace) -> tuple[ingest_pb2_grpc.IngestServiceStub, Target]:
    target = resolve(args, "ingest")
    return ingest_pb2_grpc.IngestServiceStub(channel(target, args.ca_cert)), target


def status(args: argparse.Namespace) -> int:
    check_recording_id(args.recording_id)
    stub, target = _stub(args)
    request = pb.GetRecordingRequest(tenant=args.tenant, recording_id=args.recording_id)
    rec = stub.GetRecording(request, metadata=auth_metadata(target))
    if args.wait:
        rec = wait(stub, target, request, rec)
    if args.json:
        print(json.dumps(MessageToDict(rec, preserving_proto_field_name=True), indent=2, ensure_ascii=False))
    else:
        print(format_recording(rec))
    if args.wait and rec.state in (c.PIPELINE_STATE_FAILED, c.PIPELINE_STATE_NOT_ANALYSABLE):
        what = "the pipeline failed" if rec.state == c.PIPELINE_STATE_FAILED else "archived, not analysable"
        print(f"callscribe status: {what}: {shown(rec.state_detail) or '(no reason recorded)'}", file=sys.stderr)
        return 1
    return 0


def wait(
    stub: ingest_pb2_grpc.IngestServiceStub, target: Target, request: pb.GetRecordingRequest, rec: pb.Recording
) -> pb.Recording:
    """Poll GetRecording every WAIT_POLL_S until DONE or FAILED; a bar per stage on a terminal (seconds of audio or
    speech done of the stage's total), else one line on stderr each time the state line changes."""
    on_terminal = sys.stderr.isatty()
    shown_stage: int | None = None
    last_line = ""
    with tqdm(total=None, file=sys.stderr, disable=not on_terminal, leave=False, bar_format=_NO_BAR) as bar:
        while rec.state not in FINAL_STATES:
            if on_terminal:
                shown_stage = _draw(bar, rec, shown_stage)
            else:
                line = state_line(rec)
                if line != last_line:
                    print(f"{rec.recording_id}: {line}", file=sys.stderr, flush=True)
                    last_line = line
            time.sleep(WAIT_POLL_S)
            rec = stub.GetRecording(request, metadata=auth_metadata(target))
    return rec


_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix} [{elapsed}]"
_NO_BAR = "{desc}{postfix} [{elapsed}]"  # a stage without measured progress: the time spent in it


def _draw(bar: tqdm, rec: pb.Recording, shown_stage: int | None) -> int:
    """Move the bar to `rec`: a new stage resets it (its total is that stage's), the description is the stage."""
    progress = _progress_of(rec)
    total = progress.total_ms / 1000 if progress is not None and progress.total_ms > 0 else None
    bar.bar_format = _BAR if total is not None else _NO_BAR
    if rec.state != shown_stage:
        bar.set_description_str(state_word(rec.state), refresh=False)
        bar.set_postfix_str("", refresh=False)
        bar.total = total
        bar.reset(total=total)
    bar.total = total
    if progress is not None:
        bar.n = progress.done_ms / 1000
        postfix = []
        if progress.chunks_total:
            postfix.append(f"chunk {min(progress.chunks_done + 1, progress.chunks_total)}/{progress.chunks_total}")
        if progress.eta_seconds > 0:
            postfix.append(_seconds_left(progress.eta_seconds))
        bar.set_postfix_str(", ".join(postfix), refresh=False)
    elif rec.state_detail:
        bar.set_postfix_str(rec.state_detail.strip(), refresh=False)
    bar.refresh()
    return rec.state
