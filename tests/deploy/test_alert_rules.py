"""The alert rules the deploy loads into Prometheus are valid and fire as meant (promtool, Prometheus's own
checker and rule unit tester, from the Debian `prometheus` package that scripts/install-system.sh installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install the Debian 'prometheus' package (scripts/install-system.sh)")
    return found


def test_lifecycle_alert_rules_are_valid(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", "lifecycle-alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_lifecycle_alerts_fire_as_meant(promtool: str) -> None:
    """A lapsing hot lock pages after an hour, a lifecycle gone for 30 minutes pages, an integrity failure
    pages at once (deploy/prometheus/lifecycle-alerts.test.yml)."""
    done = subprocess.run(
        [promtool, "test", "rules", "lifecycle-alerts.test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
