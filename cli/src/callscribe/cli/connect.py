"""How the CLI finds a service and the caller's token: flags, environment, or the local stack's state."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from callscribe.kit.ids import is_recording_id, not_a_recording_id
from callscribe.stack import stack


class CliError(Exception):
    """A problem the user must fix; printed without a traceback, exit code 2."""


@dataclass(frozen=True)
class Target:
    address: str
    token: str
    tenant: str  # "" when the token alone decides it
    service: str = ""  # "ingest", "indexer", "vad": named when it cannot be reached


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=None, help="bearer token (default: $CALLSCRIBE_TOKEN)")
    parser.add_argument("--tenant", default="", help="tenant; against the local stack its token is looked up")
    parser.add_argument("--address", default=None, help="service HOST:PORT (default: the local stack's)")
    parser.add_argument("--ca-cert", type=Path, default=None, help="PEM CA certificate: connect with TLS")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="local stack directory (default: $CALLSCRIBE_HOME, else .stack here or in a parent directory, "
        "else the stack started last)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def resolve(args: argparse.Namespace, service: str) -> Target:
    """The address and token for `service`; remembered on `args` so an error can name what was unreachable."""
    explicit_address = args.address or os.environ.get(f"CALLSCRIBE_{service.upper()}_ADDRESS")
    token = _explicit_token(args)
    located = state = None
    if not explicit_address or not token:
        located = stack.locate_home(args.home)
        state = _stack_state(located.path)
    address = explicit_address
    if not address and state is not None:
        address = _stack_address(state, service)
    if not address:
        if state is not None:
            runs = ", ".join(sorted(state.get("grpc", {}))) or "no service"
            hint = (
                f"the local stack in {state['home']} does not run {service} (it runs {runs}): "
                "'callscribe stack down', then 'callscribe stack up' starts every installed service"
            )
        else:
            assert located is not None
            hint = stack.no_stack_hint(located)
        raise CliError(
            f"no {service} address: pass --address HOST:PORT or set CALLSCRIBE_{service.upper()}_ADDRESS; {hint}"
        )
    if not token and args.tenant:
        if state is None:
            assert located is not None
            raise CliError(
                f"no token for tenant {args.tenant!r}: pass --token (or set CALLSCRIBE_TOKEN); "
                f"{stack.no_stack_hint(located)}"
            )
        token = state.get("tenants", {}).get(args.tenant, "")
        if not token:
            known = ", ".join(sorted(state.get("tenants", {}))) or "none"
            raise CliError(
                f"tenant {args.tenant!r} is not in the local stack in {state['home']} (its tenants: {known}); "
                "pass --token for a remote server"
            )
    if not token:
        raise CliError("no token: pass --token, set CALLSCRIBE_TOKEN, or --tenant T against the local stack")
    target = Target(address=address, token=token, tenant=args.tenant, service=service)
    resolved: list[Target] = getattr(args, "resolved_targets", [])
    args.resolved_targets = [*resolved, target]
    return target


def _stack_address(state: dict[str, Any], service: str) -> str:
    """The service's address in the running local stack; a CliError when the stack has it but it stopped."""
    address = str(state.get("grpc", {}).get(service, ""))
    proc = state.get("processes", {}).get(service)
    if address and proc is not None and not proc.get("alive"):
        raise CliError(
            f"{service} of the local stack in {state['home']} is not running: "
            f"'callscribe stack restart {service}' starts it again"
        )
    return address


def _explicit_token(args: argparse.Namespace) -> str:
    return args.token or os.environ.get("CALLSCRIBE_TOKEN", "")


def _stack_state(home: Path) -> dict[str, Any] | None:
    state = stack.status(home)
    return state if state.get("running") else None


def check_recording_id(value: str) -> str:
    """The id as typed, when it has a recording id's shape; else the services' INVALID_ARGUMENT message."""
    if not is_recording_id(value):
        raise CliError(not_a_recording_id(value))
    return value


def channel(target: Target, ca_cert: Path | None) -> grpc.Channel:
    options = [("grpc.max_send_message_length", 5 * 1024 * 1024)]
    if ca_cert is not None:
        creds = grpc.ssl_channel_credentials(ca_cert.read_bytes())
        return grpc.secure_channel(target.address, creds, options=options)
    return grpc.insecure_channel(target.address, options=options)


def auth_metadata(target: Target) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {target.token}")]
