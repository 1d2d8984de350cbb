"""How the CLI finds a service and the caller's token: flags, environment, or the local stack's state."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from callscribe.stack import stack


class CliError(Exception):
    """A problem the user must fix; printed without a traceback, exit code 2."""


@dataclass(frozen=True)
class Target:
    address: str
    token: str
    tenant: str  # "" when the token alone decides it


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=None, help="bearer token (default: $CALLSCRIBE_TOKEN)")
    parser.add_argument("--tenant", default="", help="tenant; against the local stack its token is looked up")
    parser.add_argument("--address", default=None, help="service HOST:PORT (default: the local stack's)")
    parser.add_argument("--ca-cert", type=Path, default=None, help="PEM CA certificate: connect with TLS")
    parser.add_argument("--home", type=Path, default=None, help="local stack directory (default: ./.stack)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def resolve(args: argparse.Namespace, service: str) -> Target:
    state = _stack_state(args.home) if (args.address is None or not _explicit_token(args)) else None
    address = args.address or os.environ.get(f"CALLSCRIBE_{service.upper()}_ADDRESS")
    if not address:
        address = (state or {}).get("grpc", {}).get(service)
    if not address:
        raise CliError(
            f"no {service} address: pass --address HOST:PORT, set CALLSCRIBE_{service.upper()}_ADDRESS, "
            "or start the local stack with 'callscribe stack up'"
        )
    token = _explicit_token(args)
    if not token and args.tenant:
        token = (state or {}).get("tenants", {}).get(args.tenant, "")
        if not token:
            raise CliError(f"tenant {args.tenant!r} is not in the local stack; pass --token for a remote server")
    if not token:
        raise CliError("no token: pass --token, set CALLSCRIBE_TOKEN, or --tenant T against the local stack")
    return Target(address=address, token=token, tenant=args.tenant)


def _explicit_token(args: argparse.Namespace) -> str:
    return args.token or os.environ.get("CALLSCRIBE_TOKEN", "")


def _stack_state(home: Path | None) -> dict | None:
    state = stack.status(home)
    return state if state.get("running") else None


def channel(target: Target, ca_cert: Path | None) -> grpc.Channel:
    options = [("grpc.max_send_message_length", 5 * 1024 * 1024)]
    if ca_cert is not None:
        creds = grpc.ssl_channel_credentials(ca_cert.read_bytes())
        return grpc.secure_channel(target.address, creds, options=options)
    return grpc.insecure_channel(target.address, options=options)


def auth_metadata(target: Target) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {target.token}")]
