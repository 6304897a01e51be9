"""The young generation's collection threshold the gateway serves with (gateway/app.py).

At CPython's default (700) the collector walked every in-flight request's objects every ~13
requests although the request path makes no garbage cycles; the gateway raises it while it
serves and gives the process its own back when it stops (a library user's, or these tests').
"""

from __future__ import annotations

import gc
from pathlib import Path

import httpx

from gateway.app import YOUNG_GC_THRESHOLD
from tests.harness import GatewayServer, make_settings


def test_serving_raises_the_young_threshold_and_stopping_restores_it(tmp_path: Path) -> None:
    before = gc.get_threshold()
    assert before[0] != YOUNG_GC_THRESHOLD
    with GatewayServer(make_settings(tmp_path)) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
