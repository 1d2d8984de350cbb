"""Tenants and their bearer tokens. Only SHA-256 hashes of tokens are kept in the file."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

RETENTION_MODES = ("COMPLIANCE", "GOVERNANCE")
DEFAULT_RETENTION_DAYS = 5 * 365


@dataclass(frozen=True)
class Tenant:
    name: str
    retention_mode: str = "COMPLIANCE"
    retention_days: int = DEFAULT_RETENTION_DAYS


class TenantRegistry:
    """Maps a presented token to its tenant, comparing hashes in constant time."""

    def __init__(self, tenants: dict[str, Tenant], token_hashes: dict[str, str]) -> None:
        self._tenants = tenants
        self._token_hashes = token_hashes  # sha256 hex -> tenant name

    @classmethod
    def load(cls, path: Path) -> TenantRegistry:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read tenants file {path}: {exc}") from exc
        tenants: dict[str, Tenant] = {}
        hashes: dict[str, str] = {}
        for name, spec in (raw.get("tenants") or {}).items():
            tenants[name] = _parse_tenant(name, spec)
            for digest in spec.get("token_sha256", []):
                hashes[str(digest).lower()] = name
        if not tenants:
            raise ValueError(f"tenants file {path} defines no tenant")
        return cls(tenants, hashes)

    def tenant_for_token(self, token: str) -> Tenant | None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for known, name in self._token_hashes.items():
            if hmac.compare_digest(known, digest):
                return self._tenants[name]
        return None

    def get(self, name: str) -> Tenant | None:
        return self._tenants.get(name)


def _parse_tenant(name: str, spec: dict) -> Tenant:
    mode = str(spec.get("retention_mode", "COMPLIANCE")).upper()
    if mode not in RETENTION_MODES:
        raise ValueError(f"tenant {name}: retention_mode must be COMPLIANCE or GOVERNANCE, got {mode!r}")
    days = int(spec.get("retention_days", DEFAULT_RETENTION_DAYS))
    if days < 1:
        raise ValueError(f"tenant {name}: retention_days must be at least 1, got {days}")
    return Tenant(name=name, retention_mode=mode, retention_days=days)
