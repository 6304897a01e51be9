"""bench/loopturns.py counts event-loop turns (tiny: a 1 s counted run per target; the
measurement is ``python -m bench.loopturns``).

A real ``gateway serve`` and the reference forwarder under the counting wrapper
(bench/turns_server.py, asyncio's loop), switched on and off by signals around one wrk run at
one connection: the counts are per request, name the request path's awaits where a task was
suspended, and a request costs each target at least the loop turns its upstream round trip
needs. Never the timings.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import loopturns
from bench.turns_server import Turns, install, suspended_at

ARGS = ["--duration", "1", "--warmup", "0.5"]


def test_counts_name_the_request_path_per_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "turns.json"
    assert loopturns.main([*ARGS, "--forwarder", "--logging", "off", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forwarder:" in printed and "gateway, logging off:" in printed
    counts = json.loads(out.read_text())
    for name in ("forwarder", "gateway, logging off"):
        target = counts[name]
        requests = target["requests"]
        assert requests > 20
        # the request arrives, the upstream answers: at least two turns of the loop each
        assert target["iterations"] >= 2 * requests
        assert target["handles"] == sum(target["callbacks"].values())
    gateway = counts["gateway, logging off"]["callbacks"]
    # the unified route's task, suspended in the data plane's handler (the upstream call)
    assert any(k.startswith("task ") and "dataplane.py" in k for k in gateway)
    assert any("forwarder.py" in k for k in counts["forwarder"]["callbacks"])
    # the timed run: the usual order of a request's socket events, and the spans between them
    sequence = [kind for kind, _ in counts["gateway, logging off"]["moments"]["sequence"]]
    assert sequence == ["in", "up-out", "up-in", "out"]  # the whole answer in one write
    forwarder = [kind for kind, _ in counts["forwarder"]["moments"]["sequence"]]
    assert forwarder == ["in", "up-out", "up-in", "out", "out"]  # head, then body
    assert all(v is not None and v > 0
               for v in counts["forwarder"]["moments"]["median_us"].values())  # fmt: skip


def test_turns_count_iterations_and_label_a_suspended_task() -> None:
    """The wrapper's counters, in process: one ``sleep(0)`` is one more loop turn, and the
    task's wake-up is labelled with the line it waited on."""
    turns = Turns()
    restore = install(turns)
    seen: list[str] = []

    async def waits() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def run() -> None:
        task = asyncio.get_running_loop().create_task(waits())
        seen.append(suspended_at(task))
        turns.on = True
        await task
        turns.on = False

    try:
        asyncio.run(run())
    finally:
        restore()
    assert seen == ["start test_turns_count_iterations_and_label_a_suspended_task.<locals>.waits"]
    # the waiting task: its step, its two sleeps' steps; the outer task's wake-up
    assert turns.iterations >= 3
    labels = list(turns.callbacks)
    assert any("test_bench_loopturns.py" in k and "(waits)" in k for k in labels)


def test_logging_adds_no_wait_to_the_request_path(tmp_path: Path) -> None:
    """With logging on, the request's task is suspended at the same places as without: the
    capture is journaled synchronously, before the last byte, with no hand-off to wait for."""
    out = tmp_path / "turns.json"
    assert loopturns.main([*ARGS, "--logging", "both", "--json", str(out)]) == 0
    counts = json.loads(out.read_text())
    waits = {}
    for name in ("gateway, logging off", "gateway, logging on"):
        target = counts[name]
        requests = target["requests"]
        waits[name] = {k for k, n in target["callbacks"].items()
                       if k.startswith("task ") and n >= requests / 2}  # fmt: skip
    assert waits["gateway, logging on"] == waits["gateway, logging off"]
