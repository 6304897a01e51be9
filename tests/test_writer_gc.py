"""The writer child's collector settings (logging_pipeline/worker.py, ``settle_collector``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from logging_pipeline.worker import collect_periodically, settle_collector


class _Node:
    """A container that can sit in a reference cycle and be watched with a weak reference."""

    def __init__(self) -> None:
        self.peer: object = None


def _cycle() -> weakref.ref[_Node]:
    """A two-node cycle nobody else refers to: only a collection can free it."""
    a, b = _Node(), _Node()
    a.peer, b.peer = b, a
    return weakref.ref(a)


def test_settle_collector_freezes_startup_and_turns_automatic_collection_off() -> None:
    sentinel = [object()]  # allocated "at startup": frozen with everything else
    try:
        gc.unfreeze()
        settle_collector()
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
        # Frozen: in the permanent generation, which no collection walks.
        assert all(found is not sentinel for found in gc.get_objects())
        # A cycle made afterwards outlives any number of allocations, and an explicit
        # collection (what collect_periodically runs) still frees it.
        watched = _cycle()
        junk = [[index] for index in range(50_000)]  # far past any automatic threshold
        del junk
        assert watched() is not None
        assert gc.collect() >= 2
        assert watched() is None
    finally:
        gc.unfreeze()
        gc.enable()


async def _quiet_now(at_most: float) -> None:
    """A writer that is always between batches."""


async def _freed_then_stopped(watched: weakref.ref[_Node], task: asyncio.Task[None]) -> bool:
    """Whether the collector task frees ``watched``'s cycle within two seconds; the task is
    stopped either way."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if watched() is None:
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return watched() is None


async def test_collect_periodically_frees_cycles_with_the_collector_off() -> None:
    gc.disable()
    try:
        watched = _cycle()
        task = asyncio.create_task(collect_periodically(_quiet_now, 0.01))
        assert await _freed_then_stopped(watched, task)
    finally:
        gc.enable()


async def test_collections_wait_until_the_writer_is_between_batches() -> None:
    """While the writer writes a batch (its captures and rows alive), no collection runs."""
    between = asyncio.Event()
    waited: list[float] = []

    async def quiet(at_most: float) -> None:
        waited.append(at_most)
        await between.wait()  # a writer busy for longer than any timeout

    gc.disable()
    try:
        watched = _cycle()
        task = asyncio.create_task(collect_periodically(quiet, 0.01))
        await asyncio.sleep(0.3)
        assert watched() is not None  # thirty periods, and no collection while busy
        assert waited == [0.01]  # the wait is bounded by the period
        between.set()
        assert await _freed_then_stopped(watched, task)
    finally:
        gc.enable()
