"""The shape of a recording id, one definition for the services and the CLI.

Ingest derives a recording id from tenant + SHA-256 as 32 lowercase hex characters. A string of
another shape can name no recording: services answer INVALID_ARGUMENT with `not_a_recording_id`'s
message, a well-formed id that is unknown gets NOT_FOUND, and the CLI says the same before calling.
"""

from __future__ import annotations

import re

RECORDING_ID_CHARS = 32
_RECORDING_ID = re.compile(rf"[0-9a-f]{{{RECORDING_ID_CHARS}}}")


def is_recording_id(value: str) -> bool:
    return _RECORDING_ID.fullmatch(value) is not None


def not_a_recording_id(value: str, name: str = "recording_id") -> str:
    """ "recording_id 'deadbeef' is not a recording id (32 lowercase hex characters)"."""
    return f"{name} {value!r} is not a recording id ({RECORDING_ID_CHARS} lowercase hex characters)"
