"""What the indexer sets up in Elasticsearch: at start the API version, ILM detection and the index templates;
per tenant, on first use, its lifecycle policy and its write aliases, and the fields this version's mappings
added put on the tenant's existing indices (templates only shape new ones).

Layout per tenant and kind (calls, utterances): the write alias `<prefix>-<kind>-<tenant>` over backing
indices `<alias>-000001`, ... (see `mappings.py`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from callscribe.indexer.es.client import agree_version, compat_major, error_reason, error_type, translate_errors
from callscribe.indexer.mappings import CALLS, KINDS, UTTERANCES, index_template, lifecycle_policy, mappings
from callscribe.indexer.metrics import IndexerMetrics
from callscribe.indexer.settings import IndexerSettings
from callscribe.kit.errors import FailedPrecondition
from callscribe.kit.tenants import Tenant

log = logging.getLogger(__name__)

# Tenant names become part of index names: lowercase, and never ending like a rollover suffix.
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_ROLLOVER_SUFFIX_RE = re.compile(r"-\d+$")


def check_tenant_name(name: str) -> None:
    if not _TENANT_RE.match(name) or _ROLLOVER_SUFFIX_RE.search(name):
        raise FailedPrecondition(
            f"tenant name {name!r} cannot be part of an Elasticsearch index name: use lowercase letters, digits, "
            "'_' and '-', not ending in '-<digits>' (index names of tenants are <prefix>-calls-<tenant>)"
        )


class Schema:
    """The cluster as the indexer needs it: connected once, tenants set up once each (thread-safe)."""

    def __init__(self, client: Elasticsearch, settings: IndexerSettings, metrics: IndexerMetrics) -> None:
        self._es = client
        self._settings = settings
        self._prefix = settings.index_prefix
        self._metrics = metrics
        self._lock = threading.Lock()
        self._ready = False
        self.ilm_supported = False
        self.server_version = ""
        self._tenants: dict[str, float] = {}  # tenant -> retention_days its policy and indices were set up with
        self._tenant_lock = threading.Lock()

    # ------------------------------------------------------------------ names

    def alias(self, kind: str, tenant: str) -> str:
        check_tenant_name(tenant)
        return f"{self._prefix}-{kind}-{tenant}"

    def policy_name(self, tenant: str) -> str:
        return f"{self._prefix}-retention-{tenant}"

    def index_names(self, tenant: str) -> tuple[str, str]:
        """(calls alias, utterances alias) of a tenant."""
        return self.alias(CALLS, tenant), self.alias(UTTERANCES, tenant)

    # ------------------------------------------------------------------ start

    @property
    def ready(self) -> bool:
        return self._ready

    def connect(self) -> None:
        """Reach the cluster, agree on the API version, detect ILM, put the index templates.

        Raises Unavailable while the cluster cannot be reached; safe to call again (and from several threads).
        """
        with self._lock:
            if self._ready:
                return
            with translate_errors("connecting"):
                self.server_version = str(self._es.info()["version"]["number"])
                agree_version(self._es, self._settings, self.server_version)
                self.ilm_supported = self._detect_ilm()
                self._put_templates()
            self._ready = True
            self._metrics.elasticsearch_ready.set(1)
            self._metrics.ilm_supported.set(1 if self.ilm_supported else 0)
            log.info(
                "Elasticsearch %s ready at %s (API compatible-with=%d, ILM %s, templates %s-{calls,utterances})",
                self.server_version,
                self._settings.elasticsearch_url,
                compat_major(self._es),
                "managed" if self.ilm_supported else "not managed",
                self._prefix,
            )

    def require_ready(self) -> None:
        if not self._ready:
            self.connect()

    def _detect_ilm(self) -> bool:
        url = self._settings.elasticsearch_url
        if not self._settings.ilm_enabled:
            log.warning(
                "ILM management is off (INDEXER_ILM_ENABLED=false): tenant indices get no lifecycle policy from "
                "callscribe; warm and delete (retention) must be managed outside it"
            )
            return False
        try:
            self._es.ilm.get_status()
        except ApiError as exc:
            status = exc.meta.status
            if status in (400, 404, 405, 410, 501):
                log.warning(
                    "Elasticsearch at %s does not support ILM (GET _ilm/status answered %d: %s): tenant indices "
                    "get NO lifecycle policy, so nothing moves to warm after %d days and nothing is deleted after "
                    "a tenant's retention_days; manage retention outside callscribe or use a cluster with ILM",
                    url,
                    status,
                    error_reason(exc),
                    self._settings.ilm_warm_after_days,
                )
                return False
            if status in (401, 403):
                log.warning(
                    "the indexer's Elasticsearch user may not manage ILM (%d: %s): tenant indices get NO lifecycle "
                    "policy and retention is not enforced; grant the manage_ilm cluster privilege",
                    status,
                    error_reason(exc),
                )
                return False
            raise
        return True

    def _put_templates(self) -> None:
        s = self._settings
        for kind in KINDS:
            body = index_template(
                self._prefix,
                kind,
                shards=s.number_of_shards,
                replicas=s.number_of_replicas,
                refresh_interval=s.refresh_interval,
            )
            self._es.indices.put_index_template(name=f"{self._prefix}-{kind}", body=body)
            # Indices created by an older template get the fields added since when their tenant is first
            # used (`_update_mapping`), so documents with them are not refused by the strict mapping.

    # ------------------------------------------------------------------ tenants

    def ensure_tenant(self, tenant: Tenant) -> None:
        """The tenant's lifecycle policy and write aliases, created on first use (idempotent, race-safe)."""
        if self._tenants.get(tenant.name) == tenant.retention_days:
            return
        check_tenant_name(tenant.name)
        self.require_ready()
        with self._tenant_lock, translate_errors(f"preparing the indices of tenant {tenant.name}"):
            if self._tenants.get(tenant.name) == tenant.retention_days:
                return
            s = self._settings
            index_settings: dict[str, Any] = {}
            if self.ilm_supported:
                policy = self.policy_name(tenant.name)
                self._es.ilm.put_lifecycle(
                    name=policy,
                    policy=lifecycle_policy(
                        retention_days=math.ceil(tenant.retention_days),  # ILM counts whole days
                        warm_after_days=s.ilm_warm_after_days,
                        rollover_max_age_days=s.ilm_rollover_max_age_days,
                        rollover_max_primary_shard_gb=s.ilm_rollover_max_primary_shard_gb,
                    ),
                )
                index_settings["index.lifecycle.name"] = policy
            for kind in KINDS:
                self._ensure_alias(self.alias(kind, tenant.name), kind, index_settings)
            self._tenants[tenant.name] = tenant.retention_days

    def forget_tenants(self) -> None:
        """Set every tenant up again on its next call (a write alias went missing)."""
        self._tenants.clear()

    def _ensure_alias(self, alias: str, kind: str, index_settings: dict[str, Any]) -> None:
        if self._es.indices.exists_alias(name=alias):
            self._update_mapping(alias, kind)
            return
        if self._es.indices.exists(index=alias):
            raise FailedPrecondition(
                f"{alias} is a plain index, not the write alias the indexer expects; reindex it into {alias}-000001 "
                f"with the write alias {alias} (see services/indexer/README.md)"
            )
        settings = dict(index_settings)
        if self.ilm_supported:
            settings["index.lifecycle.rollover_alias"] = alias
        create: dict[str, Any] = {"index": f"{alias}-000001", "aliases": {alias: {"is_write_index": True}}}
        if settings:
            create["settings"] = settings
        try:
            self._es.indices.create(**create)
            log.info("created index %s-000001 behind write alias %s", alias, alias)
        except ApiError as exc:
            if error_type(exc) != "resource_already_exists_exception":
                raise
            # Another indexer created it first: the alias must be there now.

    def _update_mapping(self, alias: str, kind: str) -> None:
        """Put this version's mapping on every backing index of `alias`: fields added since an index was created
        (diarization fields, version 2; `*_simplified`, version 3; the storage lifecycle's `moved_at`, `integrity`,
        `verified_at`, version 4) are added; fields it has are left as they are. A field mapped differently cannot
        be changed in place: FailedPrecondition says so."""
        wanted = mappings(kind)
        try:
            self._es.indices.put_mapping(index=alias, properties=wanted["properties"], meta=wanted["_meta"])
        except ApiError as exc:
            if exc.meta.status != 400:
                raise
            raise FailedPrecondition(
                f"the indices behind {alias} map a field differently from this indexer ({error_reason(exc)}); "
                "reindex them into indices created from the current template (see services/indexer/README.md, "
                '"Mapping changes")'
            ) from exc
        log.info("mapping of %s is at version %d", alias, wanted["_meta"]["mapping_version"])
