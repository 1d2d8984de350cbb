"""Server errors as a CLI user reads them: flags rather than API fields, what to check rather than gRPC's words."""

from __future__ import annotations

import re
from collections.abc import Sequence

import grpc

from callscribe.cli.connect import Target

TOKEN_REFUSED = "the token was refused: check --token / CALLSCRIBE_TOKEN (or use --tenant T against the local stack)"

# RecordingMetadata's fields, as the services name them in their messages, and the `upload` flags that set them.
# Words that are also plain English keep the word and name the flag after it.
UPLOAD_FLAGS = {
    "channel_layout": "--agent-channel",
    "started_at": "--started-at",
    "call_id": "--call-id",
    "agent_id": "--agent",
    "customer_id": "--customer",
    "language": "--language",
    "zh_script": "--zh-script",
    "labels": "labels (--label)",
    "hotwords": "hotwords (--hotword)",
}
# ChannelLayout values as ingest spells them, and the --agent-channel choices that send them.
_LAYOUT_CHOICES = {"STEREO_AGENT_LEFT": "left", "STEREO_AGENT_RIGHT": "right", "MONO": "mono"}
_FIELD = re.compile(r"\b(" + "|".join(map(re.escape, UPLOAD_FLAGS)) + r")\b")
_LAYOUT = re.compile(r"\b(" + "|".join(_LAYOUT_CHOICES) + r")\b")
# What gRPC's core says when no connection could be made (refused, no route, unknown host).
_NO_CONNECTION = re.compile(
    r"failed to connect|connection refused|dns resolution failed|name resolution|no route to host|connect failed",
    re.IGNORECASE,
)


def flag_names(message: str) -> str:
    """An upload refusal with API field names (and layout values) put as the `upload` flags that set them."""
    if not _FIELD.search(message):
        return message
    message = _FIELD.sub(lambda m: UPLOAD_FLAGS[m.group(1)], message)
    if "--agent-channel" in message:
        message = _LAYOUT.sub(lambda m: _LAYOUT_CHOICES[m.group(1)], message)
    return message


def unreachable(exc: grpc.RpcError) -> bool:
    """UNAVAILABLE because no connection was made, not because a running service said it is unavailable."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and bool(_NO_CONNECTION.search(exc.details() or ""))


def cannot_reach(target: Target) -> str:
    service = target.service or "the service"
    return f"cannot reach {service} at {target.address} — is it running? `callscribe stack status`"


def describe(exc: grpc.RpcError, targets: Sequence[Target] = ()) -> str:
    """One line for the user: the refused token and the unreachable server in CLI terms, else CODE: details."""
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return TOKEN_REFUSED
    if unreachable(exc) and targets:
        details = exc.details() or ""
        # The failing address is in gRPC's text ("ipv4:127.0.0.1:5: Failed to connect"); else the last one called.
        named = [t for t in targets if t.address in details]
        return cannot_reach((named or list(targets))[-1])
    return f"{code.name}: {exc.details()}"
