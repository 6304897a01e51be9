"""``python -m bench.profiled_gateway ARGS``: ``gateway ARGS`` under cProfile, switched by signals.

:mod:`bench.profile` starts ``gateway serve`` through this wrapper so that only the measured
load is profiled, not the start-up or the warm-up: ``SIGUSR1`` starts the profiler (the event
loop's thread is the main thread, the one a signal handler runs in), ``SIGUSR2`` stops it and
writes the statistics to ``$BENCH_PROFILE_OUT`` (a :mod:`pstats` file). The log writer is a
child process of its own and is not profiled. With ``BENCH_PROFILE_FORWARDER=1`` it runs the
reference forwarder's ``main`` (:mod:`bench.forwarder`) instead, for a profile to compare with;
with ``BENCH_PROFILE_GC_ONLY=1`` only the collector's pauses are recorded (no profiler: its
overhead would change how many objects are alive at a time).
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
import time
from types import FrameType


class GcTimes:
    """How many collections of each generation ran while profiling, and their wall time: the
    collector is no Python function, so cProfile charges its pauses to whichever function
    happened to allocate the object that started it."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        self._started = 0.0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started
        self.collected[generation] += info["collected"]

    def summary(self) -> dict[str, list[float] | list[int]]:
        return {"counts": self.counts, "seconds": self.seconds, "collected": self.collected}


def main() -> int:
    out = os.environ["BENCH_PROFILE_OUT"]
    profiler = cProfile.Profile()
    collections = GcTimes()
    profiling = os.environ.get("BENCH_PROFILE_GC_ONLY") != "1"

    def start(signum: int, frame: FrameType | None) -> None:
        collections.reset()
        gc.callbacks.append(collections.callback)
        if profiling:
            profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        if profiling:
            profiler.disable()
        gc.callbacks.remove(collections.callback)
        with open(out + ".gc.json", "w") as file:
            json.dump(collections.summary(), file)
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    # imported after the handlers are set: an early signal never kills the process
    if os.environ.get("BENCH_PROFILE_FORWARDER") == "1":
        from bench.forwarder import main as served
    else:
        from gateway.cli import main as served
    return served(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
