"""The log writer's CPU cost per record, by stage, without a gateway or load generator.

``python -m bench.writer`` feeds the bench's own requests and answers (bodies and headers, as
the main bench's traffic carries them) through the same code the writer child runs — the
journal's record encoding and decoding,
:func:`~logging_pipeline.record.build_record`, gzip, the body store and the ClickHouse insert
(the defaults: embedded engine, SQLite body store) — in batches of ``--batch`` records, and
prints the process CPU time (all threads) per record for each stage. CPU time, not wall
time: on a shared machine it is the writer's CPU that takes cores away from request serving,
and it is far steadier than throughput.

The full bench (``python -m bench``) measures what this costs the gateway; this one says
where the writer's time goes, in a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.payloads import CHAT_MODEL, chat_completion, request_body, sse_stream
from gateway.options import new_request_id
from logging_pipeline.bodies import SqliteBodyStore, compress_json
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.journal import decode_record, encode_record
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS, REQUEST_TABLE
from logging_pipeline.worker import settle_collector
from providers.registry import Registry


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Stages:
    """CPU seconds per stage, summed over every batch."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = _cpu()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + _cpu() - start


REQUEST_HEADERS = (
    (b"host", b"127.0.0.1:8787"),
    (b"content-type", b"application/json"),
    (b"content-length", b"126"),
    (b"authorization", b"REDACTED"),
)
"""What the main bench's requests carry, as the gateway journals them (the credential already
scrubbed): the writer decodes, redacts and stores every record's headers."""
RESPONSE_HEADERS = (
    (b"Server", b"nginx"),
    (b"Date", b"Thu, 03 Dec 2026 16:51:05 GMT"),
    (b"Content-Type", b"application/json"),
    (b"Content-Length", b"624"),
    (b"Connection", b"keep-alive"),
    (b"x-request-id", b"req_bench_fixed"),
    (b"openai-processing-ms", b"312"),
)
"""What the bench's nginx upstream answers with (bench/upstream.py)."""


def _captures(count: int, stream_every: int) -> list[Capture]:
    plain_request = request_body(CHAT_MODEL).encode()
    stream_request = request_body(CHAT_MODEL, stream=True).encode()
    plain_response = chat_completion().encode()
    stream_response = sse_stream().encode()
    org = str(uuid.uuid4())
    key = str(uuid.uuid4())
    now = time.time()
    start = time.perf_counter()
    captures = []
    for index in range(count):
        stream = stream_every > 0 and index % stream_every == 0
        captures.append(
            Capture(
                request_id=new_request_id(),
                organization_id=org,
                api_key_id=key,
                path="/v1/chat/completions",
                created_at=now,
                started=start,
                provider="openai",
                target_url="http://127.0.0.1:9/v1/chat/completions",
                request_model=CHAT_MODEL,
                request_body=stream_request if stream else plain_request,
                status=200,
                response_body=stream_response if stream else plain_response,
                is_stream=stream,
                first_byte_at=start + 0.001 if stream else None,
                finished_at=start + 0.002,
                attempts=[("gpt-4o-mini/openai/credits", 200, 1)],
                request_headers=list(REQUEST_HEADERS),
                response_headers=RESPONSE_HEADERS,
            )
        )
    return captures


async def _run(
    batches: int, batch: int, stream_every: int, interval: float, settle: float, root: Path
) -> Stages:
    stages = Stages()
    transport = ChdbTransport(root / "clickhouse")
    bodies = SqliteBodyStore(root / "bodies")
    prices = Registry.load()
    estimator = TokenEstimator(root / "tiktoken")
    await bodies.start()
    await migrate(transport)
    settle_collector()  # the collector as the writer child sets it once its stores are open
    try:
        await _one_batch(transport, bodies, prices, estimator, batch, stream_every, Stages())
        start = _cpu()
        for _ in range(batches):
            await _one_batch(transport, bodies, prices, estimator, batch, stream_every, stages)
            await asyncio.sleep(interval)
        await asyncio.sleep(settle)
        # What ran outside the stages: the engine's background merges, mostly.
        stages.seconds["other (merges, ...)"] = _cpu() - start - sum(stages.seconds.values())
        await _check_stored(transport, bodies, (batches + 1) * batch)
    finally:
        await transport.close()
        await bodies.close()
    return stages


async def _one_batch(
    transport: ChdbTransport,
    bodies: SqliteBodyStore,
    prices: Registry,
    estimator: TokenEstimator,
    batch: int,
    stream_every: int,
    stages: Stages,
) -> None:
    captures = _captures(batch, stream_every)
    with stages.measure("hand-off (encode, decode)"):
        payloads = [encode_record(c) for c in captures]
        received = [decode_record(payload) for payload in payloads]
    with stages.measure("build_record"):
        built = [build_record(capture, prices, estimator) for capture in received]
    with stages.measure("gzip"):
        blobs = [
            (r.capture.organization_id, r.capture.request_id, compress_json(r.document))
            for r in built
            if r.document is not None
        ]
    with stages.measure("body store"):
        await bodies.put_many(blobs)
    with stages.measure("clickhouse insert"):
        await transport.insert(REQUEST_TABLE, INSERT_COLUMNS, [r.row for r in built])


async def _check_stored(transport: ChdbTransport, bodies: SqliteBodyStore, expected: int) -> None:
    """A measurement of writes that did not happen would be worthless: count what landed."""
    found = await transport.query(f"SELECT count() AS n FROM {REQUEST_TABLE} FINAL")
    keys = await bodies.keys()
    if found[0]["n"] != expected or len(keys) != expected:
        raise SystemExit(
            f"stored {found[0]['n']} rows and {len(keys)} bodies, expected {expected} of each"
        )


def _report(stages: Stages, records: int, out: Callable[[str], None] = print) -> None:
    total = sum(stages.seconds.values())
    out(f"{'stage':<30}{'us/record':>10}")
    for name, seconds in stages.seconds.items():
        out(f"{name:<30}{seconds / records * 1e6:>10.1f}")
    out(f"{'total':<30}{total / records * 1e6:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writer", description=__doc__)
    parser.add_argument("--batches", type=int, default=10, help="measured batches")
    parser.add_argument("--batch", type=int, default=4000, help="records per batch")
    parser.add_argument(
        "--stream-every", type=int, default=0,
        help="every Nth record is a stream (0: none, as in the bench's throughput runs)",
    )
    parser.add_argument(
        "--interval", type=float, default=0.0,
        help="seconds between batches (the writer flushes about once a second)",
    )
    parser.add_argument(
        "--settle", type=float, default=3.0,
        help="seconds to wait after the last batch, counting the engine's background work",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        stages = asyncio.run(_run(
                args.batches, args.batch, args.stream_every, args.interval, args.settle,
                Path(tmp),
            ))
    _report(stages, args.batches * args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
