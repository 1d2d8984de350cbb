"""Tenants and their bearer tokens. Only SHA-256 hashes of tokens are kept in the file."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from callscribe.kit.redaction import DEFAULT_REDACTION, RedactionPolicy, parse_redaction

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


class TenantRegistry:
    """Maps a presented token to its tenant, comparing hashes in constant time.

    Besides tenants the file may name service accounts (``"service_accounts": {"pipeline":
    {"token_sha256": [...]}}``): the pipeline worker calls the other services for every tenant,
    naming the tenant it acts for in the ``x-callscribe-tenant`` metadata (see the kit's auth).
    """

    def __init__(
        self,
        tenants: dict[str, Tenant],
        token_hashes: dict[str, str],
        service_hashes: dict[str, str] | None = None,
    ) -> None:
        self._tenants = tenants
        self._token_hashes = token_hashes  # sha256 hex -> tenant name
        self._service_hashes = service_hashes or {}  # sha256 hex -> service account name

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
        services: dict[str, str] = {}
        for name, spec in (raw.get("service_accounts") or {}).items():
            for digest in (spec or {}).get("token_sha256", []):
                if str(digest).lower() in hashes:
                    raise ValueError(f"tenants file {path}: service account {name} reuses a tenant's token")
                services[str(digest).lower()] = name
        return cls(tenants, hashes, services)

    def tenant_for_token(self, token: str) -> Tenant | None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for known, name in self._token_hashes.items():
            if hmac.compare_digest(known, digest):
                return self._tenants[name]
        return None

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
