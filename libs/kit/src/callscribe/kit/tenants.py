"""Tenants and their bearer tokens. Only SHA-256 hashes of tokens are kept in the file.

Each tenant lists its tokens with a role (`kit.roles`: uploader, analyst, supervisor, admin) and a name
(who holds it; the access trail records it)::

    {"tenants": {"acme": {"tokens": [{"sha256": "<hex>", "role": "analyst", "name": "qa-team"}],
                          "retention_mode": "COMPLIANCE", "retention_days": 1825}}}

The older `"token_sha256": ["<hex>", ...]` list still works: each of its tokens is an `admin` (what every
token could do before roles existed), and loading such a file logs a deprecation warning naming the tenants
to convert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from callscribe.kit.redaction import DEFAULT_REDACTION, RedactionPolicy, parse_redaction
from callscribe.kit.roles import ADMIN, ROLES

log = logging.getLogger(__name__)

RETENTION_MODES = ("COMPLIANCE", "GOVERNANCE")
DEFAULT_RETENTION_DAYS = 5 * 365
# The script the indexer writes Chinese text in (normalized text, analytics' matched phrases): Simplified,
# Traditional (OpenCC's standard forms, or Taiwan's or Hong Kong's), or each utterance as the ASR wrote it.
ZH_SCRIPTS = ("simplified", "traditional", "traditional_tw", "traditional_hk", "as_recognized")


DEFAULT_HOT_DAYS = 90.0


@dataclass(frozen=True)
class Tenant:
    name: str
    retention_mode: str = "COMPLIANCE"
    retention_days: float = DEFAULT_RETENTION_DAYS  # fractions of a day are for tests and trials
    zh_script: str | None = None  # one of ZH_SCRIPTS; None: the indexer's default (INDEXER_ZH_SCRIPT)
    hot_days: float = DEFAULT_HOT_DAYS  # recordings move to the cold tier this long after they were archived
    cold_storage_class: str = ""  # sent as x-amz-storage-class with cold copies; "": the bucket's default
    redaction: RedactionPolicy = DEFAULT_REDACTION  # PII the indexer masks (kit.redaction)


@dataclass(frozen=True)
class Grant:
    """What one tenant token is: its tenant, its role (`kit.roles.ROLES`) and its name in the file."""

    tenant: str
    role: str
    name: str


class TenantRegistry:
    """Maps a presented token to its tenant and role, comparing hashes in constant time.

    Besides tenants the file may name service accounts (``"service_accounts": {"pipeline":
    {"token_sha256": [...]}}``): the pipeline worker calls the other services for every tenant,
    naming the tenant it acts for in the ``x-callscribe-tenant`` metadata (see the kit's auth).
    """

    def __init__(
        self,
        tenants: dict[str, Tenant],
        token_hashes: dict[str, str],
        service_hashes: dict[str, str] | None = None,
        grants: dict[str, Grant] | None = None,
    ) -> None:
        self._tenants = tenants
        # sha256 hex -> tenant name: the deprecated `token_sha256` lists, each token an admin.
        self._token_hashes = token_hashes
        self._service_hashes = service_hashes or {}  # sha256 hex -> service account name
        self._grants = grants or {}  # sha256 hex -> Grant: the `tokens` lists

    @classmethod
    def load(cls, path: Path) -> TenantRegistry:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read tenants file {path}: {exc}") from exc
        tenants: dict[str, Tenant] = {}
        hashes: dict[str, str] = {}
        grants: dict[str, Grant] = {}
        legacy: list[str] = []
        for name, spec in (raw.get("tenants") or {}).items():
            tenants[name] = _parse_tenant(name, spec)
            if spec.get("token_sha256"):
                legacy.append(name)
            for digest in spec.get("token_sha256", []):
                hashes[str(digest).lower()] = name
            for grant_digest, grant in _parse_tokens(path, name, spec.get("tokens", [])):
                if grant_digest in grants:
                    raise ValueError(
                        f"tenants file {path}: tenant {name} lists token {grant_digest[:12]}... that "
                        f"{grants[grant_digest].tenant} lists too: one token, one tenant and one role"
                    )
                grants[grant_digest] = grant
        if not tenants:
            raise ValueError(f"tenants file {path} defines no tenant")
        both = sorted(set(grants) & set(hashes))
        if both:
            raise ValueError(
                f"tenants file {path}: token {both[0][:12]}... is listed under both 'tokens' and 'token_sha256': "
                "keep it in 'tokens' only (one token, one role)"
            )
        if legacy:
            log.warning(
                "tenants file %s: %s still list tokens under 'token_sha256' (deprecated): each such token has role "
                "'admin'; list them under 'tokens' with a role (%s) and a name instead",
                path,
                ", ".join(legacy),
                ", ".join(ROLES),
            )
        services: dict[str, str] = {}
        for name, spec in (raw.get("service_accounts") or {}).items():
            for digest in (spec or {}).get("token_sha256", []):
                if str(digest).lower() in hashes or str(digest).lower() in grants:
                    raise ValueError(f"tenants file {path}: service account {name} reuses a tenant's token")
                services[str(digest).lower()] = name
        return cls(tenants, hashes, services, grants)

    def grant_for_token(self, token: str) -> Grant | None:
        """The tenant, role and name of a tenant token; None for any other token."""
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        found: Grant | None = None
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                found = grant
        for known, name in self._token_hashes.items():
            if hmac.compare_digest(known, digest):
                found = Grant(name, ADMIN, f"token_sha256:{known[:12]}")
        return found

    def tenant_for_token(self, token: str) -> Tenant | None:
        grant = self.grant_for_token(token)
        return None if grant is None else self._tenants[grant.tenant]

    def service_account_for_token(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for known, name in self._service_hashes.items():
            if hmac.compare_digest(known, digest):
                return name
        return None

    def names(self) -> list[str]:
        return sorted(self._tenants)

    def get(self, name: str) -> Tenant | None:
        return self._tenants.get(name)


_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,63}")


def _parse_tokens(path: Path, tenant: str, entries: object) -> list[tuple[str, Grant]]:
    """The tenant's `tokens` list: [{"sha256": "<64 hex>", "role": "<role>", "name": "<who holds it>"}]."""
    where = f"tenants file {path}: tenant {tenant}"
    if not isinstance(entries, list):
        raise ValueError(f'{where}: "tokens" must be a list of {{"sha256": ..., "role": ..., "name": ...}}')
    parsed: list[tuple[str, Grant]] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f'{where}: tokens[{n}] must be an object {{"sha256": ..., "role": ..., "name": ...}}')
        digest = str(entry.get("sha256", "")).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{where}: tokens[{n}].sha256 must be the token's SHA-256 as 64 hex digits")
        role = entry.get("role")
        if role not in ROLES:
            raise ValueError(f"{where}: tokens[{n}].role must be one of {', '.join(ROLES)}, got {role!r}")
        name = str(entry.get("name") or f"{role}:{digest[:12]}")
        if not _TOKEN_NAME.fullmatch(name):
            raise ValueError(
                f"{where}: tokens[{n}].name {name!r} must be 1-64 letters, digits or . _ @ : + - (who holds the token)"
            )
        parsed.append((digest, Grant(tenant, str(role), name)))
    return parsed


def _parse_tenant(name: str, spec: dict) -> Tenant:
    mode = str(spec.get("retention_mode", "COMPLIANCE")).upper()
    if mode not in RETENTION_MODES:
        raise ValueError(f"tenant {name}: retention_mode must be COMPLIANCE or GOVERNANCE, got {mode!r}")
    days = _days(name, "retention_days", spec.get("retention_days", DEFAULT_RETENTION_DAYS))
    script = spec.get("zh_script")
    if script is not None and script not in ZH_SCRIPTS:
        raise ValueError(f"tenant {name}: zh_script must be one of {', '.join(ZH_SCRIPTS)}, got {script!r}")
    hot_days = _days(name, "hot_days", spec.get("hot_days", DEFAULT_HOT_DAYS))
    storage_class = str(spec.get("cold_storage_class") or "")
    if storage_class and not re.fullmatch(r"[A-Z_]{1,64}", storage_class):
        raise ValueError(f"tenant {name}: cold_storage_class must be an S3 storage class such as STANDARD_IA")
    redaction = parse_redaction(name, spec.get("redaction"))
    return Tenant(name, mode, days, script, hot_days, storage_class, redaction=redaction)


def _days(tenant: str, field: str, value: object) -> float:
    """A positive number of days (fractions allowed: tests and trials use seconds' worth)."""
    try:
        days = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"tenant {tenant}: {field} must be a number of days, got {value!r}") from None
    if not math.isfinite(days) or days <= 0:
        raise ValueError(f"tenant {tenant}: {field} must be more than 0 days, got {value!r}")
    return days
