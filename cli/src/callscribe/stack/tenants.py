"""The local stack's tenants file: who may push recordings, and how long they are locked.

Format (read by the services through the kit, `callscribe.kit.tenants`)::

    {"tenants": {"acme": {"tokens": [{"sha256": "<hex>", "role": "admin", "name": "local-admin"}],
                          "retention_mode": "COMPLIANCE", "retention_days": 1825}}}

Each tenant gets one `admin` token (the one the CLI uses against the local stack), and optionally one token per
further role (`roles`). Only the SHA-256 of each token is stored; the plaintext tokens are returned to the caller.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callscribe.kit.files import write_json_atomically
from callscribe.kit.roles import ADMIN, ROLES

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
    path: Path,
    tenants: Mapping[str, TenantSpec],
    service_tokens: Mapping[str, str] | None = None,
    roles: Sequence[str] = (),
) -> dict[str, str]:
    """Write the tenants file atomically (mode 0600) with a new random admin token per tenant.

    ``service_tokens`` (service account -> plaintext token) adds service accounts, such as the
    pipeline worker's, which act for any tenant they name. Returns tenant -> plaintext admin token;
    `write_role_tokens` also returns the tokens of `roles`.
    """
    return {name: by_role[ADMIN] for name, by_role in write_role_tokens(path, tenants, service_tokens, roles).items()}


def write_role_tokens(
    path: Path,
    tenants: Mapping[str, TenantSpec],
    service_tokens: Mapping[str, str] | None = None,
    roles: Sequence[str] = (),
) -> dict[str, dict[str, str]]:
    """`write_tenants_file`, each tenant given an admin token and one token per role of `roles` besides (named
    `local-<role>`). Returns tenant -> role -> plaintext token."""
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}: one of {', '.join(ROLES)}")
    wanted = [ADMIN, *(role for role in dict.fromkeys(roles) if role != ADMIN)]
    tokens = {name: {role: new_token() for role in wanted} for name in tenants}
    entries = {name: _tenant_entry(spec, tokens[name]) for name, spec in tenants.items()}
    document: dict[str, object] = {"tenants": entries}
    if service_tokens:
        document["service_accounts"] = {
            name: {"token_sha256": [token_sha256(token)]} for name, token in service_tokens.items()
        }
    write_json_atomically(path, document)
    log.info("wrote tenants file %s (%d tenants)", path, len(tenants))
    return tokens


def _tenant_entry(spec: TenantSpec, tokens: Mapping[str, str]) -> dict[str, object]:
    entry: dict[str, object] = {
        "tokens": [
            {"sha256": token_sha256(token), "role": role, "name": f"local-{role}"} for role, token in tokens.items()
        ],
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
    """A tenants file `write` created: where it is, each tenant's plaintext admin token, and (`roles`) its token
    of each further role."""

    path: Path
    tokens: dict[str, str]
    role_tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> role -> token

    @classmethod
    def write(
        cls,
        path: Path,
        tenants: Mapping[str, TenantSpec],
        service_tokens: Mapping[str, str] | None = None,
        roles: Sequence[str] = (),
    ) -> TenantsFile:
        by_role = write_role_tokens(path, tenants, service_tokens, roles)
        return cls(path, {name: tokens[ADMIN] for name, tokens in by_role.items()}, by_role)
