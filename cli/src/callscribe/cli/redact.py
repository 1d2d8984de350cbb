"""`callscribe redact --language zh|en [--tenant T] TEXT`: what the tenant's PII redaction policy would store for
a text (IndexerService.PreviewRedaction), so a DPO can check the policy before calls are indexed under it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from callscribe.cli.connect import CliError, add_connection_args, auth_metadata, channel, resolve
from callscribe.kit.names import SPOKEN_LANGUAGES
from callscribe.v1 import indexer_pb2 as pb
from callscribe.v1 import indexer_pb2_grpc

RPC_TIMEOUT_S = 30.0


def add_redact_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redact",
        help="what the tenant's PII redaction policy would store for a text",
        description="Print TEXT as the indexer would store it under the tenant's redaction policy (tenants file "
        "key 'redaction'), and what was masked. Nothing is stored.",
    )
    parser.add_argument("text", metavar="TEXT", help="the text to check ('-': read it from standard input)")
    parser.add_argument(
        "--language",
        required=True,
        choices=sorted(SPOKEN_LANGUAGES),
        help="the language TEXT is in (cue words and spoken digits are read by it)",
    )
    add_connection_args(parser)
    parser.set_defaults(func=preview_redaction)


def preview_redaction(args: argparse.Namespace) -> int:
    text = sys.stdin.read().rstrip("\n") if args.text == "-" else args.text
    if not text.strip():
        raise CliError("TEXT is empty: give the text to check (or '-' and the text on standard input)")
    target = resolve(args, "indexer")
    stub = indexer_pb2_grpc.IndexerServiceStub(channel(target, args.ca_cert))
    request = pb.PreviewRedactionRequest(tenant=args.tenant, language=SPOKEN_LANGUAGES[args.language], text=text)
    reply = stub.PreviewRedaction(request, metadata=auth_metadata(target), timeout=RPC_TIMEOUT_S)
    if args.json:
        print(json.dumps(_dump(text, reply), indent=2, ensure_ascii=False))
    else:
        print(format_preview(text, reply))
    return 0


def _span(text: str, span: pb.RedactedSpan) -> dict[str, Any]:
    found = {"category": span.category, "start": span.start, "end": span.end, "text": text[span.start : span.end]}
    return found | ({"mask": span.mask} if span.mask else {})


def _dump(text: str, reply: pb.PreviewRedactionResponse) -> dict[str, Any]:
    return {
        "text": reply.text,
        "masked": [_span(text, span) for span in reply.masked],
        "kept": [_span(text, span) for span in reply.kept],
        "policy": {
            "categories": list(reply.categories),
            "keep_unredacted": reply.keep_unredacted,
            "keep_last": reply.keep_last,
        },
    }


def format_preview(text: str, reply: pb.PreviewRedactionResponse) -> str:
    """The stored text, then one line per masked (and per readable) span, then the policy."""
    lines = [reply.text, ""]
    lines.append(f"masked: {len(reply.masked)}" if reply.masked else "masked: nothing")
    lines += [f"  {s.category:<17} {text[s.start : s.end]!r} -> {s.mask}" for s in reply.masked]
    if reply.kept:
        lines.append(f"left readable by the policy: {len(reply.kept)}")
        lines += [f"  {s.category:<17} {text[s.start : s.end]!r}" for s in reply.kept]
    categories = ", ".join(reply.categories) or "none (redaction off)"
    kept = "kept for privileged users" if reply.keep_unredacted else "not kept"
    last = f"; masks show the last {reply.keep_last} digits of cards and accounts" if reply.keep_last else ""
    lines.append(f"policy: masks {categories}; unredacted transcript {kept}{last}")
    return "\n".join(lines)
