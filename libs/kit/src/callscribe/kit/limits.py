"""Limits of the contracts that more than one service enforces (defined once, so they cannot drift).

Hotwords: the ASR refuses a request with more, and ingest refuses an upload whose metadata the ASR would
refuse later, before anything is archived.
"""

from __future__ import annotations

MAX_HOTWORDS = 200
MAX_HOTWORD_CHARS = 100

# Audio bytes per upload message (the gRPC message limit adds room for the envelope: kit.server).
MAX_CHUNK_BYTES = 4 * 1024 * 1024
