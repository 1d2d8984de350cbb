"""`callscribe dead-letters [requeue ID | requeue --all]`: recordings the pipeline gave up on (IngestService)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from callscribe.cli.connect import CliError, add_connection_args, auth_metadata, channel, check_recording_id, resolve
from callscribe.kit.text import shown
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

PAGE_SIZE = 500


def add_dead_letter_parsers(subparsers: Any) -> None:
    # One parser with an optional action rather than nested subcommands: connection flags then work in any
    # position (`dead-letters --tenant acme requeue ID` as well as `dead-letters requeue ID --tenant acme`).
    dl = subparsers.add_parser(
        "dead-letters",
        help="list the tenant's dead letters, or requeue them",
        description="List dead letters (default), or 'requeue RECORDING_ID' / 'requeue --all'.",
    )
    dl.add_argument("action", nargs="?", choices=["list", "requeue"], default="list")
    dl.add_argument("recording_id", nargs="?", default=None, metavar="RECORDING_ID", help="with requeue")
    dl.add_argument("--all", action="store_true", help="with requeue: every dead letter of the tenant")
    add_connection_args(dl)
    dl.set_defaults(func=dead_letters)


def dead_letters(args: argparse.Namespace) -> int:
    if args.action == "requeue":
        if bool(args.recording_id) == bool(args.all):
            raise CliError("requeue takes a RECORDING_ID or --all (one of them)")
        if args.recording_id:
            check_recording_id(args.recording_id)
        return _requeue(args)
    if args.recording_id:
        raise CliError(f"unexpected {args.recording_id!r}: did you mean 'dead-letters requeue {args.recording_id}'?")
    return _list(args)


def _stub(args: argparse.Namespace) -> tuple[ingest_pb2_grpc.IngestServiceStub, list[tuple[str, str]]]:
    target = resolve(args, "ingest")
    return ingest_pb2_grpc.IngestServiceStub(channel(target, args.ca_cert)), auth_metadata(target)


def _list(args: argparse.Namespace) -> int:
    stub, metadata = _stub(args)
    letters: list[pb.DeadLetter] = []
    token = ""
    while True:
        page = stub.ListDeadLetters(
            pb.ListDeadLettersRequest(tenant=args.tenant, page_size=PAGE_SIZE, page_token=token), metadata=metadata
        )
        letters.extend(page.dead_letters)
        if not page.next_page_token or page.next_page_token == token or not page.dead_letters:
            break
        token = page.next_page_token
    if args.json:
        rows = [MessageToDict(d, preserving_proto_field_name=True) for d in letters]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not letters:
        print("no dead letters", file=sys.stderr)
        return 0
    table = [("RECORDING_ID", "STAGE", "ATTEMPTS", "FAILED_AT", "REASON")]
    for d in letters:
        failed = d.failed_at.ToJsonString() if d.failed_at.seconds or d.failed_at.nanos else "-"
        reason = shown(" ".join(d.reason.split()))  # one line per dead letter, nothing a terminal obeys
        table.append((shown(d.recording_id), shown(d.stage) or "-", str(d.attempts), failed, reason))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    print(f"{len(letters)} dead letters", file=sys.stderr)
    return 0


def _requeue(args: argparse.Namespace) -> int:
    stub, metadata = _stub(args)
    request = pb.RequeueDeadLettersRequest(tenant=args.tenant, recording_id=args.recording_id or "", all=args.all)
    ids = list(stub.RequeueDeadLetters(request, metadata=metadata).recording_ids)
    if args.json:
        print(json.dumps({"requeued": ids}, indent=2))
        return 0
    for rec_id in ids:
        print(f"requeued {rec_id}")
    print(f"{len(ids)} requeued" if ids else "nothing to requeue", file=sys.stderr)
    return 0
