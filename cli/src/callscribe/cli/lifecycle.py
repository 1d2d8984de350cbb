"""`callscribe tier run`, `callscribe audit` and `callscribe expire`: a storage lifecycle pass now, printed as
it goes (the lifecycle also runs them on its own schedule)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from google.protobuf.json_format import MessageToDict

from callscribe.cli.connect import CliError, add_connection_args, auth_metadata, channel, check_recording_id, resolve
from callscribe.kit.text import shown
from callscribe.v1 import common_pb2 as c
from callscribe.v1 import lifecycle_pb2 as pb
from callscribe.v1 import lifecycle_pb2_grpc

_OUTCOMES = {
    pb.TieringEvent.OUTCOME_MOVED: "moved",
    pb.TieringEvent.OUTCOME_HOT_LOCK_EXTENDED: "hot lock extended",
    pb.TieringEvent.OUTCOME_HOT_RELEASED: "hot copy released",
    pb.TieringEvent.OUTCOME_FAILED: "not moved",
    pb.TieringEvent.OUTCOME_BUSY: "busy",
}
_INTEGRITY = {c.INTEGRITY_OK: "ok", c.INTEGRITY_MISMATCH: "MISMATCH", c.INTEGRITY_MISSING: "MISSING"}


def add_lifecycle_parsers(subparsers: Any) -> None:
    tier = subparsers.add_parser("tier", help="storage tiering: move recordings to the cold tier now")
    tier_commands = tier.add_subparsers(dest="tier_command", required=True, metavar="SUBCOMMAND")
    run = tier_commands.add_parser("run", help="one tiering pass now, printing what moved")
    run.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="DAYS",
        help="move recordings archived at least DAYS ago (default: the tenant's hot_days; 0: every hot one)",
    )
    run.add_argument("--limit", type=int, default=0, metavar="N", help="at most N recordings (default: no limit)")
    add_connection_args(run)
    run.set_defaults(func=tier_run)

    audit = subparsers.add_parser(
        "audit", help="re-hash stored copies against their SHA-256 now; exit 1 when one does not match or is missing"
    )
    audit.add_argument("--recording", default="", metavar="ID", help="one recording (default: every one of the tenant)")
    add_connection_args(audit)
    audit.set_defaults(func=audit_run)

    expire = subparsers.add_parser("expire", help="delete recordings whose retention ended now (tombstones stay)")
    add_connection_args(expire)
    expire.set_defaults(func=expire_run)


def _stub(args: argparse.Namespace) -> tuple[lifecycle_pb2_grpc.LifecycleServiceStub, Any]:
    target = resolve(args, "lifecycle")
    return lifecycle_pb2_grpc.LifecycleServiceStub(channel(target, args.ca_cert)), target


def _json(message: Any) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False)


def tier_run(args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise CliError(f"--older-than {args.older_than}: give a number of days, 0 or more")
    if args.limit < 0:
        raise CliError(f"--limit {args.limit}: give 0 (no limit) or more")
    stub, target = _stub(args)
    request = pb.RunTieringRequest(tenant=args.tenant, limit=args.limit)
    if args.older_than is not None:
        request.older_than_days = args.older_than
    counts: Counter[str] = Counter()
    moved_bytes = 0
    for event in stub.RunTiering(request, metadata=auth_metadata(target)):
        word = _OUTCOMES.get(event.outcome, "?")
        counts[word] += 1
        if event.outcome == pb.TieringEvent.OUTCOME_MOVED:
            moved_bytes += event.size_bytes
        if args.json:
            print(_json(event), flush=True)
            continue
        moved = event.outcome == pb.TieringEvent.OUTCOME_MOVED
        where = f" -> {event.object.bucket}/{event.object.key}" if moved else ""
        until = f", locked until {event.retain_until.ToJsonString()}" if event.HasField("retain_until") else ""
        detail = f" ({shown(event.detail)})" if event.detail else ""
        print(f"{word:<18} {event.recording_id}{where}{until}{detail}", flush=True)
    if not args.json:
        summary = ", ".join(f"{n} {word}" for word, n in counts.items()) or "nothing to do"
        print(f"tiering: {summary}; {moved_bytes / 2**20:.1f} MiB moved", file=sys.stderr)
    return 1 if counts["not moved"] else 0


def audit_run(args: argparse.Namespace) -> int:
    if args.recording:
        check_recording_id(args.recording)
    stub, target = _stub(args)
    request = pb.RunAuditRequest(tenant=args.tenant, recording_id=args.recording)
    counts: Counter[str] = Counter()
    hashed = 0
    for event in stub.RunAudit(request, metadata=auth_metadata(target)):
        word = _INTEGRITY.get(event.integrity, "not readable now")
        counts[word] += 1
        hashed += event.bytes_hashed
        if args.json:
            print(_json(event), flush=True)
        elif event.integrity == c.INTEGRITY_OK:
            print(f"ok        {event.recording_id}  {event.bytes_hashed / 2**20:.1f} MiB hashed", flush=True)
        else:
            print(f"{word:<9} {event.recording_id}  {shown(event.detail)}", flush=True)
    if not args.json:
        summary = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no recording"
        print(f"audit: {summary}; {hashed / 2**20:.1f} MiB hashed", file=sys.stderr)
    failed = counts["MISMATCH"] + counts["MISSING"]
    if failed:
        print(
            f"callscribe audit: {failed} recording(s) failed the integrity check (alert the operator)",
            file=sys.stderr,
        )
        return 1
    if counts["not readable now"]:
        print("callscribe audit: some copies could not be read now (S3 away); run it again", file=sys.stderr)
        return 3
    return 0


def expire_run(args: argparse.Namespace) -> int:
    stub, target = _stub(args)
    deleted = kept = 0
    for event in stub.RunExpiry(pb.RunExpiryRequest(tenant=args.tenant), metadata=auth_metadata(target)):
        if args.json:
            print(_json(event), flush=True)
        elif event.HasField("tombstone"):
            print(f"expired   {event.recording_id}  ({event.tombstone.versions_deleted} versions deleted)", flush=True)
        else:
            print(f"kept      {event.recording_id}  {shown(event.detail)}", flush=True)
        deleted += event.HasField("tombstone")
        kept += not event.HasField("tombstone")
    if not args.json:
        print(f"expiry: {deleted} expired, {kept} kept", file=sys.stderr)
    return 0


def add_erase_parser(subparsers: Any) -> None:
    erase = subparsers.add_parser(
        "erase",
        help="erase a recording (or every recording of a customer) for good: its data key is destroyed, its call "
        "leaves the index, a receipt is kept (GDPR Art. 17 / PIPL)",
    )
    erase.add_argument("recording_id", nargs="?", default="", metavar="ID", help="the recording to erase")
    erase.add_argument("--customer", default="", metavar="C", help="erase every recording whose upload named C")
    erase.add_argument("--reason", required=True, help="why (the request's reference, e.g. DSR-2026-0042)")
    add_connection_args(erase)
    erase.set_defaults(func=erase_run)


def erase_run(args: argparse.Namespace) -> int:
    if bool(args.recording_id) == bool(args.customer):
        raise CliError("give a recording ID or --customer C (one of the two)")
    if not args.reason.strip():
        raise CliError('--reason is empty: give the erasure request\'s reference, e.g. --reason "DSR-2026-0042"')
    if args.recording_id:
        check_recording_id(args.recording_id)
    stub, target = _stub(args)
    if args.recording_id:
        request = pb.EraseRecordingRequest(tenant=args.tenant, recording_id=args.recording_id, reason=args.reason)
        receipts = [stub.EraseRecording(request, metadata=auth_metadata(target))]
    else:
        customer = pb.EraseCustomerRequest(tenant=args.tenant, customer_id=args.customer, reason=args.reason)
        receipts = list(stub.EraseCustomer(customer, metadata=auth_metadata(target)).receipts)
    for receipt in receipts:
        if args.json:
            print(_json(receipt), flush=True)
            continue
        print(
            f"erased    {receipt.recording_id}  sha256 {receipt.sha256}  key(s) {', '.join(receipt.key_ids)} destroyed"
            f"  {receipt.documents_deleted} index document(s) deleted  receipt {receipt.receipt}",
            flush=True,
        )
    if not args.json:
        print(
            f"erasure: {len(receipts)} recording(s); their locked audio stays under retention as ciphertext that "
            "no key opens any more",
            file=sys.stderr,
        )
    return 0
