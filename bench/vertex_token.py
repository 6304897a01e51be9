"""Micro-benchmark: the Vertex AI access-token lookup of one request (budget: p50 <= 100 us).

What a Vertex request pays for its credential once a token is cached: ``await
VertexTokens.authorize(key)`` (:mod:`gateway.vertex_auth`, exactly the call the router
makes) for a service-account key whose token is fresh. Two cases: the managed key (the same
string object every request, its hash cached by Python), and a key store's key (decrypted
per request, so a new ~2.4 KB string whose hash is computed on every lookup).

The one mint before the measurement is real: google-auth signs the JWT with a fresh RSA key
and exchanges it at a token endpoint on a local socket (a stand-in that accepts any
assertion; the tests' emulator is the one that verifies them). Each lookup is timed one at a
time with ``perf_counter_ns`` inside one event loop, after a warm-up::

    python -m bench.vertex_token [--requests 20000] [--json]

Exit status 1 when a p50 is over budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.load import percentile
from gateway.vertex_auth import VertexTokens

BUDGET_US = 100.0


class _TokenEndpoint(BaseHTTPRequestHandler):
    """Answers every POST with a one-hour access token."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = b'{"access_token": "ya29.bench", "expires_in": 3600, "token_type": "Bearer"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def token_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


def service_account(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps({
        "type": "service_account", "project_id": "bench-project",
        "private_key_id": "0" * 40, "private_key": pem,
        "client_email": "bench@bench-project.iam.gserviceaccount.com",
        "client_id": "1" * 21, "token_uri": token_uri,
    })


def _stats(samples: list[float]) -> dict[str, float]:
    samples.sort()
    return {
        "p50_us": percentile(samples, 50),
        "p90_us": percentile(samples, 90),
        "p99_us": percentile(samples, 99),
        "mean_us": sum(samples) / len(samples),
    }


async def _measure(key: str, requests: int) -> dict[str, dict[str, float]]:
    tokens = VertexTokens()
    await tokens.authorize(key)  # the one real mint
    clock = time.perf_counter_ns
    for _ in range(min(1000, requests)):
        await tokens.authorize(key)
    managed: list[float] = []
    for _ in range(requests):
        started = clock()
        await tokens.authorize(key)
        managed.append((clock() - started) / 1000)
    stored: list[float] = []
    for _ in range(requests):
        fresh = "".join(key)  # an equal string, as decrypting a stored key gives
        started = clock()
        await tokens.authorize(fresh)
        stored.append((clock() - started) / 1000)
    assert tokens.mints == 1, "a lookup minted again"
    return {"managed_key": _stats(managed), "stored_key": _stats(stored)}


def measure(requests: int) -> dict[str, object]:
    with token_endpoint() as uri:
        key = service_account(uri)
        result = asyncio.run(_measure(key, requests))
    return {"requests": requests, "key_bytes": len(key), **result, "budget_p50_us": BUDGET_US}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vertex_token", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(max(1, args.requests))
    cases = ("managed_key", "stored_key")
    ok = all(result[case]["p50_us"] <= BUDGET_US for case in cases)  # type: ignore[index]
    if args.json:
        print(json.dumps({**result, "ok": ok}))
        return 0 if ok else 1
    for case in cases:
        figures: dict[str, float] = result[case]  # type: ignore[assignment]
        print(
            f"Vertex token lookup, {case.replace('_', ' ')} ({result['key_bytes']} B key, "
            f"{args.requests} requests): p50 {figures['p50_us']:.2f} us, "
            f"p90 {figures['p90_us']:.2f} us, p99 {figures['p99_us']:.2f} us "
            f"(budget p50 <= {BUDGET_US:.0f} us: "
            f"{'ok' if figures['p50_us'] <= BUDGET_US else 'OVER'})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
