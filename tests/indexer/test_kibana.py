"""deploy/kibana/callscribe.ndjson: Kibana 8 saved objects that import and fit the index templates.

Checks: every line is a JSON object; ids are unique; every reference (data view of a visualization, visualization
of a dashboard panel) resolves to an object of the file; the data views match the indices the indexer writes and
their time fields; every field a visualization aggregates on exists in the index template with a type that
aggregation can use; the dashboard has the panels the issue asks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callscribe.indexer import mappings

NDJSON = Path(__file__).resolve().parents[2] / "deploy" / "kibana" / "callscribe.ndjson"
PREFIX = "callscribe"

NUMERIC = {"long", "integer", "short", "byte", "float", "double", "half_float", "scaled_float"}
# what each aggregation needs of its field
AGG_FIELD_TYPES = {
    "avg": NUMERIC,
    "sum": NUMERIC,
    "min": NUMERIC | {"date"},
    "max": NUMERIC | {"date"},
    "median": NUMERIC,
    "percentiles": NUMERIC,
    "cardinality": NUMERIC | {"keyword", "date"},
    "date_histogram": {"date"},
    "histogram": NUMERIC,
    "terms": NUMERIC | {"keyword"},
    "significant_terms": {"keyword"},
}


def load() -> list[dict[str, Any]]:
    objects = []
    for number, line in enumerate(NDJSON.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"line {number} is empty (NDJSON has one object per line)"
        obj = json.loads(line)
        assert isinstance(obj, dict), f"line {number} is not a JSON object"
        objects.append(obj)
    return objects


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load()


def by_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["type"] == kind]


def flatten(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted field name, type) of every field of a mapping, multi-fields (`.keyword`) included."""
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            yield from flatten(spec["properties"], f"{path}.")
            continue
        yield path, spec.get("type", "object")
        for sub, sub_spec in spec.get("fields", {}).items():
            yield f"{path}.{sub}", sub_spec["type"]


FIELDS = {
    f"{PREFIX}-calls-*": dict(flatten(mappings.mappings(mappings.CALLS)["properties"])),
    f"{PREFIX}-utterances-*": dict(flatten(mappings.mappings(mappings.UTTERANCES)["properties"])),
}


def test_every_line_is_a_saved_object(objects: list[dict[str, Any]]) -> None:
    assert len(objects) >= 8
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for o in objects:
        assert {"id", "type", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion"} <= set(o)
        assert o["type"] in ("index-pattern", "visualization", "dashboard", "lens")
        assert o["coreMigrationVersion"].startswith("8."), "Kibana 8 format"
        for ref in o["references"]:
            assert set(ref) == {"id", "name", "type"}, ref
        # the stringified JSON attributes must parse too
        for key in ("visState", "panelsJSON", "optionsJSON", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap"):
            if key in o["attributes"]:
                json.loads(o["attributes"][key])
        meta = o["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            json.loads(meta["searchSourceJSON"])


def test_data_views_match_the_indexed_documents(objects: list[dict[str, Any]]) -> None:
    views = {o["attributes"]["title"]: o["attributes"] for o in by_type(objects, "index-pattern")}
    assert set(views) == set(FIELDS)
    assert views[f"{PREFIX}-calls-*"]["timeFieldName"] == "started_at"
    assert views[f"{PREFIX}-utterances-*"]["timeFieldName"] == "at"
    for title, attrs in views.items():
        fields = FIELDS[title]
        assert fields[attrs["timeFieldName"]] == "date", title
        for name in json.loads(attrs["fieldFormatMap"]):
            assert name in fields, f"{title}: format for unknown field {name}"
    # the data views' patterns are the index templates' patterns (where the indexer's indices go)
    for kind in mappings.KINDS:
        template = mappings.index_template(PREFIX, kind, shards=1, replicas=0, refresh_interval="1s")
        assert template["index_patterns"] == [f"{PREFIX}-{kind}-*"]


def test_references_resolve(objects: list[dict[str, Any]]) -> None:
    present = {(o["type"], o["id"]) for o in objects}
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in present, f"{o['type']} {o['id']}: dangling reference {ref}"
        names = {ref["name"] for ref in o["references"]}
        assert len(names) == len(o["references"]), f"{o['id']}: reference names repeat"
        meta = o["attributes"].get("kibanaSavedObjectMeta")
        if meta:
            source = json.loads(meta["searchSourceJSON"])
            if "indexRefName" in source:
                assert source["indexRefName"] in names, f"{o['id']}: indexRefName without its reference"
    for vis in by_type(objects, "visualization"):
        source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert "indexRefName" in source, f"{vis['id']}: no data view"
        ref = next(r for r in vis["references"] if r["name"] == source["indexRefName"])
        assert ref["type"] == "index-pattern"
    for dashboard in by_type(objects, "dashboard"):
        panels = json.loads(dashboard["attributes"]["panelsJSON"])
        refs = {r["name"]: r for r in dashboard["references"]}
        for panel in panels:
            ref = refs.get(f"{panel['panelIndex']}:{panel['panelRefName']}")
            assert ref is not None, f"panel {panel['panelIndex']} has no reference"
            assert ref["type"] == panel["type"] == "visualization"
        assert len(panels) == len(refs)
        assert len({p["panelIndex"] for p in panels}) == len(panels)


def _data_view_title(objects: list[dict[str, Any]], vis: dict[str, Any]) -> str:
    source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    ref = next(r for r in vis["references"] if r["name"] == source["indexRefName"])
    view = next(o for o in objects if o["type"] == "index-pattern" and o["id"] == ref["id"])
    return view["attributes"]["title"]


def aggregated_fields(objects: list[dict[str, Any]]) -> Iterator[tuple[str, str, str, str]]:
    """(visualization id, data view title, aggregation type, field) for every aggregation on a field."""
    for vis in by_type(objects, "visualization"):
        title = _data_view_title(objects, vis)
        for agg in json.loads(vis["attributes"]["visState"])["aggs"]:
            field = agg.get("params", {}).get("field")
            if field is not None:
                yield vis["id"], title, agg["type"], field


def test_every_field_exists_in_the_index_template(objects: list[dict[str, Any]]) -> None:
    used = list(aggregated_fields(objects))
    assert len(used) >= 15
    for vis_id, title, agg, field in used:
        fields = FIELDS[title]
        assert field in fields, f"{vis_id}: {field} is not in the {title} mapping"
        assert fields[field] in AGG_FIELD_TYPES[agg], f"{vis_id}: {agg} on {field} ({fields[field]})"
        assert not field.endswith(".keyword") or fields[field] == "keyword"


def test_a_missing_field_would_be_caught(objects: list[dict[str, Any]]) -> None:
    """The field check is not vacuous: a misspelt field and a wrong type are both refused."""
    fields = FIELDS[f"{PREFIX}-calls-*"]
    assert "analytics.longest_silence" not in fields and "analytics.longest_silence_ms" in fields
    assert fields["agent_id"] not in AGG_FIELD_TYPES["avg"]
    assert fields["transcript"] not in AGG_FIELD_TYPES["terms"]


def test_the_dashboard_has_the_asked_for_panels(objects: list[dict[str, Any]]) -> None:
    (dashboard,) = by_type(objects, "dashboard")
    panel_ids = {r["id"] for r in dashboard["references"]}
    visualizations = {o["id"]: o for o in by_type(objects, "visualization")}
    assert panel_ids == set(visualizations), "every visualization is on the dashboard"

    def uses(field: str, agg: str, title: str = f"{PREFIX}-calls-*") -> set[str]:
        return {v for v, t, a, f in aggregated_fields(objects) if f == field and a == agg and t == title}

    def per_day(vis_id: str, field: str) -> bool:
        aggs = json.loads(visualizations[vis_id]["attributes"]["visState"])["aggs"]
        return any(a["type"] == "date_histogram" and a["params"]["field"] == field for a in aggs)

    calls_per_day = [
        v
        for v, o in visualizations.items()
        if per_day(v, "started_at")
        and [a["type"] for a in json.loads(o["attributes"]["visState"])["aggs"]] == ["count", "date_histogram"]
    ]
    assert calls_per_day, "calls per day"
    assert any(per_day(v, "started_at") for v in uses("analytics.longest_silence_ms", "avg")), "silence over time"
    assert uses("analytics.dead_air_count", "sum") & uses("agent_id", "terms"), "dead air per agent"
    assert uses("keywords", "terms") and uses("keyword_lists", "terms"), "top keyword hits"
    assert uses("analytics.qa.score", "avg") & uses("agent_id", "terms"), "QA score per agent"
    assert any(per_day(v, "started_at") for v in uses("analytics.sentiment", "avg")), "sentiment trend"
    assert uses("sentiment", "avg", f"{PREFIX}-utterances-*"), "the utterances data view is used"
    attrs = dashboard["attributes"]
    assert attrs["timeRestore"] is True and attrs["timeFrom"].startswith("now-")
