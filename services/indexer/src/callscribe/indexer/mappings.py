"""The Elasticsearch document shapes: explicit mappings, index templates and lifecycle policies.

Two documents (see README, "Elasticsearch, indexing and search"):

- the call, one per recording, id = recording_id, in `<prefix>-calls-<tenant>`;
- the utterance, one per transcribed segment, id = `<recording_id>:<channel>:<start_ms>`, in
  `<prefix>-utterances-<tenant>`.

`<prefix>-calls-<tenant>` and `<prefix>-utterances-<tenant>` are write aliases over backing indices
`...-000001`, `...-000002` (rolled over by the tenant's ILM policy), so retention deletes old backing
indices instead of a tenant's whole index. Index patterns `<prefix>-calls-*` and `<prefix>-utterances-*`
(Kibana data views) match the backing indices.

`CALL_MAPPINGS` and `UTTERANCE_MAPPINGS` are the agreed shapes, as data: Kibana saved objects and the
benchmark read them. Each searched text field `<name>` has a `<name>_simplified` beside it: the text folded to
Simplified characters (`callscribe.indexer.script.fold`), written only where that differs from the text (it
has Traditional characters), so that search finds a call in either script (the query is folded the same way).
Enums are stored by name (`SPEAKER_ROLE_AGENT`, `LANGUAGE_ZH`, `STORAGE_TIER_HOT`).
Mappings are strict: a field that is not declared here is refused, never guessed.
"""

from __future__ import annotations

from typing import Any

# 2: diarization on calls, speaker and role_confidence on utterances; 3: the `*_simplified` fields
# (script-insensitive search); 4: the storage lifecycle on calls (`moved_at`, `integrity`, `verified_at`).
# Existing indices get new fields when the indexer first sets their tenant up (es.schema).
MAPPING_VERSION = 4

# Chinese (CJK bigrams) as the main analysis, English (stemming) and exact value as sub-fields.
TEXT: dict[str, Any] = {
    "type": "text",
    "analyzer": "cjk",
    "fields": {
        "english": {"type": "text", "analyzer": "english"},
        "keyword": {"type": "keyword", "ignore_above": 256},
    },
}
# A text's Simplified form, for matching only (never shown, so no english or keyword sub-field).
FOLDED: dict[str, Any] = {"type": "text", "analyzer": "cjk"}
FOLDED_SUFFIX = "_simplified"
KEYWORD: dict[str, Any] = {"type": "keyword"}
DATE: dict[str, Any] = {"type": "date"}
LONG: dict[str, Any] = {"type": "long"}  # every uint32/uint64 of the proto (uint32 does not fit an integer)
INTEGER: dict[str, Any] = {"type": "integer"}
FLOAT: dict[str, Any] = {"type": "float"}


def _side() -> dict[str, Any]:
    return {
        "properties": {
            "talk_ms": LONG,
            "speaking_rate": FLOAT,
            "interruptions": INTEGER,
            "sentiment": FLOAT,
            "words": INTEGER,
        }
    }


# CallAnalytics, field for field (proto field names).
ANALYTICS_MAPPINGS: dict[str, Any] = {
    "agent": _side(),
    "customer": _side(),
    "agent_talk_ratio": FLOAT,
    "silence_ms": LONG,
    "longest_silence_ms": LONG,
    "dead_air_count": INTEGER,
    "dead_air_threshold_ms": LONG,
    "overlap_ms": LONG,
    "interruption_count": INTEGER,
    "interruptions": {"properties": {"by": KEYWORD, "at_ms": LONG, "overlap_ms": LONG}},
    "keyword_hits": {
        "properties": {
            "list": KEYWORD,
            "phrase": KEYWORD,
            "matched": KEYWORD,
            "channel": INTEGER,
            "role": KEYWORD,
            "start_ms": LONG,
            "end_ms": LONG,
        }
    },
    "sentiment": FLOAT,
    "sentiment_label": KEYWORD,
    "qa": {
        "properties": {
            "score": FLOAT,
            "max_score": FLOAT,
            "deductions": {"properties": {"rule": KEYWORD, "points": FLOAT, "reason": TEXT}},
        }
    },
}

CALL_MAPPINGS: dict[str, Any] = {
    "recording_id": KEYWORD,
    "tenant": KEYWORD,
    "call_id": KEYWORD,
    "agent_id": KEYWORD,
    "customer_id": KEYWORD,
    "started_at": DATE,
    "language": KEYWORD,
    "channel_layout": KEYWORD,
    # Any label keys; values over 1024 characters stay in _source but are not searchable.
    "labels": {"type": "flattened", "ignore_above": 1024},
    "filename": {"type": "keyword", "ignore_above": 1024},
    "sha256": KEYWORD,
    "object": {"properties": {"bucket": KEYWORD, "key": KEYWORD, "version_id": KEYWORD}},
    "tier": KEYWORD,
    # The storage lifecycle (UpdateStorage): when the audio moved to the cold tier, the integrity audit's last
    # finding (INTEGRITY_OK, INTEGRITY_MISMATCH, INTEGRITY_MISSING; absent until audited) and when it re-hashed.
    "moved_at": DATE,
    "integrity": KEYWORD,
    "verified_at": DATE,
    "audio": {
        "properties": {
            "container": KEYWORD,
            "codec": KEYWORD,
            "sample_rate_hz": INTEGER,
            "channels": INTEGER,
            "duration_ms": LONG,
            "size_bytes": LONG,
        }
    },
    "duration_ms": LONG,
    "transcript": TEXT,
    "transcript_agent": TEXT,
    "transcript_customer": TEXT,
    "transcript_normalized": TEXT,
    "transcript_simplified": FOLDED,
    "transcript_agent_simplified": FOLDED,
    "transcript_customer_simplified": FOLDED,
    "transcript_normalized_simplified": FOLDED,
    "utterance_count": INTEGER,
    "indexed_at": DATE,
    "analytics": {"properties": ANALYTICS_MAPPINGS},
    # Phrases and list names of analytics.keyword_hits, for filters and terms aggregations.
    "keywords": KEYWORD,
    "keyword_lists": KEYWORD,
    # Diarization, field for field (proto field names): how a mono call was split into agent and customer.
    "diarization": {
        "properties": {
            "status": KEYWORD,
            "reason": TEXT,
            "agent_rule": KEYWORD,
            "voice_similarity": FLOAT,
            "speakers": {
                "properties": {"speaker": INTEGER, "role": KEYWORD, "speech_ms": LONG, "segment_count": INTEGER}
            },
            "model": KEYWORD,
        }
    },
}

UTTERANCE_MAPPINGS: dict[str, Any] = {
    "recording_id": KEYWORD,
    "tenant": KEYWORD,
    "call_id": KEYWORD,
    "agent_id": KEYWORD,
    "started_at": DATE,  # the call's start
    "at": DATE,  # the call's start + start_ms
    "channel": INTEGER,
    "role": KEYWORD,
    "start_ms": LONG,
    "end_ms": LONG,
    "text": TEXT,
    "normalized_text": TEXT,
    "text_simplified": FOLDED,
    "normalized_text_simplified": FOLDED,
    "language": KEYWORD,
    "engine": KEYWORD,
    "confidence": FLOAT,
    "sentiment": FLOAT,
    "speaker": INTEGER,  # diarized mono calls: the voice (1 or 2)
    "role_confidence": FLOAT,
}


def folded(field: str) -> str:
    """The name of the field that holds `field`'s Simplified form."""
    return field + FOLDED_SUFFIX


# The call document's fields that are never returned by reads (rebuilt from the utterances instead).
CALL_TEXT_FIELDS = ("transcript", "transcript_agent", "transcript_customer", "transcript_normalized")
TRANSCRIPT_FIELDS = CALL_TEXT_FIELDS + tuple(folded(name) for name in CALL_TEXT_FIELDS)
UTTERANCE_TEXT_FIELDS = ("text", "normalized_text")
UTTERANCE_FOLDED_FIELDS = tuple(folded(name) for name in UTTERANCE_TEXT_FIELDS)

CALLS = "calls"
UTTERANCES = "utterances"
KINDS = (CALLS, UTTERANCES)
_MAPPINGS = {CALLS: CALL_MAPPINGS, UTTERANCES: UTTERANCE_MAPPINGS}


def mappings(kind: str) -> dict[str, Any]:
    """The `mappings` object of an index of `kind` (calls or utterances)."""
    return {
        "dynamic": "strict",
        "_meta": {"managed_by": "callscribe-indexer", "document": kind, "mapping_version": MAPPING_VERSION},
        "properties": _MAPPINGS[kind],
    }


def template_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def index_template(prefix: str, kind: str, *, shards: int, replicas: int, refresh_interval: str) -> dict[str, Any]:
    """The composable index template for `<prefix>-<kind>-*` (body of PUT _index_template/<name>)."""
    return {
        "index_patterns": [f"{prefix}-{kind}-*"],
        # Above the built-in templates (100) and clear of typical user templates.
        "priority": 500,
        "version": MAPPING_VERSION,
        "_meta": {"managed_by": "callscribe-indexer", "description": f"callscribe {kind} documents"},
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "refresh_interval": refresh_interval,
            },
            "mappings": mappings(kind),
        },
    }


def lifecycle_policy(
    *, retention_days: int, warm_after_days: int, rollover_max_age_days: int, rollover_max_primary_shard_gb: int
) -> dict[str, Any]:
    """A tenant's ILM policy: hot (rollover) -> warm after `warm_after_days` -> delete after `retention_days`.

    Ages are counted from rollover, so a document is deleted no earlier than `retention_days` after it was
    indexed (at most `rollover_max_age_days` later). The warm phase only lowers recovery priority: it never
    makes an index read-only, because re-indexing a call (a re-run of the pipeline) writes to the backing
    index that holds it. A retention shorter than the warm age skips the warm phase.
    """
    phases: dict[str, Any] = {
        "hot": {
            "min_age": "0ms",
            "actions": {
                "rollover": {
                    "max_age": f"{rollover_max_age_days}d",
                    "max_primary_shard_size": f"{rollover_max_primary_shard_gb}gb",
                },
                "set_priority": {"priority": 100},
            },
        },
    }
    if warm_after_days < retention_days:
        phases["warm"] = {"min_age": f"{warm_after_days}d", "actions": {"set_priority": {"priority": 50}}}
    phases["delete"] = {"min_age": f"{retention_days}d", "actions": {"delete": {}}}
    return {"_meta": {"managed_by": "callscribe-indexer"}, "phases": phases}
