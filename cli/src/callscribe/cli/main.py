"""The `callscribe` command: one entry point for the local stack and every service."""

from __future__ import annotations

import argparse
import logging
import sys

import grpc

from callscribe.cli.calls import add_calls_parsers
from callscribe.cli.connect import CliError
from callscribe.cli.deadletters import add_dead_letter_parsers
from callscribe.cli.demo import add_demo_parser
from callscribe.cli.lifecycle import add_erase_parser, add_lifecycle_parsers
from callscribe.cli.messages import describe
from callscribe.cli.recordings import add_recording_parsers
from callscribe.cli.redact import add_redact_parser
from callscribe.cli.sync import add_sync_parser
from callscribe.cli.trail import add_trail_parsers
from callscribe.stack.commands import add_stack_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callscribe", description="call-center recording analytics")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_stack_parser(commands)
    add_recording_parsers(commands)
    add_sync_parser(commands)
    add_calls_parsers(commands)
    add_redact_parser(commands)
    add_dead_letter_parsers(commands)
    add_lifecycle_parsers(commands)
    add_erase_parser(commands)
    add_trail_parsers(commands)
    add_demo_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"callscribe {args.command}: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"callscribe {args.command}: {describe(exc, getattr(args, 'resolved_targets', []))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
