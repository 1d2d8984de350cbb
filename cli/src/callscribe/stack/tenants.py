"""The local stack's tenants file: who may push recordings, and how long they are locked.

Format (read by the services through the kit)::

    {"tenants": {"acme": {"token_sha256": ["<hex>"], "retention_mode": "COMPLIANCE",
                          "retention_days": 1825}}}

Only the SHA-256 of each token is stored; the plaintext tokens are returned to the caller.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callscribe.kit.files import write_json_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantSpec:
    retention_mode: str = "COMPLIANCE"
    retention_days: float = 1825
    zh_script: str | None = None  # the indexer's output script for Chinese (kit.tenants.ZH_SCRIPTS); None: its default
    hot_days: float | None = None  # None: the default (90)
    cold_storage_class: str = ""


LOCAL_TENANTS: Mapping[str, TenantSpec] = {
    "acme": TenantSpec("COMPLIANCE", 1825),
    "globex": TenantSpec("COMPLIANCE", 1825),
}


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A random bearer token; the prefix keeps it from starting with '-' (a command line would read an option)."""
    return "cs_" + secrets.token_urlsafe(32)


def write_tenants_file(
    path: Path, tenants: Mapping[str, TenantSpec], service_tokens: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Write the tenants file atomically (mode 0600) with a new random token per tenant.

    ``service_tokens`` (service account -> plaintext token) adds service accounts, such as the
    pipeline worker's, which act for any tenant they name. Returns tenant -> plaintext token.
    """
    tokens = {name: new_token() for name in tenants}
    entries = {name: _tenant_entry(spec, tokens[name]) for name, spec in tenants.items()}
    document: dict[str, object] = {"tenants": entries}
    if service_tokens:
        document["service_accounts"] = {
            name: {"token_sha256": [token_sha256(token)]} for name, token in service_tokens.items()
        }
    write_json_atomically(path, document)
    log.info("wrote tenants file %s (%d tenants)", path, len(tenants))
    return tokens


def _tenant_entry(spec: TenantSpec, token: str) -> dict[str, object]:
    entry: dict[str, object] = {
        "token_sha256": [token_sha256(token)],
        "retention_mode": spec.retention_mode,
        "retention_days": spec.retention_days,
    }
    if spec.zh_script is not None:
        entry["zh_script"] = spec.zh_script
    if spec.hot_days is not None:
        entry["hot_days"] = spec.hot_days
    if spec.cold_storage_class:
        entry["cold_storage_class"] = spec.cold_storage_class
    return entry


@dataclass(frozen=True)
class TenantsFile:
    """A tenants file `write` created: where it is, and each tenant's plaintext token."""

    path: Path
    tokens: dict[str, str]

    @classmethod
    def write(
        cls, path: Path, tenants: Mapping[str, TenantSpec], service_tokens: Mapping[str, str] | None = None
    ) -> TenantsFile:
        return cls(path, write_tenants_file(path, tenants, service_tokens))
