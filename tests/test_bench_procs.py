"""bench/procs.py's ``main`` helpers: the workdir, the printed report, the exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.procs import BenchError, print_report, write_results


def test_print_report_prints_what_the_work_returns(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Path] = []

    def work(workdir: Path) -> str:
        assert workdir.is_dir() and workdir.name.startswith("gateway-bench-unit-")
        seen.append(workdir)
        return "the report"

    assert print_report("unit", False, work, timed=True) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "the report" and out[1].startswith("  (") and out[1].endswith(" s)")
    assert not seen[0].exists()  # removed unless kept


def test_a_bench_error_is_printed_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    def work(workdir: Path) -> str:
        raise BenchError("the upstream died")

    assert print_report("unit", False, work) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "bench.unit: error: the upstream died" in captured.err


def test_write_results_writes_the_json_with_the_wall_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "deep" / "results.json"

    def work(workdir: Path) -> dict[str, Any]:
        return {"meta": {"rows": 3}, "lines": [1, 2]}

    def report(results: dict[str, Any]) -> str:
        return f"{results['meta']['rows']} rows"

    assert write_results("unit", True, work, output, report) == 0
    written = json.loads(output.read_text())
    assert written["lines"] == [1, 2] and written["meta"]["rows"] == 3
    assert written["meta"]["wall_s"] >= 0
    captured = capsys.readouterr()
    assert captured.out == "3 rows\n"
    kept = Path(captured.err.split("workdir kept: ", 1)[1].strip())
    assert kept.is_dir()
    shutil.rmtree(kept)
