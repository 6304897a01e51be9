"""bench/paired.py measures added latency request by request (tiny: 30 turns; the measurement is
``python -m bench.paired``).

Real nginx, forwarder and ``gateway serve``: every target answers every turn, the report has
each target's line, the multiples of the forwarder's added p50 and the per-turn new - base
line. Never the timings.
"""

from __future__ import annotations

import pytest

from bench import paired, pairing
from bench.load import RequestSpec


def test_every_target_is_measured_every_turn(capsys: pytest.CaptureFixture[str]) -> None:
    assert paired.main(["--no-base", "--turns", "30", "--warmup", "5"]) == 0
    printed = capsys.readouterr().out
    for name in ("direct", "forwarder", "new"):
        assert f"\n  {name} " in printed
    assert "new added p50 / forwarder's:" in printed and "new - base" not in printed


def test_turns_are_shuffled_and_kept_per_target() -> None:
    """The order changes from turn to turn (no target always follows another), and each
    target keeps exactly its measured turns."""
    seen: list[str] = []

    class Fake(pairing.Target):
        def ask(self) -> float:
            seen.append(self.name)
            return 0.001

    spec = RequestSpec("/", "{}")
    targets = [Fake(name, 1, spec) for name in "abcd"]
    pairing.measure(targets, turns=40, warmup=10)
    assert all(len(t.seconds) == 40 for t in targets)
    orders = {tuple(seen[i : i + 4]) for i in range(0, len(seen), 4)}
    assert len(orders) > 5 and all(sorted(order) == list("abcd") for order in orders)
