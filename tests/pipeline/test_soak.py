"""The soak of bench/soak.py at CI size (issue 15): a dozen short calls from 8 uploaders with searches
alongside, while a chaos loop kills services and the worker (kill -9) and restarts Redis; every
acknowledged call must end indexed, with no dead letter and no duplicate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def soak():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        import soak as module
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_a_short_soak_with_chaos_loses_and_duplicates_nothing(soak, make_calls, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = soak.Config(
        calls=12,
        min_s=5.0,
        max_s=60.0,
        audio_min=4.0,
        uploaders=8,
        searchers=1,
        chaos_every_s=8.0,
        chaos_max=5,
        max_wall_s=420.0,
        spread_s=45.0,  # the chaos loop strikes while calls still arrive, however fast the pipeline is
        seed=7,
    )
    report = soak.run(cfg, make_calls("soak-source", 3), tmp_path)
    soak.print_report(report)
    assert report.acknowledged == cfg.calls, report.failures
    assert len(report.chaos) >= 3, "the chaos loop must have struck during the run"
    assert not any("FAILED" in event for event in report.chaos), report.chaos
    assert report.indexed == report.acknowledged, (report.not_indexed, report.failures)
    assert report.dead_lettered == 0, report.failures
    assert report.duplicates == 0
    assert report.searches > 0 and report.search_latency_ms
