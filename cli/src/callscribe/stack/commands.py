"""``callscribe stack up|down|status|restart SERVICE [--json] [--home DIR]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from callscribe.stack import stack
from callscribe.stack.procs import StackError
from callscribe.stack.stack import RESTARTABLE

log = logging.getLogger(__name__)


def add_stack_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``stack`` on an argparse subparsers object; sets ``func`` to the handler."""
    parser = subparsers.add_parser("stack", help="the local stack of real servers and services")
    actions = parser.add_subparsers(dest="stack_command", metavar="{up,down,status,restart}", required=True)
    helps = {
        "up": "start S3, Elasticsearch, Redis, the services and Prometheus",
        "down": "stop what 'up' started",
        "status": "show endpoints, credentials and processes",
        "restart": "stop one service (if it runs) and start it again as 'up' did: same environment and address",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.add_argument(
            "--home",
            type=Path,
            default=None,
            help="stack directory (default: $CALLSCRIBE_HOME, else .stack here or in a parent directory, "
            "else the stack started last)",
        )
        if name == "restart":
            action.add_argument("service", choices=RESTARTABLE, metavar="SERVICE", help=", ".join(RESTARTABLE))
        if name == "up":
            action.add_argument(
                "--services",
                default=None,
                help="comma-separated services to start (default: all installed; '' for none)",
            )
            action.add_argument("--no-prometheus", action="store_true", help="leave Prometheus out")
            action.add_argument(
                "--cold-server",
                action="store_true",
                help="put the cold tier on a second SeaweedFS (default: a second bucket of the one S3)",
            )
        action.set_defaults(func=run_stack_command)
    return parser


def run_stack_command(args: argparse.Namespace) -> int:
    """Run ``stack <command>``; returns the exit code."""
    try:
        if args.stack_command == "up":
            services = None if args.services is None else [s for s in args.services.split(",") if s.strip()]
            result: Any = stack.up(
                args.home, services=services, prometheus=not args.no_prometheus, cold_server=args.cold_server
            )
            text = format_state(result)
        elif args.stack_command == "down":
            home = stack.locate_home(args.home)
            result = {"home": str(home.path), "stopped": stack.down(home.path)}
            text = (
                f"stopped in {home.path}: {', '.join(result['stopped'])}"
                if result["stopped"]
                else f"nothing was running: {stack.no_stack_hint(home)}"
            )
        elif args.stack_command == "restart":
            result = stack.restart(args.home, args.service)
            proc = result["processes"][args.service]
            address = result.get("grpc", {}).get(args.service, "")
            text = f"restarted {args.service} in {result['home']}: pid {proc['pid']}, grpc {address}"
        else:
            result = stack.status(args.home)
            text = format_state(result)
    except StackError as exc:
        print(f"callscribe stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else text)
    if args.stack_command == "status" and not result.get("running"):
        return 3  # like `systemctl status`: not running
    return 0


def format_state(state: dict[str, Any]) -> str:
    """A human-readable summary of the stack state."""
    if "processes" not in state:
        return str(state.get("hint") or f"no local stack in {state['home']}")
    lines = [f"local stack in {state['home']}"]
    s3 = state["s3"]
    if "cold" in s3:
        lines.append(f"  S3 (hot)       {s3['endpoint']}  bucket {s3['hot_bucket']}")
        lines.append(f"                 access key {s3['access_key']}  secret key {s3['secret_key']}")
        lines.append(f"  S3 (cold)      {s3['cold']['endpoint']}  bucket {s3['cold_bucket']}")
        lines.append(f"                 access key {s3['cold']['access_key']}  secret key {s3['cold']['secret_key']}")
    else:
        lines.append(f"  S3             {s3['endpoint']}  buckets {s3['hot_bucket']}, {s3['cold_bucket']}")
        lines.append(f"                 access key {s3['access_key']}  secret key {s3['secret_key']}")
    lines.append(f"  Elasticsearch  {state['elasticsearch']['url']}")
    lines.append(f"  Redis          {state['redis']['url']}")
    if "prometheus" in state:
        lines.append(f"  Prometheus     {state['prometheus']['url']}")
    for name, address in state.get("grpc", {}).items():
        lines.append(f"  {name:<14} grpc {address}  metrics {state['metrics'][name]}")
    for tenant, token in state.get("tenants", {}).items():
        lines.append(f"  tenant {tenant:<7} token {token}")
    lines.append("  processes:")
    stopped = []
    for name, proc in state["processes"].items():
        alive = "running" if proc.get("alive") else "STOPPED"
        lines.append(f"    {name:<14} pid {proc['pid']:<8} {alive:<8} log {proc['log']}")
        if not proc.get("alive"):
            stopped.append(name)
    for name in stopped:
        if name in RESTARTABLE:
            lines.append(f"  {name} is not running: 'callscribe stack restart {name}' starts it again")
        else:
            lines.append(f"  {name} is not running: 'callscribe stack down', then 'callscribe stack up'")
    return "\n".join(lines)
