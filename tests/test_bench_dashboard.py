"""The dashboard bench (issue 18's performance bar) end to end in a tiny mode: 2,000 generated
rows, a real ``gateway serve``, Debian's Chromium, one load of each page. The report's
structure is checked, never its timings (those are the bench's business, not a test's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import dashboard

pytest.importorskip("chdb")
pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not Path(dashboard.CHROMIUM).exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium",
)


def test_dashboard_bench_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dashboard.json"
    assert dashboard.main(["--rows", "2000", "--loads", "1", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["rows"] == 2000 and data["meta"]["loads"] == 1
    assert data["meta"]["gateway_problems"] == []
    measures = ("overview_ms", "overview_30d_ms", "requests_ms", "filter_ms", "transfer_bytes")
    assert set(data["samples"]) == set(measures)
    for name in measures:
        assert len(data["samples"][name]) == 1 and data["samples"][name][0] > 0
        assert data["summary"][name]["p50"] == data["samples"][name][0]
    assert data["samples"]["transfer_bytes"][0] < dashboard.GOAL_TRANSFER_BYTES
    printed = capsys.readouterr().out
    assert dashboard.report(data) in printed and "filter change" in printed
