"""`callscribe demo`: sample calls through the local stack, and WORM shown at work."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from minio import Minio
from minio.error import S3Error
from tqdm import tqdm

from callscribe.cli.calls import format_call, format_hit
from callscribe.cli.connect import CliError, Target, auth_metadata, channel
from callscribe.cli.recordings import send_file
from callscribe.cli.samples import HOURS_CALL_EN, REFUND_CALL_EN, REFUND_CALL_ZH, ToolMissing, synthesize_call
from callscribe.cli.uploads import Upload, upload_method
from callscribe.kit.names import SPOKEN_LANGUAGES
from callscribe.stack import stack
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import indexer_pb2 as indexer_pb
from callscribe.v1 import indexer_pb2_grpc, ingest_pb2_grpc
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


def add_demo_parser(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="push sample calls through the running local stack")
    demo.add_argument(
        "--home",
        type=Path,
        default=None,
        help="local stack directory (default: $CALLSCRIBE_HOME, else .stack here or in a parent directory, "
        "else the stack started last)",
    )
    demo.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the pipeline")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    state = stack.status(args.home)
    if not state.get("running"):
        raise CliError(f"{state['hint']} (or 'make demo')")
    if "ingest" not in state.get("grpc", {}) or not state["processes"]["ingest"]["alive"]:
        raise CliError(
            f"ingest is not running in the local stack in {state['home']}: 'callscribe stack restart ingest' "
            "(or 'callscribe stack down', then 'callscribe stack up')"
        )
    target = Target(state["grpc"]["ingest"], state["tenants"][TENANT], TENANT, "ingest")
    args.resolved_targets = [target]  # an unreachable ingest is named in the error
    ingest = channel(target, None)
    stub = ingest_pb2_grpc.IngestServiceStub(ingest)
    upload = upload_method(ingest)
    files = _generate(Path(state["home"]) / "demo")
    print(f"\n== Uploading {len(files)} sample calls as tenant {TENANT!r} to ingest at {target.address}")
    acks = [_upload(upload, target, path, spec) for path, spec in files]
    print("\n== Re-sending the first call: idempotent, nothing new is stored")
    again = _upload(upload, target, *files[0])
    print(f"   duplicate={again.duplicate}  same id={again.recording_id == acks[0].recording_id}")
    _show_worm(state, acks[0])
    if {"indexer", "worker"} <= set(state.get("processes", {})):
        _follow_pipeline(stub, target, acks, args.timeout)
        indexer_target = Target(state["grpc"]["indexer"], target.token, target.tenant, "indexer")
        args.resolved_targets = [target, indexer_target]
        _show_calls(indexer_target, acks)
    else:
        print("\n(the indexer or the worker is not running: the transcripts and search are skipped)")
    print(next_steps(acks[0].recording_id))
    return 0


def _shown(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when under it (`.venv/bin/callscribe`), else absolute."""
    path = path.absolute()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def _running_program() -> Path | None:
    """The `callscribe` script of this Python (`.venv/bin/callscribe` after `make demo`), or the one run now."""
    for program in (Path(sys.executable).parent / "callscribe", Path(sys.argv[0])):
        if program.name == "callscribe" and program.is_file() and os.access(program, os.X_OK):
            return program
    return None


def callscribe_command(cwd: Path | None = None) -> str:
    """How to run `callscribe` from `cwd`: the bare name when it is on PATH, else the path of the program that runs
    now, relative when under `cwd`, else absolute; else this Python with `-m`."""
    if shutil.which("callscribe") is not None:
        return "callscribe"
    cwd = (cwd or Path.cwd()).absolute()
    program = _running_program()
    if program is None:
        return f"{sys.executable} -m callscribe.cli.main"
    return _shown(program, cwd)


def next_steps(recording_id: str, cwd: Path | None = None) -> str:
    """The "Next:" lines, each a command that runs as printed from `cwd` (see `callscribe_command`)."""
    cwd = (cwd or Path.cwd()).absolute()
    cli = callscribe_command(cwd)
    lines = [
        "",
        "Next:",
        f"  {cli} search refund --tenant {TENANT}",
        f"  {cli} show {recording_id} --tenant {TENANT}",
        f"  {cli} status {recording_id} --tenant {TENANT}",
        f"  {cli} export --format csv --tenant {TENANT}",
        f"  {cli} tier run --older-than 0 --tenant {TENANT}    # move the calls to the cold tier now",
        f"  {cli} audit --tenant {TENANT}",
        f"  {cli} stack status",
        f"  {cli} stack down    # when done (or: make demo-down)",
    ]
    program = _running_program()
    if cli != "callscribe" and program is not None and (program.parent / "activate").is_file():
        activate = _shown(program.parent / "activate", cwd)
        lines.append(f"  # 'callscribe' is not on PATH; 'source {activate}' puts it there for this shell")
    return "\n".join(lines)


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


def _upload(upload: Upload, target: Target, path: Path, spec: tuple) -> Any:
    name, _, language, side, _ = spec
    meta = c.RecordingMetadata(
        call_id=Path(name).stem,
        agent_id="agent-dana",
        channel_layout=_LAYOUT[side],
        language=SPOKEN_LANGUAGES[language],
        hotwords=[c.Hotword(text="refund policy"), c.Hotword(text="退费政策")],
        filename=name,
        labels={"source": "demo"},
    )
    try:
        ack = send_file(upload, target, meta, path, quiet=False)
    except grpc.RpcError as exc:
        raise CliError(f"upload of {name} refused: {exc.code().name}: {exc.details()}") from exc
    print(
        f"   {name}: id={ack.recording_id} sha256={ack.sha256[:16]}... {ack.audio.codec} "
        f"{ack.audio.sample_rate_hz} Hz x{ack.audio.channels} {ack.audio.duration_ms / 1000:.1f}s "
        f"lock={c.LockMode.Name(ack.lock.mode)} until {ack.lock.retain_until.ToJsonString()[:10]} "
        f"duplicate={ack.duplicate}"
    )
    return ack


def _follow_pipeline(stub: ingest_pb2_grpc.IngestServiceStub, target: Target, acks: list, timeout_s: float) -> None:
    """Wait until every recording is indexed (or failed), with a progress bar of the stages."""
    ids = [ack.recording_id for ack in acks]
    print(f"\n== Pipeline: worker -> VAD -> ASR -> indexer (ITN, analytics) -> Elasticsearch, {len(ids)} calls")
    finished: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    with tqdm(total=len(ids), unit="call", file=sys.stderr) as bar:
        while len(finished) < len(ids):
            if time.monotonic() > deadline:
                raise CliError(
                    f"the pipeline did not finish within {timeout_s:.0f} s: see 'callscribe status ID --tenant acme' "
                    "and the logs in the stack's logs/ directory"
                )
            stages = []
            for rec_id in ids:
                if rec_id in finished:
                    continue
                request = ingest_pb.GetRecordingRequest(recording_id=rec_id)
                rec = stub.GetRecording(request, metadata=auth_metadata(target))
                if rec.state in (c.PIPELINE_STATE_DONE, c.PIPELINE_STATE_FAILED):
                    finished[rec_id] = rec
                    bar.update(1)
                else:
                    stages.append(c.PipelineState.Name(rec.state).removeprefix("PIPELINE_STATE_").lower())
            bar.set_postfix_str(", ".join(sorted(set(stages))))
            time.sleep(0.5)
    failed = [rec for rec in finished.values() if rec.state == c.PIPELINE_STATE_FAILED]
    for rec in failed:
        print(f"   FAILED {rec.metadata.call_id}: {rec.state_detail}")
    if failed:
        raise CliError(f"{len(failed)} call(s) failed in the pipeline: 'callscribe dead-letters --tenant acme'")


def _show_calls(indexer_target: Target, acks: list) -> None:
    indexer = indexer_pb2_grpc.IndexerServiceStub(channel(indexer_target, None))
    color = sys.stdout.isatty()
    for ack in acks:
        call = indexer.GetCall(
            indexer_pb.GetCallRequest(recording_id=ack.recording_id), metadata=auth_metadata(indexer_target), timeout=30
        )
        print(f"\n== {call.metadata.call_id}: transcript by speaker (normalized; raw in parentheses), analytics, QA")
        print(format_call(call, color))
    for query in ("refund", "退费"):
        found = indexer.Search(
            indexer_pb.SearchRequest(query=query), metadata=auth_metadata(indexer_target), timeout=30
        )
        print(f"\n== Search {query!r}: {found.total} call(s)")
        for hit in found.hits:
            print(format_hit(hit, color))


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
