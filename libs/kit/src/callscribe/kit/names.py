"""The contracts' enums as the names people type and services store, derived once from the protos.

`LANGUAGES` "auto" / "zh" / "en"; `LAYOUTS` "MONO" / "STEREO_AGENT_LEFT" / "STEREO_AGENT_RIGHT" (as ingest
stores them in a recording's metadata); `ROLES` "agent" / "customer" / "mixed"; `INTEGRITIES` "OK" / "MISMATCH" /
"MISSING" (the integrity audit's findings, as the lifecycle keeps them). `*_UNSPECIFIED` has no
name: each caller says what it means for it. A value added to the proto gets its name here with no edit.
"""

from __future__ import annotations

from typing import Any

from callscribe.v1 import common_pb2 as c


def _names(enum: Any, prefix: str, lower: bool) -> dict[int, str]:
    out = {}
    for name, value in enum.items():
        if name.endswith("_UNSPECIFIED"):
            continue
        short = name.removeprefix(prefix)
        out[value] = short.lower() if lower else short
    return out


LANGUAGE_NAMES: dict[int, str] = _names(c.Language, "LANGUAGE_", lower=True)
LANGUAGES: dict[str, int] = {name: value for value, name in LANGUAGE_NAMES.items()}
LAYOUT_NAMES: dict[int, str] = _names(c.ChannelLayout, "CHANNEL_LAYOUT_", lower=False)
LAYOUTS: dict[str, int] = {name: value for value, name in LAYOUT_NAMES.items()}
ROLE_NAMES: dict[int, str] = _names(c.SpeakerRole, "SPEAKER_ROLE_", lower=True)
ROLES: dict[str, int] = {name: value for value, name in ROLE_NAMES.items()}
INTEGRITY_NAMES: dict[int, str] = _names(c.Integrity, "INTEGRITY_", lower=False)
INTEGRITIES: dict[str, int] = {name: value for value, name in INTEGRITY_NAMES.items()}
SPOKEN_LANGUAGES: dict[str, int] = {name: value for name, value in LANGUAGES.items() if name != "auto"}
