"""`callscribe trail verify` and `callscribe trail show`: the tenant's access trail (who read audio or unredacted
text, set or released a hold, erased or exported), checked or shown through the ingest service (admin tokens)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf.json_format import MessageToDict

from callscribe.cli.connect import CliError, add_connection_args, auth_metadata, channel, resolve
from callscribe.kit.text import shown
from callscribe.v1 import ingest_pb2 as pb
from callscribe.v1 import ingest_pb2_grpc

MAX_SHOWN = 1000


def add_trail_parsers(subparsers: Any) -> None:
    trail = subparsers.add_parser(
        "trail", help="the access trail: who read audio or unredacted text, held, erased or exported (admin)"
    )
    commands = trail.add_subparsers(dest="trail_command", required=True, metavar="SUBCOMMAND")
    verify = commands.add_parser(
        "verify", help="check the trail's hash chain entry by entry; exit 1 when it is broken, naming the entry"
    )
    add_connection_args(verify)
    verify.set_defaults(func=verify_trail)
    show = commands.add_parser("show", help="the last entries of the trail, oldest first")
    show.add_argument("--last", type=int, default=20, metavar="N", help=f"the last N entries (1-{MAX_SHOWN}; 20)")
    add_connection_args(show)
    show.set_defaults(func=show_trail)


def _stub(args: argparse.Namespace) -> tuple[ingest_pb2_grpc.IngestServiceStub, list[tuple[str, str]]]:
    target = resolve(args, "ingest")
    return ingest_pb2_grpc.IngestServiceStub(channel(target, args.ca_cert)), auth_metadata(target)


def verify_trail(args: argparse.Namespace) -> int:
    stub, metadata = _stub(args)
    reply = stub.VerifyTrail(pb.VerifyTrailRequest(tenant=args.tenant), metadata=metadata)
    broken = reply.HasField("first_break")
    if args.json:
        print(
            json.dumps(
                MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            )
        )
    elif not broken:
        print(
            f"access trail of {reply.tenant}: intact, {reply.verified} entries; "
            f"head entry {reply.head_seq}, SHA-256 {reply.head_sha256}"
        )
    if broken:
        where = "an object that is no entry" if reply.first_break.seq == 0 else f"entry {reply.first_break.seq}"
        print(
            f"callscribe trail verify: the access trail of {reply.tenant} is BROKEN at {where}: "
            f"{shown(reply.first_break.reason)} ({reply.verified} of {reply.entries} entries verified before it; "
            "alert the operator)",
            file=sys.stderr,
        )
        return 1
    return 0


def show_trail(args: argparse.Namespace) -> int:
    if not 1 <= args.last <= MAX_SHOWN:
        raise CliError(f"--last {args.last}: give 1 to {MAX_SHOWN}")
    stub, metadata = _stub(args)
    shown_any = False
    for entry in stub.ReadTrail(pb.ReadTrailRequest(tenant=args.tenant, last=args.last), metadata=metadata):
        shown_any = True
        if args.json:
            print(json.dumps(MessageToDict(entry, preserving_proto_field_name=True), ensure_ascii=False), flush=True)
            continue
        actor = f"{entry.actor.name} ({entry.actor.role})"
        targets = " ".join(entry.targets) or "-"
        details = "" if entry.details_json in ("", "{}") else f"  {entry.details_json}"
        print(
            f"#{entry.seq:<6} {entry.time.ToJsonString()}  {entry.action:<16} {shown(actor)}  {shown(targets)}"
            f"{shown(details)}",
            flush=True,
        )
    if not shown_any and not args.json:
        print("the access trail has no entries yet", file=sys.stderr)
    return 0
