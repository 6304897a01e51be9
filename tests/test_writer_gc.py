"""The writer child's collector settings (logging_pipeline/worker.py, ``settle_collector``)."""

from __future__ import annotations

import gc

from logging_pipeline.worker import YOUNG_GC_THRESHOLD, settle_collector


def test_settle_collector_freezes_startup_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    sentinel = [object()]  # allocated "at startup": frozen with everything else
    try:
        gc.unfreeze()
        settle_collector()
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
        # Frozen: in the permanent generation, which no collection walks.
        assert all(found is not sentinel for found in gc.get_objects())
        # A cycle made afterwards is still collectable (older generations unchanged).
        cycle: list[object] = []
        cycle.append(cycle)
        assert gc.is_tracked(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
